"""API plumbing shared by every app: errors from services become 400s with field messages."""

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from console.permissions import RolePermission


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Turn a service's ``django.core.exceptions.ValidationError`` into a 400 naming the fields."""
    if isinstance(exc, DjangoValidationError):
        if hasattr(exc, "error_dict"):
            detail: Any = {
                ("non_field_errors" if field == "__all__" else field): messages
                for field, messages in exc.message_dict.items()
            }
        else:
            detail = {"non_field_errors": exc.messages}
        exc = exceptions.ValidationError(detail)
    return drf_exception_handler(exc, context)


class RoleViewSetMixin:
    """For every viewset: a method the endpoint does not offer is 405 for whoever may read it.

    DRF checks permissions before the method, so a reader would otherwise get a misleading 403
    for, say, a POST to a read-only endpoint. Per-action permissions use ``required_permissions``
    (see ``console.permissions.RolePermission``).
    """

    required_permissions: dict[str, tuple[str, ...]] | None = None

    def check_permissions(self, request: Request) -> None:
        if getattr(self, "action", None) is None and request.method not in ("OPTIONS", "HEAD"):
            model = self.queryset.model  # type: ignore[attr-defined]
            read = RolePermission().get_required_permissions("GET", model)
            if request.user.is_authenticated and request.user.has_perms(read):
                raise exceptions.MethodNotAllowed(request.method or "")
        super().check_permissions(request)  # type: ignore[misc]
