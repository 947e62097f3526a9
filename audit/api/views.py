"""The events API: the log for auditors and administrators, with the pages' filters. Read only.

Reviewers hold ``audit.view_auditevent`` for the pages, but bulk reading of the log is for the
roles that answer for it, so this endpoint also asks for the role itself.
"""

from typing import Any

from django_filters.rest_framework import DjangoFilterBackend
from rest_framework import authentication, exceptions, mixins, viewsets
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request

from audit.api.serializers import AuditEventSerializer
from audit.filters import AuditEventFilter
from audit.models import AuditEvent
from console.permissions import RolePermission


class EventCursorPagination(CursorPagination):
    """Stable pages while events keep arriving: a cursor on the id never skips or repeats a row."""

    ordering = "-id"
    page_size = 100


def is_log_reader(user: Any) -> bool:
    """Administrators and auditors read the log in bulk (the export permission); reviewers do not."""
    return bool(user and user.is_authenticated and user.has_perm("audit.export_auditevent"))


class AuditEventViewSet(mixins.ListModelMixin, viewsets.GenericViewSet[AuditEvent]):
    """Audit events, newest first, cursor-paginated (``next`` links follow the id)."""

    queryset = AuditEvent.objects.select_related("seal")
    serializer_class = AuditEventSerializer
    filterset_class = AuditEventFilter
    # Only the filterset: an ``ordering`` parameter would break the cursor's order.
    filter_backends = [DjangoFilterBackend]
    pagination_class = EventCursorPagination
    # Users only: an application's API key (Bearer) is not a user and gets 401 here.
    authentication_classes = [authentication.TokenAuthentication, authentication.SessionAuthentication]
    permission_classes = [RolePermission]
    # Every method needs them, so others get 403 (not 405) for writes; readers get 405 below.
    required_permissions = {"*": ("audit.view_auditevent", "audit.export_auditevent")}

    def check_permissions(self, request: Request) -> None:
        """A write is 405 for those who may read the log (nothing here changes), 403 or 401 for others."""
        unoffered = getattr(self, "action", None) is None and request.method not in ("OPTIONS", "HEAD")
        if unoffered and is_log_reader(request.user) and request.user.has_perms(self.required_permissions["*"]):
            raise exceptions.MethodNotAllowed(request.method or "")
        super().check_permissions(request)
