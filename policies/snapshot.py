"""Compiles the database into the engine's in-memory ``Snapshot`` and keeps it current.

The routing hot path must not query the registry or the policies. Each process keeps one
snapshot and looks at the routing generation counter (bumped by every registry, matrix, key,
application or policy activation change) at most once per ``ROUTING_SNAPSHOT_TTL_SECONDS``,
recompiling when it moved. Expiry of keys and approvals is checked per request against the clock,
so it is never stale.
"""

import threading
import time
from decimal import Decimal

from django.conf import settings

from policies import engine
from policies.models import ApiKey, Application, PolicyVersion
from registry.models import Capability, ComplianceCell, Counter, DataClassification, ModelVersion, Region
from registry.services import current

PER_TOKEN = Decimal(1_000_000)
MICRO = Decimal(1_000_000)


def micro_usd(amount: Decimal | None) -> int | None:
    """A budget in the spend counters' unit, micro-dollars; None stays None (no budget)."""
    return None if amount is None else int(amount * MICRO)


def compile_snapshot() -> engine.Snapshot:
    """Read everything routing needs, in a handful of queries."""
    generation = current(Counter.ROUTING_GENERATION)
    versions = {}
    for version in ModelVersion.objects.select_related("model__provider").prefetch_related("regions"):
        provider = version.model.provider
        ref = f"{provider.slug}/{version.model.slug}/{version.label}"
        versions[ref] = engine.Version(
            id=version.pk,
            ref=ref,
            provider=provider.slug,
            provider_name=provider.name,
            provider_status=provider.status,
            model=version.model.name,
            label=version.label,
            api_model_id=version.api_model_id,
            tier=version.model.tier,
            lifecycle=version.lifecycle,
            regions=frozenset(region.slug for region in version.regions.all()),
            context_window=version.context_window,
            input_cost=float(version.input_cost_per_mtok / PER_TOKEN),
            output_cost=float(version.output_cost_per_mtok / PER_TOKEN),
            latency_ms=version.typical_latency_ms,
            quality={key: float(value) for key, value in version.quality_scores.items()},
        )
    approvals = {
        (cell.model_version_id, cell.classification.slug): engine.Approval(
            regions=frozenset(region.slug for region in cell.regions.all()), expires_on=cell.expires_on
        )
        for cell in ComplianceCell.objects.filter(decision=ComplianceCell.Decision.APPROVED)
        .select_related("classification")
        .prefetch_related("regions")
    }
    apps = {}
    for application in Application.objects.select_related("team", "policy").prefetch_related("allowed_classifications"):
        apps[application.pk] = engine.App(
            id=application.pk,
            slug=application.slug,
            name=application.name,
            team=application.team.slug,
            team_name=application.team.name,
            classifications=frozenset(c.slug for c in application.allowed_classifications.all()),
            policy=application.policy.slug if application.policy else None,
            content_capture=application.content_capture,
            team_id=application.team_id,
            team_budget_micro=micro_usd(application.team.monthly_budget_usd),
            requests_per_minute=application.requests_per_minute,
            budget_micro=micro_usd(application.monthly_budget_usd),
        )
    keys = {
        key.key_hash: engine.Key(app=apps[key.application_id], expires_at=key.expires_at, revoked_at=key.revoked_at)
        for key in ApiKey.objects.all()
    }
    policies = {}
    for active in PolicyVersion.objects.filter(state=PolicyVersion.State.ACTIVE).select_related("policy"):
        rules = tuple(engine.compile_rule(rule) for rule in active.document.get("rules", []))
        policies[active.policy.slug] = engine.Policy(slug=active.policy.slug, version=active.number, rules=rules)
    return engine.Snapshot(
        generation=generation,
        compliance_revision=current(Counter.COMPLIANCE_REVISION),
        versions=versions,
        approvals=approvals,
        keys=keys,
        policies=policies,
        task_types=frozenset(Capability.objects.values_list("slug", flat=True)),
        classifications=frozenset(DataClassification.objects.values_list("slug", flat=True)),
        regions=frozenset(Region.objects.values_list("slug", flat=True)),
    )


class SnapshotHolder:
    """One process's current snapshot; threads share it, and only one recompiles at a time."""

    def __init__(self) -> None:
        self._snapshot: engine.Snapshot | None = None
        self._checked_at = 0.0
        self._lock = threading.Lock()

    def get(self) -> engine.Snapshot:
        snapshot = self._snapshot
        now = time.monotonic()
        if snapshot is not None and now - self._checked_at < settings.ROUTING_SNAPSHOT_TTL_SECONDS:
            return snapshot
        with self._lock:
            if self._snapshot is None or current(Counter.ROUTING_GENERATION) != self._snapshot.generation:
                self._snapshot = compile_snapshot()
            self._checked_at = time.monotonic()
            return self._snapshot

    def clear(self) -> None:
        with self._lock:
            self._snapshot = None


holder = SnapshotHolder()
