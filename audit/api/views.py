"""The events API: the log for auditors and administrators, with the pages' filters. Read only.

Reviewers hold ``audit.view_auditevent`` for the pages, but bulk reading of the log is for the
roles that answer for it, so this endpoint also asks for the role itself.
"""

from typing import Any

from django_filters.rest_framework import DjangoFilterBackend
from rest_framework import authentication, exceptions, mixins, permissions, viewsets
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request

from audit.api.serializers import AuditEventSerializer
from audit.filters import AuditEventFilter
from audit.models import AuditEvent
from console.permissions import RolePermission
from console.roles import ADMINISTRATOR, AUDITOR

LOG_READERS = (ADMINISTRATOR, AUDITOR)


class EventCursorPagination(CursorPagination):
    """Stable pages while events keep arriving: a cursor on the id never skips or repeats a row."""

    ordering = "-id"
    page_size = 100


class IsLogReader(permissions.BasePermission):
    """Only administrators and auditors read the log in bulk."""

    message = "Only auditors and administrators may read the audit log through the API."

    def has_permission(self, request: Request, view: Any) -> bool:
        return is_log_reader(request.user)


def is_log_reader(user: Any) -> bool:
    if not (user and user.is_authenticated):
        return False
    return bool(user.groups.filter(name__in=LOG_READERS).exists())


class AuditEventViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):  # type: ignore[type-arg]
    """Audit events, newest first, cursor-paginated (``next`` links follow the id)."""

    queryset = AuditEvent.objects.select_related("seal")
    serializer_class = AuditEventSerializer
    filterset_class = AuditEventFilter
    # Only the filterset: an ``ordering`` parameter would break the cursor's order.
    filter_backends = [DjangoFilterBackend]
    pagination_class = EventCursorPagination
    # Users only: an application's API key (Bearer) is not a user and gets 401 here.
    authentication_classes = [authentication.TokenAuthentication, authentication.SessionAuthentication]
    permission_classes = [RolePermission, IsLogReader]
    required_permissions = {"GET": ("audit.view_auditevent",)}

    def check_permissions(self, request: Request) -> None:
        """A write is 405 for those who may read the log (nothing here changes), 403 or 401 for others."""
        unoffered = getattr(self, "action", None) is None and request.method not in ("OPTIONS", "HEAD")
        if unoffered and is_log_reader(request.user) and request.user.has_perms(self.required_permissions["GET"]):
            raise exceptions.MethodNotAllowed(request.method or "")
        super().check_permissions(request)
