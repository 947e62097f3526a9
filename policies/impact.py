"""Impact preview for reviewers: how a proposed version would have routed recent traffic.

The policy's last requests (decisions and refusals, as stored in the audit log) are replayed
against the active version and the proposed one, on today's registry and matrix, so the only
difference between the two columns is the rules.
"""

import dataclasses
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from django.utils import timezone

from audit.models import AuditEvent
from policies import engine
from policies.models import PolicyVersion
from policies.snapshot import holder

REPLAY_LIMIT = 1000


@dataclass(frozen=True)
class Change:
    """One replayed request whose answer differs between the active and the proposed version."""

    decision_id: str
    application: str
    task_type: str
    classification: str
    active: str  # a model version ref, or "refused"
    proposed: str
    active_cost: float | None
    proposed_cost: float | None


@dataclass
class Impact:
    replayed: int = 0
    skipped: int = 0  # requests that cannot be replayed (the application or its request is gone)
    active_mix: Counter[str] = field(default_factory=Counter)
    proposed_mix: Counter[str] = field(default_factory=Counter)
    active_cost: float = 0.0
    proposed_cost: float = 0.0
    changes: list[Change] = field(default_factory=list)

    @property
    def changed(self) -> int:
        return len(self.changes)

    @property
    def cost_delta(self) -> float:
        return self.proposed_cost - self.active_cost


def _policy(version: PolicyVersion) -> engine.Policy:
    rules = tuple(engine.compile_rule(rule) for rule in version.document.get("rules", []))
    return engine.Policy(slug=version.policy.slug, version=version.number, rules=rules)


def _request(event: AuditEvent, app: engine.App) -> engine.Request | None:
    body: dict[str, Any] = (event.data or {}).get("request") or {}
    if "task_type" not in body or "data_classification" not in body:
        return None
    return engine.Request.from_body(
        app, body, request_id=event.request_id or (event.decision_id.hex if event.decision_id else "")
    )


def _outcome(result: engine.Decision | engine.Refusal) -> tuple[str, float | None]:
    if isinstance(result, engine.Decision):
        return result.model.ref, result.estimated_cost_usd
    return "refused", None


def preview(proposed: PolicyVersion, *, limit: int = REPLAY_LIMIT) -> Impact:
    """Replay the policy's last ``limit`` routing requests against the active and proposed rules."""
    snapshot = holder.get()
    apps = {key.app.id: key.app for key in snapshot.keys.values()}
    active_version = proposed.policy.versions.filter(state=PolicyVersion.State.ACTIVE).first()
    with_proposed = {**snapshot.policies, proposed.policy.slug: _policy(proposed)}
    with_active = dict(snapshot.policies)
    if active_version is None:
        with_active.pop(proposed.policy.slug, None)
    scenarios = (
        dataclasses.replace(snapshot, policies=with_active),
        dataclasses.replace(snapshot, policies=with_proposed),
    )
    events = AuditEvent.objects.filter(
        policy_slug=proposed.policy.slug, kind__in=("routing.decision", "routing.refused")
    ).order_by("-id")[:limit]
    today = timezone.localdate()
    impact = Impact()
    for event in events:
        app = apps.get(event.application_id or 0)
        request = _request(event, app) if app else None
        if app is None or request is None:
            impact.skipped += 1
            continue
        app_governed = dataclasses.replace(app, policy=proposed.policy.slug)
        request = dataclasses.replace(request, app=app_governed)
        before, before_cost = _outcome(engine.decide(scenarios[0], request, today))
        after, after_cost = _outcome(engine.decide(scenarios[1], request, today))
        impact.replayed += 1
        impact.active_mix[before] += 1
        impact.proposed_mix[after] += 1
        impact.active_cost += before_cost or 0.0
        impact.proposed_cost += after_cost or 0.0
        if before != after:
            impact.changes.append(
                Change(
                    decision_id=str(event.decision_id),
                    application=event.application_name,
                    task_type=request.task_type,
                    classification=request.classification,
                    active=before,
                    proposed=after,
                    active_cost=before_cost,
                    proposed_cost=after_cost,
                )
            )
    return impact
