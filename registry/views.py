"""Registry and compliance pages. Views check input and call one service; rules live in services."""

from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db import models
from django.forms import BaseForm
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views import View
from django.views.generic import CreateView, DetailView, ListView, UpdateView

from audit.models import AuditEvent
from audit.services import history
from console.views import RolePermissionMixin, require_permission
from policies import services as policy_services
from policies.models import ComplianceRequest
from registry import services
from registry.filters import ModelVersionFilter
from registry.forms import ComplianceCellForm, ModelForm, ModelVersionForm, ProviderForm, TransitionForm
from registry.models import ComplianceCell, Counter, DataClassification, Lifecycle, Model, ModelVersion, Provider

PAGE_SIZE = 25


def add_service_errors(form: BaseForm, error: ValidationError) -> None:
    """Show a service's refusal on the form, on the field it names when the form has that field."""
    if hasattr(error, "error_dict"):
        for field, errors in error.message_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, error.messages)


def split_cleaned_data(form: BaseForm, model: type[models.Model]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The form's values as (plain fields, many-to-many fields), for the services' keyword arguments."""
    m2m_names = {field.name for field in model._meta.many_to_many}
    data: dict[str, Any] = {}
    m2m: dict[str, Any] = {}
    for name, value in form.cleaned_data.items():
        if name in form.fields and form.fields[name].disabled:
            continue
        (m2m if name in m2m_names else data)[name] = value
    return data, m2m


class FormPageMixin:
    """Names the kind of object on the shared form page ("New model version")."""

    model: type[models.Model]

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context: dict[str, Any] = super().get_context_data(**kwargs)  # type: ignore[misc]
        context["model_name"] = self.model._meta.verbose_name
        return context


class AuditedCreateView(FormPageMixin, RolePermissionMixin, CreateView):  # type: ignore[type-arg]
    """Create through ``services.create_object`` so the change is validated and audited."""

    permission_action = "add"
    template_name = "registry/form.html"

    def form_valid(self, form: "forms.ModelForm[Any]") -> HttpResponse:
        data, m2m = split_cleaned_data(form, self.model)
        try:
            self.object = services.create_object(self.model, data=data, m2m=m2m)
        except ValidationError as error:
            add_service_errors(form, error)
            return self.form_invalid(form)
        messages.success(self.request, f"Created {self.object}.")
        return HttpResponseRedirect(self.get_success_url())


class AuditedUpdateView(FormPageMixin, RolePermissionMixin, UpdateView):  # type: ignore[type-arg]
    """Edit through ``services.update_object`` so the change is validated and audited."""

    permission_action = "change"
    template_name = "registry/form.html"

    def form_valid(self, form: "forms.ModelForm[Any]") -> HttpResponse:
        data, m2m = split_cleaned_data(form, self.model)
        try:
            self.object = services.update_object(self.object, data=data, m2m=m2m)
        except ValidationError as error:
            add_service_errors(form, error)
            return self.form_invalid(form)
        messages.success(self.request, f"Saved {self.object}.")
        return HttpResponseRedirect(self.object.get_absolute_url())


class ProviderList(RolePermissionMixin, ListView):  # type: ignore[type-arg]
    model = Provider
    paginate_by = PAGE_SIZE
    queryset = (
        Provider.objects.prefetch_related("regions", "certifications")
        .annotate(model_count=models.Count("models", distinct=True))
        .order_by("name")
    )


class ProviderDetail(RolePermissionMixin, DetailView):  # type: ignore[type-arg]
    model = Provider
    queryset = Provider.objects.prefetch_related("regions", "certifications", "models__capabilities")


class ProviderCreate(AuditedCreateView):
    model = Provider
    form_class = ProviderForm


class ProviderUpdate(AuditedUpdateView):
    model = Provider
    form_class = ProviderForm


class ModelDetail(RolePermissionMixin, DetailView):  # type: ignore[type-arg]
    model = Model
    queryset = Model.objects.select_related("provider").prefetch_related("capabilities", "versions__regions")


class ModelCreate(AuditedCreateView):
    model = Model
    form_class = ModelForm

    def get_initial(self) -> dict[str, Any]:
        return {"provider": self.request.GET.get("provider")}


class ModelUpdate(AuditedUpdateView):
    model = Model
    form_class = ModelForm


def version_list(request: HttpRequest) -> HttpResponse:
    """The registry: every model version, searchable and filterable."""
    require_permission(request, ModelVersion)
    queryset = ModelVersion.objects.select_related("model__provider").prefetch_related("regions")
    version_filter = ModelVersionFilter(request.GET, queryset=queryset)
    page = Paginator(version_filter.qs, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request, "registry/version_list.html", {"filter": version_filter, "page": page, "query": querystring(request)}
    )


def querystring(request: HttpRequest) -> str:
    """The current filters without the page number, for pagination links."""
    params = request.GET.copy()
    params.pop("page", None)
    return params.urlencode()


class VersionDetail(RolePermissionMixin, DetailView):  # type: ignore[type-arg]
    model = ModelVersion
    queryset = ModelVersion.objects.select_related("model__provider", "successor__model").prefetch_related(
        "regions", "model__provider__certifications", "model__capabilities", "predecessors__model"
    )

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        version: ModelVersion = self.object
        cells = services.compliance_cells([version])
        context["compliance_row"] = [
            (classification, cells.get((version.pk, classification.pk)))
            for classification in DataClassification.objects.all()
        ]
        context["history"] = version_history(version)[:50]
        context["transitions"] = [Lifecycle(step) for step in version.allowed_transitions()]
        return context


def version_history(version: ModelVersion) -> "models.QuerySet[AuditEvent]":
    """Changes to the version itself and to its compliance cells, newest first."""
    cell_ids = [str(pk) for pk in version.compliance.values_list("pk", flat=True)]
    return history(version) | AuditEvent.objects.filter(object_type="registry.compliancecell", object_id__in=cell_ids)


class VersionCreate(FormPageMixin, RolePermissionMixin, CreateView):  # type: ignore[type-arg]
    """A new candidate version, optionally copied from an existing one (``?from=<id>``)."""

    model = ModelVersion
    form_class = ModelVersionForm
    permission_action = "add"
    template_name = "registry/form.html"

    def source(self) -> ModelVersion | None:
        source_id = self.request.GET.get("from", "")
        return ModelVersion.objects.filter(pk=source_id).first() if source_id.isdigit() else None

    def get_initial(self) -> dict[str, Any]:
        source = self.source()
        if source:
            return services.new_version_initial(source)
        return {"model": self.request.GET.get("model")}

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return {**super().get_context_data(**kwargs), "source": self.source()}

    def form_valid(self, form: "forms.ModelForm[Any]") -> HttpResponse:
        data, m2m = split_cleaned_data(form, ModelVersion)
        try:
            self.object = services.create_version(data=data, regions=m2m["regions"])
        except ValidationError as error:
            add_service_errors(form, error)
            return self.form_invalid(form)
        messages.success(self.request, f"Created candidate {self.object}.")
        return HttpResponseRedirect(self.object.get_absolute_url())


class VersionUpdate(FormPageMixin, RolePermissionMixin, UpdateView):  # type: ignore[type-arg]
    model = ModelVersion
    form_class = ModelVersionForm
    permission_action = "change"
    template_name = "registry/form.html"

    def form_valid(self, form: "forms.ModelForm[Any]") -> HttpResponse:
        data, m2m = split_cleaned_data(form, ModelVersion)
        try:
            self.object = services.update_version(self.object, data=data, regions=m2m.get("regions"))
        except ValidationError as error:
            add_service_errors(form, error)
            return self.form_invalid(form)
        messages.success(self.request, f"Saved {self.object}.")
        return HttpResponseRedirect(self.object.get_absolute_url())


class VersionTransition(RolePermissionMixin, View):
    """Confirm, then take one lifecycle step."""

    model = ModelVersion
    permission_action = "change"

    def get(self, request: HttpRequest, pk: int) -> HttpResponse:
        version = get_object_or_404(ModelVersion.objects.select_related("model__provider"), pk=pk)
        form = TransitionForm(initial={"to": request.GET.get("to", "")})
        return self._render(request, version, form, request.GET.get("to", ""))

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        version = get_object_or_404(ModelVersion.objects.select_related("model__provider"), pk=pk)
        form = TransitionForm(request.POST)
        if form.is_valid():
            try:
                version = services.transition_version(
                    version, to=form.cleaned_data["to"], reason=form.cleaned_data["reason"]
                )
            except ValidationError as error:
                add_service_errors(form, error)
            else:
                messages.success(request, f"{version} is now {version.get_lifecycle_display().lower()}.")
                return redirect(version)
        return self._render(request, version, form, request.POST.get("to", ""), status=400)

    def _render(
        self, request: HttpRequest, version: ModelVersion, form: TransitionForm, to: str, status: int = 200
    ) -> HttpResponse:
        allowed = version.allowed_transitions()
        context = {"version": version, "form": form, "to": to, "allowed": to in allowed}
        return render(request, "registry/transition_confirm.html", context, status=status)


def compliance_matrix(request: HttpRequest) -> HttpResponse:
    """Versions as rows, classifications as columns; a missing or expired approval shows as denied."""
    require_permission(request, ComplianceCell)
    queryset = ModelVersion.objects.select_related("model__provider")
    version_filter = ModelVersionFilter(request.GET, queryset=queryset)
    page = Paginator(version_filter.qs, 50).get_page(request.GET.get("page"))
    classifications = list(DataClassification.objects.all())
    cells = services.compliance_cells(page.object_list)
    rows = [
        (version, [(classification, cells.get((version.pk, classification.pk))) for classification in classifications])
        for version in page.object_list
    ]
    context = {
        "filter": version_filter,
        "page": page,
        "rows": rows,
        "classifications": classifications,
        "revision": services.current(Counter.COMPLIANCE_REVISION),
        "query": querystring(request),
        "can_edit": request.user.has_perm("registry.change_compliancecell"),
    }
    return render(request, "registry/compliance_matrix.html", context)


class ComplianceCellEdit(RolePermissionMixin, View):
    """Edit one cell in two steps: the form, then a confirmation showing before and after."""

    model = ComplianceCell
    permission_action = "change"

    def _objects(self, pk: int, slug: str) -> tuple[ModelVersion, DataClassification, ComplianceCell | None]:
        version = get_object_or_404(ModelVersion.objects.select_related("model__provider"), pk=pk)
        classification = get_object_or_404(DataClassification, slug=slug)
        cell = (
            ComplianceCell.objects.prefetch_related("regions")
            .filter(model_version=version, classification=classification)
            .first()
        )
        return version, classification, cell

    def get(self, request: HttpRequest, pk: int, slug: str) -> HttpResponse:
        version, classification, cell = self._objects(pk, slug)
        initial: dict[str, Any] = {"decision": ComplianceCell.Decision.DENIED}
        if cell:
            initial = {
                "decision": cell.decision,
                "regions": list(cell.regions.all()),
                "expires_on": cell.expires_on,
                "evidence": cell.evidence,
                "evidence_url": cell.evidence_url,
            }
        form = ComplianceCellForm(initial=initial, model_version=version)
        return self._render(request, "registry/compliance_cell_form.html", version, classification, cell, form)

    def post(self, request: HttpRequest, pk: int, slug: str) -> HttpResponse:
        """Narrowing applies at once; widening becomes a request a reviewer must approve."""
        # Imported here: policies builds on the registry, and only this step needs its four-eyes rules.

        version, classification, cell = self._objects(pk, slug)
        form = ComplianceCellForm(request.POST, model_version=version)
        if not form.is_valid():
            return self._render(
                request, "registry/compliance_cell_form.html", version, classification, cell, form, status=400
            )
        if request.POST.get("confirm") != "yes":
            widens = policy_services.widens(
                cell,
                decision=form.cleaned_data["decision"],
                regions=list(form.cleaned_data["regions"]),
                expires_on=form.cleaned_data["expires_on"],
            )
            context = {"version": version, "classification": classification, "cell": cell, "form": form}
            return render(request, "registry/compliance_cell_confirm.html", {**context, "widens": widens})
        try:
            result = policy_services.change_compliance(
                model_version=version, classification=classification, actor=request.user, **form.cleaned_data
            )
        except ValidationError as error:
            add_service_errors(form, error)
            return self._render(
                request, "registry/compliance_cell_form.html", version, classification, cell, form, status=400
            )
        if isinstance(result, ComplianceRequest):
            messages.info(
                request,
                f"Sent for review: {version} × {classification.slug} → {result.decision} widens what routing may "
                "use, so it needs approval by a reviewer. The matrix is unchanged until then.",
            )
            return redirect("policies:compliance-request", pk=result.pk)
        messages.success(request, f"{version} × {classification}: {form.cleaned_data['decision']}.")
        return redirect(reverse("registry:compliance") + f"#version-{version.pk}")

    def _render(
        self,
        request: HttpRequest,
        template: str,
        version: ModelVersion,
        classification: DataClassification,
        cell: ComplianceCell | None,
        form: ComplianceCellForm,
        status: int = 200,
    ) -> HttpResponse:
        context = {"version": version, "classification": classification, "cell": cell, "form": form}
        return render(request, template, context, status=status)
