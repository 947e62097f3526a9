"""The console's own pages and the permission mixin every page view uses."""

from collections.abc import Sequence

import plotly
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.mixins import PermissionRequiredMixin
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.db.models import Model
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_safe

from audit.models import UsageRollup
from console.dashboard import page


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

    def get_permission_required(self) -> Sequence[str]:
        if self.permission_required is not None:
            return super().get_permission_required()
        return (permission_name(self.model, self.permission_action),)  # type: ignore[attr-defined]


@require_safe
def home(request: HttpRequest) -> HttpResponse:
    """The dashboard: what the portfolio costs, where traffic goes, what is out of policy and what
    waits for review. Every role may read it; the figures come from rollups, never raw events."""
    require_permission(request, UsageRollup)
    now = timezone.now()
    form, dashboard = page.load(request.GET, now)
    context = {**page.home_context(form, dashboard, now), "plotly_version": plotly.__version__}
    return render(request, "console/home.html", context, status=200 if form.is_valid() else 400)


@require_safe
def dashboard_csv(request: HttpRequest, table: str) -> HttpResponse:
    """One dashboard table as CSV, for the same query string as the page it was linked from."""
    require_permission(request, UsageRollup)
    if table not in page.CSV_TABLES:
        raise Http404("No such dashboard table.")
    now = timezone.now()
    form, dashboard = page.load(request.GET, now)
    if not form.is_valid():
        errors = "; ".join(f"{name}: {' '.join(map(str, messages))}" for name, messages in form.errors.items())
        return HttpResponse(errors, status=400, content_type="text/plain; charset=utf-8")
    scope = dashboard.scope
    response = HttpResponse(page.csv_table(dashboard, table, now).csv(), content_type="text/csv; charset=utf-8")
    name = f"switchboard-{table}-{scope.since:%Y%m%dT%H}-{scope.until:%Y%m%dT%H}.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


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
