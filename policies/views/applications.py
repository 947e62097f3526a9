"""Pages for teams, applications and their API keys.

Teams and applications are written through the registry's generic audited services; keys through
``policies.services``. A new key's raw value exists only in the response to the POST that made it.
"""

import datetime
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.views import View
from django.views.generic import DetailView, ListView

from audit.models import AuditEvent
from audit.services import history
from console.views import RolePermissionMixin, require_permission
from policies import budgets, services
from policies.forms import ApiKeyForm, ApplicationFilterForm, ApplicationForm, TeamForm
from policies.models import ApiKey, Application, Scope, Team
from registry.views import PAGE_SIZE, AuditedCreateView, AuditedUpdateView, add_service_errors, querystring

HISTORY_LENGTH = 50


def key_status(key: ApiKey, now: datetime.datetime) -> str:
    """Revoked wins over expired: it is the deliberate act, and it is final."""
    if key.revoked_at is not None:
        return "revoked"
    if key.expires_at is not None and key.expires_at <= now:
        return "expired"
    return "active"


def usable_keys(now: datetime.datetime) -> Q:
    """The filter, seen from an application, for keys the routing API accepts at ``now``."""
    return Q(api_keys__revoked_at__isnull=True) & (
        Q(api_keys__expires_at__isnull=True) | Q(api_keys__expires_at__gt=now)
    )


# --- Teams ------------------------------------------------------------------------------------


class TeamList(RolePermissionMixin, ListView):  # type: ignore[type-arg]
    model = Team
    paginate_by = PAGE_SIZE
    queryset = Team.objects.annotate(application_count=Count("applications")).order_by("name")


class TeamDetail(RolePermissionMixin, DetailView):  # type: ignore[type-arg]
    model = Team

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        team: Team = self.object
        context["applications"] = team.applications.select_related("policy").annotate(
            key_count=Count("api_keys", filter=usable_keys(timezone.now()))
        )
        context["contacts"] = team.contacts.split()
        context["spend"] = budgets.Spend.of(Scope.TEAM, team.pk, team.monthly_budget_usd)
        context["alerts"] = team.budget_alerts.filter(month=context["spend"].month).select_related("application")
        context["events"] = history(team)[:HISTORY_LENGTH]
        return context


class TeamCreate(AuditedCreateView):
    model = Team
    form_class = TeamForm
    template_name = "policies/team_form.html"


class TeamUpdate(AuditedUpdateView):
    model = Team
    form_class = TeamForm
    template_name = "policies/team_form.html"


# --- Applications -----------------------------------------------------------------------------


def application_list(request: HttpRequest) -> HttpResponse:
    """Every governed application, optionally one team's, with how many keys still work."""
    require_permission(request, Application)
    filter_form = ApplicationFilterForm(request.GET or None)
    queryset = Application.objects.select_related("team", "policy").annotate(
        key_count=Count("api_keys", filter=usable_keys(timezone.now()))
    )
    if filter_form.is_valid() and filter_form.cleaned_data["team"]:
        queryset = queryset.filter(team=filter_form.cleaned_data["team"])
    page = Paginator(queryset.order_by("name", "pk"), PAGE_SIZE).get_page(request.GET.get("page"))
    context = {"filter_form": filter_form, "page": page, "query": querystring(request)}
    return render(request, "policies/application_list.html", context)


def application_history(application: Application) -> "QuerySet[AuditEvent]":
    """Changes to the application and to its keys, newest first: key events are its security record."""
    key_ids = [str(pk) for pk in application.api_keys.values_list("pk", flat=True)]
    return history(application) | AuditEvent.objects.filter(object_type="policies.apikey", object_id__in=key_ids)


class ApplicationDetail(RolePermissionMixin, DetailView):  # type: ignore[type-arg]
    model = Application
    queryset = Application.objects.select_related("team", "policy").prefetch_related("allowed_classifications")

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        application: Application = self.object
        now = timezone.now()
        context["keys"] = [(key, key_status(key, now)) for key in application.api_keys.all()]
        context["key_form"] = ApiKeyForm()
        context["spend"] = budgets.Spend.of(Scope.APPLICATION, application.pk, application.monthly_budget_usd)
        context["events"] = application_history(application)[:HISTORY_LENGTH]
        return context


class ApplicationCreate(AuditedCreateView):
    model = Application
    form_class = ApplicationForm
    template_name = "policies/application_form.html"

    def get_initial(self) -> dict[str, Any]:
        """From a team's page, the new application belongs to that team unless changed."""
        return {"team": Team.objects.filter(slug=self.request.GET.get("team", "")).first()}


class ApplicationUpdate(AuditedUpdateView):
    model = Application
    form_class = ApplicationForm
    template_name = "policies/application_form.html"


# --- API keys ---------------------------------------------------------------------------------


class ApiKeyCreate(RolePermissionMixin, View):
    """Make a key and show it in this response only; it is never stored, so it cannot be shown again."""

    model = ApiKey
    permission_action = "add"

    def get(self, request: HttpRequest, slug: str) -> HttpResponse:
        application = get_object_or_404(Application, slug=slug)
        return self._form(request, application, ApiKeyForm())

    def post(self, request: HttpRequest, slug: str) -> HttpResponse:
        application = get_object_or_404(Application, slug=slug)
        form = ApiKeyForm(request.POST)
        if not form.is_valid():
            return self._form(request, application, form, status=400)
        try:
            key, raw = services.generate_key(
                application, name=form.cleaned_data["name"], expires_at=form.cleaned_data["expires_at"]
            )
        except ValidationError as error:
            add_service_errors(form, error)
            return self._form(request, application, form, status=400)
        response = render(
            request, "policies/apikey_created.html", {"application": application, "key": key, "raw_key": raw}
        )
        # The page holds a secret: no browser or proxy may keep a copy for the back button.
        add_never_cache_headers(response)
        return response

    def _form(
        self, request: HttpRequest, application: Application, form: ApiKeyForm, status: int = 200
    ) -> HttpResponse:
        return render(request, "policies/apikey_form.html", {"application": application, "form": form}, status=status)


class ApiKeyRevoke(RolePermissionMixin, View):
    """Confirm, then revoke. Revoking is final: a revoked key never works again."""

    model = ApiKey
    permission_action = "change"

    def _key(self, slug: str, pk: int) -> ApiKey:
        return get_object_or_404(ApiKey.objects.select_related("application"), pk=pk, application__slug=slug)

    def get(self, request: HttpRequest, slug: str, pk: int) -> HttpResponse:
        return self._confirm(request, self._key(slug, pk))

    def post(self, request: HttpRequest, slug: str, pk: int) -> HttpResponse:
        key = self._key(slug, pk)
        try:
            key = services.revoke_key(key)
        except ValidationError as error:
            return self._confirm(request, key, errors=error.messages, status=400)
        messages.success(request, f"Revoked key {key.prefix} ({key.name}). Requests using it are now refused.")
        return redirect(key.application)

    def _confirm(
        self, request: HttpRequest, key: ApiKey, errors: list[str] | None = None, status: int = 200
    ) -> HttpResponse:
        context = {"key": key, "application": key.application, "status": key_status(key, timezone.now())}
        context["errors"] = errors or []
        return render(request, "policies/apikey_confirm_revoke.html", context, status=status)
