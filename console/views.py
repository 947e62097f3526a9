"""The console's own pages and the permission mixin every page view uses."""

from typing import Any

from django.contrib.auth.mixins import PermissionRequiredMixin
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from registry.models import ComplianceCell, Lifecycle, ModelVersion


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
        opts = self.model._meta  # type: ignore[attr-defined]
        return (f"{opts.app_label}.{self.permission_action}_{opts.model_name}",)


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
