"""Filters for model versions, shared by the registry pages, the compliance matrix and the API."""

import django_filters
from django.db.models import Q, QuerySet

from registry.models import Capability, Lifecycle, Model, ModelVersion, Provider, Region


class ModelVersionFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(method="search", label="Search")
    provider = django_filters.ModelChoiceFilter(
        field_name="model__provider",
        to_field_name="slug",
        queryset=Provider.objects.all(),
        label="Provider",
        empty_label="Any",
    )
    tier = django_filters.ChoiceFilter(
        field_name="model__tier", choices=Model.Tier.choices, label="Tier", empty_label="Any"
    )
    capability = django_filters.ModelChoiceFilter(
        field_name="model__capabilities",
        to_field_name="slug",
        queryset=Capability.objects.all(),
        label="Capability",
        empty_label="Any",
    )
    lifecycle = django_filters.ChoiceFilter(choices=Lifecycle.choices, empty_label="Any")
    region = django_filters.ModelChoiceFilter(
        field_name="regions", to_field_name="slug", queryset=Region.objects.all(), label="Region", empty_label="Any"
    )

    class Meta:
        model = ModelVersion
        fields = ["q", "provider", "tier", "capability", "lifecycle", "region"]

    def search(self, queryset: QuerySet[ModelVersion], name: str, value: str) -> QuerySet[ModelVersion]:
        """Match any word against provider, model, family, label or API id."""
        for word in value.split():
            queryset = queryset.filter(
                Q(model__provider__name__icontains=word)
                | Q(model__name__icontains=word)
                | Q(model__family__icontains=word)
                | Q(label__icontains=word)
                | Q(api_model_id__icontains=word)
            )
        return queryset

    @property
    def qs(self) -> QuerySet[ModelVersion]:
        # Filtering through many-to-many joins can repeat a row.
        queryset: QuerySet[ModelVersion] = super().qs
        return queryset.distinct()
