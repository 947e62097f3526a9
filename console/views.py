"""The console's own pages and the permission mixin every page view uses."""

from typing import Any

from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.mixins import PermissionRequiredMixin
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.db.models import Model
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from registry.models import ComplianceCell, Lifecycle, ModelVersion


def permission_name(model: type[Model], action: str) -> str:
    """The Django permission for ``action`` ("view", "add", "change", "delete") on ``model``."""
    opts = model._meta
    return f"{opts.app_label}.{action}_{opts.model_name}"


def require_permission(request: HttpRequest, model: type[Model], action: str = "view") -> None:
    """For function views: 403 unless the signed-in user's role grants ``action`` on ``model``."""
    if not request.user.has_perm(permission_name(model, action)):
        raise PermissionDenied


class RolePermissionMixin(PermissionRequiredMixin):
    """Checks the view's model permission for its action; signed-in users without it get 403.

    Set ``permission_action`` ("view", "add", "change", "delete") and ``model``, or
    ``permission_required`` directly.
    """

    permission_action = "view"
    raise_exception = True

    def get_permission_required(self) -> tuple[str, ...]:
        if self.permission_required is not None:
            return super().get_permission_required()
        return (permission_name(self.model, self.permission_action),)  # type: ignore[attr-defined]


def home(request: HttpRequest) -> HttpResponse:
    """The start page: what needs attention in the portfolio."""
    today = timezone.localdate()
    soon = today + timezone.timedelta(days=30)
    context: dict[str, Any] = {
        "counts": {
            lifecycle.label: ModelVersion.objects.filter(lifecycle=lifecycle).count() for lifecycle in Lifecycle
        },
        "expiring": ComplianceCell.objects.filter(
            decision=ComplianceCell.Decision.APPROVED, expires_on__gte=today, expires_on__lte=soon
        ).select_related("model_version__model__provider", "classification")[:20],
        "expired": ComplianceCell.objects.filter(
            decision=ComplianceCell.Decision.APPROVED, expires_on__lt=today
        ).select_related("model_version__model__provider", "classification")[:20],
        "planned": ModelVersion.objects.exclude(lifecycle=Lifecycle.RETIRED)
        .filter(retires_on__gte=today)
        .select_related("model__provider")
        .order_by("retires_on")[:20],
    }
    return render(request, "console/home.html", context)


@login_not_required
@require_GET
def health(request: HttpRequest) -> JsonResponse:
    """For load balancers and container health checks: the process serves and the database answers."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception:  # any database failure means unhealthy, whatever its type
        return JsonResponse({"status": "unavailable", "database": "unreachable"}, status=503)
    return JsonResponse({"status": "ok"})
