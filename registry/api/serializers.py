"""Shapes of the registry API. Serializers check shape only; ``registry.services`` decides the rules.

Related objects are named by slug (regions, certifications, capabilities, providers) so a client can
write what it reads without first looking up ids; model versions and models stay ids because their
slugs are only unique per parent.
"""

from decimal import Decimal
from typing import Any

from django.urls import NoReverseMatch
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from registry.models import (
    Capability,
    Certification,
    ComplianceCell,
    DataClassification,
    Lifecycle,
    Model,
    ModelVersion,
    Provider,
    Region,
)

# Set only by services (create starts a candidate, transitions stamp the dates).
LIFECYCLE_FIELDS = ("lifecycle", "approved_at", "deprecated_at", "retired_at", "created_at")


def slugs(queryset: Any, **kwargs: Any) -> serializers.SlugRelatedField[Any]:
    """A writable list of slugs for a many-to-many field."""
    return serializers.SlugRelatedField(many=True, slug_field="slug", queryset=queryset, **kwargs)


class RegionSerializer(serializers.ModelSerializer[Region]):
    class Meta:
        model = Region
        fields = ["id", "slug", "name"]


class CertificationSerializer(serializers.ModelSerializer[Certification]):
    class Meta:
        model = Certification
        fields = ["id", "slug", "name"]


class CapabilitySerializer(serializers.ModelSerializer[Capability]):
    class Meta:
        model = Capability
        fields = ["id", "slug", "name"]


class DataClassificationSerializer(serializers.ModelSerializer[DataClassification]):
    class Meta:
        model = DataClassification
        fields = ["id", "slug", "name", "sensitivity", "description"]


class ProviderSerializer(serializers.ModelSerializer[Provider]):
    regions = slugs(Region.objects.all(), required=False)
    certifications = slugs(Certification.objects.all(), required=False)

    class Meta:
        model = Provider
        fields = ["id", "name", "slug", "kind", "base_url", "credentials_env", "regions", "certifications", "status"]


class ProviderModelSerializer(serializers.ModelSerializer[Model]):
    """An AI model of a provider (named so as not to be confused with DRF's ``ModelSerializer``)."""

    provider = serializers.SlugRelatedField(slug_field="slug", queryset=Provider.objects.all())
    provider_name = serializers.CharField(source="provider.name", read_only=True)
    capabilities = slugs(Capability.objects.all(), required=False)

    class Meta:
        model = Model
        fields = ["id", "provider", "provider_name", "name", "slug", "family", "tier", "capabilities", "description"]
        # The per-provider unique constraints are checked once, by full_clean in the service,
        # whose message names the fields ("Model with this Provider and Slug already exists.").
        validators: list[Any] = []


@extend_schema_field(
    {
        "type": "object",
        "additionalProperties": {"type": "number", "minimum": 0, "maximum": 100},
        "example": {"code": 82, "reasoning": 75},
    }
)
class QualityScoresField(serializers.DictField):
    """Capability slug → score; which slugs and scores are valid is the service's rule."""


class ModelVersionSerializer(serializers.ModelSerializer[ModelVersion]):
    model = serializers.PrimaryKeyRelatedField(queryset=Model.objects.select_related("provider"))
    model_name = serializers.CharField(source="model.name", read_only=True)
    provider: serializers.SlugRelatedField[Provider] = serializers.SlugRelatedField(
        source="model.provider", slug_field="slug", read_only=True
    )
    regions = slugs(Region.objects.all())
    quality_scores = QualityScoresField(required=False)
    successor = serializers.PrimaryKeyRelatedField(queryset=ModelVersion.objects.all(), allow_null=True, required=False)
    is_frozen = serializers.BooleanField(read_only=True)
    lifecycle_warnings = serializers.SerializerMethodField()
    url = serializers.SerializerMethodField()

    class Meta:
        model = ModelVersion
        fields = [
            "id",
            "model_name",
            "provider",
            *ModelVersion.EDITABLE_FIELDS,
            *LIFECYCLE_FIELDS,
            "is_frozen",
            "lifecycle_warnings",
            "url",
        ]
        read_only_fields = LIFECYCLE_FIELDS
        extra_kwargs = {
            # Stated here as well as on the model so the 400 reads "greater than or equal to 0".
            "input_cost_per_mtok": {"min_value": Decimal("0")},
            "output_cost_per_mtok": {"min_value": Decimal("0")},
        }
        # "One label per model" is checked by full_clean in the service, inside its transaction.
        validators: list[Any] = []

    def get_lifecycle_warnings(self, version: ModelVersion) -> list[str]:
        return version.lifecycle_warnings()

    def get_url(self, version: ModelVersion) -> str | None:
        """The version's page in the console; null while the registry pages are not installed."""
        try:
            return version.get_absolute_url()
        except NoReverseMatch:
            return None


class TransitionSerializer(serializers.Serializer[None]):
    # Every lifecycle but candidate: nothing ever goes back to being a candidate. Which step is
    # allowed from where is the service's rule, and its refusal names the allowed steps.
    to = serializers.ChoiceField(
        choices=[(value, label) for value, label in Lifecycle.choices if value != Lifecycle.CANDIDATE]
    )
    reason = serializers.CharField(required=False, allow_blank=True, default="")


class ComplianceCellSerializer(serializers.ModelSerializer[ComplianceCell]):
    """A stored cell of the matrix; ``effective_decision`` is what routing obeys today."""

    model_version_name = serializers.CharField(source="model_version", read_only=True)
    classification: serializers.SlugRelatedField[DataClassification] = serializers.SlugRelatedField(
        slug_field="slug", read_only=True
    )
    effective_decision = serializers.SerializerMethodField()
    expired = serializers.SerializerMethodField()
    regions: serializers.SlugRelatedField[Region] = serializers.SlugRelatedField(
        many=True, slug_field="slug", read_only=True
    )
    decided_by = serializers.CharField(source="decided_by_name", read_only=True)

    class Meta:
        model = ComplianceCell
        fields = [
            "id",
            "model_version",
            "model_version_name",
            "classification",
            "decision",
            "effective_decision",
            "expired",
            "regions",
            "expires_on",
            "evidence",
            "evidence_url",
            "decided_by",
            "decided_at",
            "revision",
        ]
        read_only_fields = fields

    # A plain string in the schema: an enum equal to ``decision``'s would need a second name.
    @extend_schema_field({"type": "string", "description": "approved or denied; an expired approval is denied"})
    def get_effective_decision(self, cell: ComplianceCell) -> str:
        return cell.effective_decision()

    def get_expired(self, cell: ComplianceCell) -> bool:
        return cell.is_expired()
