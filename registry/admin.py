"""The Django admin, kept for operators. It never bypasses the rules or the audit log.

Vocabulary (regions, certifications, capabilities, classifications) is edited here through the
services. Providers, models, versions and compliance cells are read-only here: their rules
(immutability, lifecycle, confirmation and reason) live in the console pages and the API.
"""

from typing import Any

from django.contrib import admin
from django.db.models import Model, QuerySet
from django.forms import ModelForm
from django.http import HttpRequest

from console.admin import ReadOnlyAdmin
from registry import services
from registry.models import (
    Capability,
    Certification,
    ComplianceCell,
    DataClassification,
    ModelVersion,
    Provider,
    Region,
)
from registry.models import Model as AIModel


class AuditedAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Saves and deletes through the registry services, so each is validated and audited."""

    def save_model(self, request: HttpRequest, obj: Model, form: "ModelForm[Any]", change: bool) -> None:
        self._pending = (obj, change)  # many-to-many values arrive in save_related

    def save_related(self, request: HttpRequest, form: "ModelForm[Any]", formsets: Any, change: bool) -> None:
        obj, change = self._pending
        names = {field.name for field in obj._meta.concrete_fields if not field.primary_key}
        data = {name: form.cleaned_data[name] for name in names if name in form.cleaned_data}
        m2m = {f.name: form.cleaned_data[f.name] for f in obj._meta.many_to_many if f.name in form.cleaned_data}
        if change:
            saved = services.update_object(obj, data=data, m2m=m2m, actor=request.user)
        else:
            saved = services.create_object(type(obj), data=data, m2m=m2m, actor=request.user)
        obj.pk = saved.pk

    def delete_model(self, request: HttpRequest, obj: Model) -> None:
        services.delete_object(obj, actor=request.user)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        for obj in queryset:
            services.delete_object(obj, actor=request.user)


@admin.register(Region, Certification, Capability)
class VocabularyAdmin(AuditedAdmin):
    list_display = ("slug", "name")
    search_fields = ("slug", "name")


@admin.register(DataClassification)
class DataClassificationAdmin(AuditedAdmin):
    list_display = ("slug", "name", "sensitivity")


@admin.register(Provider)
class ProviderAdmin(ReadOnlyAdmin):
    list_display = ("name", "kind", "status")
    list_filter = ("kind", "status")


@admin.register(AIModel)
class ModelAdmin(ReadOnlyAdmin):
    list_display = ("name", "provider", "tier")
    list_filter = ("tier", "provider")


@admin.register(ModelVersion)
class ModelVersionAdmin(ReadOnlyAdmin):
    list_display = ("__str__", "api_model_id", "lifecycle")
    list_filter = ("lifecycle", "model__provider")
    search_fields = ("label", "api_model_id", "model__name")


@admin.register(ComplianceCell)
class ComplianceCellAdmin(ReadOnlyAdmin):
    list_display = ("model_version", "classification", "decision", "expires_on", "revision")
    list_filter = ("decision", "classification")
