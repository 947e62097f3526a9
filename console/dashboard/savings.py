"""What the traffic would have cost under a baseline, to show what routing saves.

The default baseline is the expensive habit routing replaces: every request sent to the most
expensive model version the compliance matrix would have allowed for its data classification.
An administrator may instead pick one version ("everything to X").

Approximations, said on the page too:
- tokens are those outcomes reported (decisions without an outcome carry none), so the actual
  side is what those same tokens cost at the list price of the version that answered (the
  rollups' reported cost), not the routing estimate, which prices the requested maximum output;
- "allowed" is today's matrix (approved, not expired, version approved or deprecated), not the
  matrix of each request's day, and ignores region limits and the applications' own limits;
- the most expensive version is chosen per month, team and classification for those tokens,
  which is the same as per request whenever one version is the dearest for both input and output.
"""

import datetime
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Q

from console.dashboard.filters import MOST_EXPENSIVE
from console.dashboard.versions import VersionInfo
from registry.models import ComplianceCell, Lifecycle

ROUTABLE = (Lifecycle.APPROVED, Lifecycle.DEPRECATED)


def allowed_versions(today: datetime.date) -> dict[str, set[int]]:
    """Per classification slug, the versions today's matrix approves and routing could use."""
    cells = (
        ComplianceCell.objects.filter(decision=ComplianceCell.Decision.APPROVED, model_version__lifecycle__in=ROUTABLE)
        .filter(Q(expires_on__isnull=True) | Q(expires_on__gte=today))
        .values_list("classification__slug", "model_version_id")
    )
    allowed: dict[str, set[int]] = defaultdict(set)
    for slug, version_id in cells:
        allowed[slug].add(version_id)
    return allowed


@dataclass(frozen=True)
class Baseline:
    """How a month's tokens are priced: one chosen version, or the dearest allowed one."""

    choice: str
    versions: dict[int, VersionInfo]
    allowed: dict[str, set[int]]

    @property
    def version(self) -> VersionInfo | None:
        if self.choice == MOST_EXPENSIVE:
            return None
        return self.versions.get(int(self.choice))

    def describe(self) -> str:
        version = self.version
        if version is None:
            return "every request sent to the most expensive version allowed for its classification"
        return f"every request sent to {version.name}"

    def cost(self, classification: str, input_tokens: int, output_tokens: int) -> Decimal | None:
        """The baseline's cost of these tokens; None when nothing is allowed for the classification."""
        version = self.version
        if version is not None:
            return version.cost(input_tokens, output_tokens)
        allowed = [self.versions[i] for i in self.allowed.get(classification, ()) if i in self.versions]
        return max((version.cost(input_tokens, output_tokens) for version in allowed), default=None)


def baseline_choices(versions: dict[int, VersionInfo]) -> list[tuple[str, str]]:
    """The select's options: the default, then every version routing could still use."""
    options = [(MOST_EXPENSIVE, "Most expensive allowed per classification (default)")]
    for version in versions.values():
        if version.lifecycle in ROUTABLE:
            price = f"${version.input_cost_per_mtok:,.2f} in / ${version.output_cost_per_mtok:,.2f} out per M tokens"
            options.append((str(version.id), f"Everything to {version.name} ({price})"))
    return options
