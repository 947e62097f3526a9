"""What the dashboard needs of the registry's model versions, read once per request.

Rollups name a model version by id and by the name it had then; provider, model, tier,
lifecycle and prices come from the registry, in one query for the ids present together with
every version routing could still use (the savings baseline offers those).
"""

import datetime
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Q

from registry.models import Lifecycle, ModelVersion

UNKNOWN = "(not in the registry)"


@dataclass(frozen=True)
class VersionInfo:
    id: int | None
    name: str
    provider: str
    model: str
    tier: str
    lifecycle: str
    deprecates_on: datetime.date | None
    retires_on: datetime.date | None
    input_cost_per_mtok: Decimal
    output_cost_per_mtok: Decimal
    url: str

    def cost(self, input_tokens: int, output_tokens: int) -> Decimal:
        """List price of these tokens, in dollars."""
        return (input_tokens * self.input_cost_per_mtok + output_tokens * self.output_cost_per_mtok) / 1_000_000


def unknown_version(version_id: int | None, name: str) -> VersionInfo:
    """A version the rollups name but the registry no longer holds: shown by its recorded name."""
    zero = Decimal(0)
    return VersionInfo(version_id, name or UNKNOWN, UNKNOWN, UNKNOWN, UNKNOWN, "", None, None, zero, zero, "")


def registry_versions(present: set[int]) -> dict[int, VersionInfo]:
    versions = (
        ModelVersion.objects.filter(Q(pk__in=present) | ~Q(lifecycle=Lifecycle.RETIRED))
        .select_related("model__provider")
        .order_by("model__provider__name", "model__name", "label", "pk")
    )
    return {
        version.pk: VersionInfo(
            id=version.pk,
            name=str(version),
            provider=version.model.provider.name,
            model=str(version.model),
            tier=version.model.tier,
            lifecycle=version.lifecycle,
            deprecates_on=version.deprecates_on,
            retires_on=version.retires_on,
            input_cost_per_mtok=version.input_cost_per_mtok,
            output_cost_per_mtok=version.output_cost_per_mtok,
            url=version.get_absolute_url(),
        )
        for version in versions
    }
