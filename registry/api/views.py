"""Registry endpoints. Viewsets are declarative; every write is one call to ``registry.services``.

Services raise ``django.core.exceptions.ValidationError``; ``console.api.exception_handler`` turns
it into a 400 naming the fields, so the viewsets let it propagate.
"""

from typing import Any, TypeVar

import django_filters
from django.db import models
from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import permissions, routers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer

from console.api import RoleViewSetMixin
from registry import services
from registry.api import serializers
from registry.filters import ModelVersionFilter
from registry.models import (
    Capability,
    Certification,
    ComplianceCell,
    Counter,
    DataClassification,
    Model,
    ModelVersion,
    Provider,
    Region,
)

COMPLIANCE_REVISION_HEADER = "X-Compliance-Revision"
M = TypeVar("M", bound=models.Model)


def split_m2m(model_class: type[models.Model], validated: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Validated data as (plain fields, many-to-many fields), the services' ``data`` and ``m2m``."""
    m2m_names = {field.name for field in model_class._meta.many_to_many}
    data = {name: value for name, value in validated.items() if name not in m2m_names}
    m2m = {name: value for name, value in validated.items() if name in m2m_names}
    return data, m2m


class ServiceModelViewSet(RoleViewSetMixin, viewsets.ModelViewSet[M]):
    """CRUD whose writes go through ``create_object``, ``update_object`` and ``delete_object``."""

    queryset: QuerySet[M]  # every endpoint names its objects

    def perform_create(self, serializer: BaseSerializer[M]) -> None:
        model_class = self.queryset.model
        data, m2m = split_m2m(model_class, serializer.validated_data)
        serializer.instance = services.create_object(model_class, data=data, m2m=m2m)

    def perform_update(self, serializer: BaseSerializer[M]) -> None:
        assert serializer.instance is not None, "an update always has its object"
        data, m2m = split_m2m(self.queryset.model, serializer.validated_data)
        serializer.instance = services.update_object(serializer.instance, data=data, m2m=m2m)

    def perform_destroy(self, instance: M) -> None:
        services.delete_object(instance)


class RegionViewSet(ServiceModelViewSet[Region]):
    queryset = Region.objects.all()
    serializer_class = serializers.RegionSerializer
    search_fields = ["slug", "name"]
    ordering_fields = ["slug", "name"]


class CertificationViewSet(ServiceModelViewSet[Certification]):
    queryset = Certification.objects.all()
    serializer_class = serializers.CertificationSerializer
    search_fields = ["slug", "name"]
    ordering_fields = ["slug", "name"]


class CapabilityViewSet(ServiceModelViewSet[Capability]):
    queryset = Capability.objects.all()
    serializer_class = serializers.CapabilitySerializer
    search_fields = ["slug", "name"]
    ordering_fields = ["slug", "name"]


class DataClassificationViewSet(ServiceModelViewSet[DataClassification]):
    queryset = DataClassification.objects.all()
    serializer_class = serializers.DataClassificationSerializer
    search_fields = ["slug", "name"]
    ordering_fields = ["slug", "name", "sensitivity"]


class ProviderFilter(django_filters.FilterSet):
    region = django_filters.ModelChoiceFilter(field_name="regions", to_field_name="slug", queryset=Region.objects.all())
    certification = django_filters.ModelChoiceFilter(
        field_name="certifications", to_field_name="slug", queryset=Certification.objects.all()
    )

    class Meta:
        model = Provider
        fields = ["kind", "status", "region", "certification"]


class ProviderViewSet(ServiceModelViewSet[Provider]):
    queryset = Provider.objects.prefetch_related("regions", "certifications")
    serializer_class = serializers.ProviderSerializer
    filterset_class = ProviderFilter
    search_fields = ["name", "slug"]
    ordering_fields = ["name", "slug", "kind", "status"]


class ModelFilter(django_filters.FilterSet):
    provider = django_filters.ModelChoiceFilter(to_field_name="slug", queryset=Provider.objects.all())
    capability = django_filters.ModelChoiceFilter(
        field_name="capabilities", to_field_name="slug", queryset=Capability.objects.all()
    )

    class Meta:
        model = Model
        fields = ["provider", "tier", "family", "capability"]


class ProviderModelViewSet(ServiceModelViewSet[Model]):
    queryset = Model.objects.select_related("provider").prefetch_related("capabilities")
    serializer_class = serializers.ProviderModelSerializer
    filterset_class = ModelFilter
    search_fields = ["name", "slug", "family", "provider__name"]
    ordering_fields = ["name", "slug", "tier", "provider__name"]


class ModelVersionViewSet(ServiceModelViewSet[ModelVersion]):
    """Versions, written through ``create_version``/``update_version``; the lifecycle only by transition.

    Free-text search is the filterset's ``q`` (shared with the registry pages), so no ``search``.
    """

    queryset = ModelVersion.objects.select_related("model__provider").prefetch_related("regions")
    serializer_class = serializers.ModelVersionSerializer
    filterset_class = ModelVersionFilter
    ordering_fields = [
        "label",
        "created_at",
        "context_window",
        "input_cost_per_mtok",
        "output_cost_per_mtok",
        "typical_latency_ms",
    ]

    def perform_create(self, serializer: BaseSerializer[ModelVersion]) -> None:
        data = dict(serializer.validated_data)
        regions = data.pop("regions")
        serializer.instance = services.create_version(data=data, regions=regions)

    def perform_update(self, serializer: BaseSerializer[ModelVersion]) -> None:
        assert serializer.instance is not None, "an update always has its object"
        data = dict(serializer.validated_data)
        regions = data.pop("regions", None)
        serializer.instance = services.update_version(serializer.instance, data=data, regions=regions)

    def perform_destroy(self, instance: ModelVersion) -> None:
        services.delete_version(instance)

    @extend_schema(request=serializers.TransitionSerializer, responses=serializers.ModelVersionSerializer)
    @action(
        detail=True,
        methods=["post"],
        # A transition changes the version: the change permission, not POST's usual add.
        required_permissions={"POST": ("registry.change_modelversion",)},
    )
    def transition(self, request: Request, pk: str | None = None) -> Response:
        """Move the version one lifecycle step (candidate → approved → deprecated → retired)."""
        version = self.get_object()
        step = serializers.TransitionSerializer(data=request.data)
        step.is_valid(raise_exception=True)
        version = services.transition_version(version, **step.validated_data)
        return Response(self.get_serializer(self.get_queryset().get(pk=version.pk)).data)


class ComplianceFilter(django_filters.FilterSet):
    classification = django_filters.ModelChoiceFilter(to_field_name="slug", queryset=DataClassification.objects.all())

    class Meta:
        model = ComplianceCell
        fields = ["model_version", "classification", "decision"]


@extend_schema_view(
    list=extend_schema(
        parameters=[
            OpenApiParameter(
                COMPLIANCE_REVISION_HEADER,
                OpenApiTypes.INT,
                location=OpenApiParameter.HEADER,
                response=True,
                description="Matrix revision read before the rows: the rows are at least this new.",
            )
        ]
    )
)
class ComplianceViewSet(RoleViewSetMixin, viewsets.ReadOnlyModelViewSet[ComplianceCell]):
    """The stored cells of the compliance matrix. A pair without a cell is denied.

    Read only: a decision needs a reason and evidence and is taken on the matrix page.
    """

    queryset = ComplianceCell.objects.select_related(
        "classification", "model_version__model__provider"
    ).prefetch_related("regions")
    serializer_class = serializers.ComplianceCellSerializer
    filterset_class = ComplianceFilter
    ordering_fields = ["decided_at", "expires_on", "revision"]

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        revision = services.current(Counter.COMPLIANCE_REVISION)
        response = super().list(request, *args, **kwargs)
        response[COMPLIANCE_REVISION_HEADER] = str(revision)
        return response


class APIRootView(routers.APIRootView):
    """The API's index: links for signed-in clients, 401 for anonymous ones like every endpoint."""

    permission_classes = [permissions.IsAuthenticated]


class Router(routers.DefaultRouter):
    APIRootView = APIRootView
