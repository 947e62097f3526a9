"""Deciding a route and recording it: the part of the routing API that is not HTTP.

The view authenticates and validates; this module asks the engine, checks the quota and the
budgets, and writes the audit event before anything is answered. The demo data and tests record
decisions through it too.

Order, and why: the engine decides first (in memory), so the one counters round trip can carry
the cost to charge (see ``policies.counters``). Over quota, the answer is 429 and nothing is
recorded: throttling is flow control, like a 400 or a 401, and recording every throttled call
would let a runaway client write to the audit log as fast as it can send. A request over budget
is refused (429, recorded as a refusal) or downgraded to the economy tier, as its rule says.
"""

import datetime
import uuid
from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import insert
from policies import budgets, engine
from policies.counters import CountersUnavailable, Window, get_counters, insert_guard

MICRO = 1_000_000


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


def describe(version: engine.Version) -> dict[str, Any]:
    return {
        "provider": version.provider,
        "model": version.model,
        "version": version.label,
        "api_model_id": version.api_model_id,
        "model_version_id": version.id,
    }


def decide_and_record(
    snapshot: engine.Snapshot,
    wanted: engine.Request,
    *,
    stored_request: dict[str, Any],
    ip: str | None = None,
    user_agent: str = "",
    at: datetime.datetime | None = None,
) -> Answer:
    """Decide, count it against the quota and budgets, store the decision (or refusal) as an audit
    event, then return the answer.

    ``at`` dates a decision in the past (demo traffic); compliance expiry is judged on its day,
    and its quota minute and budget month are its own.
    """
    at = at or timezone.now()
    today = timezone.localdate(at)
    decision_id = uuid.uuid4()
    split_key = wanted.request_id or decision_id.hex  # without a request id, the decision id stands in
    request = engine.Request(**{**_fields(wanted), "request_id": split_key})
    routed = engine.decide(snapshot, request, today)
    record = _Record(snapshot, wanted, decision_id, stored_request, ip, user_agent, at)
    counters = get_counters()
    window = budgets.window(wanted.app, at)
    within = over = 0
    if isinstance(routed, engine.Decision):
        within = _micro(routed)
        if counters.charges_in_check and routed.rule.over_budget == engine.DOWNGRADE:
            # Only its cost is needed now; its reasons are made again below if it is used.
            over = _micro(engine.downgrade(snapshot, request, routed, today, "over budget"))
    try:
        usage = counters.check(window, within=within, over=over)
    except CountersUnavailable:
        detail = "The quota and budget counters cannot be reached; try again."
        return Answer(503, {"detail": detail}, {"Retry-After": "1"})
    if usage.over_quota(window):
        return _over_quota(wanted.app, window, at)
    if isinstance(routed, engine.Refusal):
        return record.refusal(routed)
    why = budgets.exceeded(wanted.app, window, usage)
    if why and routed.rule.over_budget != engine.DOWNGRADE:
        budgets.notice(window, usage, 0)
        return record.over_budget(routed, why, budgets.over_budget_body(wanted.app, window, usage))
    if why:
        routed = engine.downgrade(snapshot, request, routed, today, why)
        if isinstance(routed, engine.Refusal):
            budgets.notice(window, usage, 0)
            return record.refusal(routed)
    charge = _micro(routed)
    answer = {
        "decision_id": str(decision_id),
        "model": describe(routed.model),
        "fallbacks": [describe(version) for version in routed.fallbacks],
        "verifier": describe(routed.verifier) if routed.verifier else None,
        "policy": {"slug": routed.policy.slug, "version": routed.policy.version},
        "rule": routed.rule.name,
        "compliance_revision": snapshot.compliance_revision,
        "reasons": list(routed.reasons),
        "estimated_cost_usd": round(routed.estimated_cost_usd, 6),
    }
    event = record.event(
        "routing.decision",
        policy_slug=routed.policy.slug,
        policy_version=routed.policy.version,
        rule=routed.rule.name,
        model_version_id=routed.model.id,
        model_version_name=routed.model.ref,
        data={"request": stored_request, "response": answer},
    )
    try:
        counters.store(event, window, charge)
    except IntegrityError:
        # The same request id from the same application: answer with the first decision, and
        # give back what was charged for this one.
        counters.refund(window, charge)
        first = AuditEvent.objects.filter(
            kind="routing.decision", application_id=wanted.app.id, request_id=wanted.request_id
        ).first()
        if first is None or not first.data:
            raise
        return Answer(200, first.data["response"], {"X-Idempotent-Replay": "true"})
    budgets.notice(window, usage, charge)
    return Answer(200, answer)


def _micro(routed: engine.Decision | engine.Refusal) -> int:
    """What a decision is charged, in the counters' micro-dollars; a refusal costs nothing.

    Exactly the estimate the answer reports and the ledger stores (rounded to six places first),
    so ``policies.spend`` can rebuild the counters from the ledger: rounding the unrounded cost
    instead differs by one micro-dollar for costs near a half (0.0000035 rounds to 3 and to 4).
    """
    return round(round(routed.estimated_cost_usd, 6) * MICRO) if isinstance(routed, engine.Decision) else 0


def _over_quota(app: engine.App, window: Window, at: datetime.datetime) -> Answer:
    seconds = budgets.retry_after(window, at)
    quota = window.requests_per_minute
    detail = f"Application {app.name} is over its quota of {quota} requests per minute; retry in {seconds} s."
    body = {"detail": detail, "quota": {"requests_per_minute": quota, "retry_after_seconds": seconds}}
    return Answer(429, body, {"Retry-After": str(seconds)})


def _fields(route: engine.Request) -> dict[str, Any]:
    return {name: getattr(route, name) for name in engine.Request.__slots__}


@dataclass(frozen=True)
class _Record:
    snapshot: engine.Snapshot
    wanted: engine.Request
    decision_id: uuid.UUID
    stored_request: dict[str, Any]
    ip: str | None
    user_agent: str
    at: datetime.datetime

    def event(self, kind: str, **fields: Any) -> AuditEvent:
        app, wanted = self.wanted.app, self.wanted
        return AuditEvent(
            occurred_at=self.at,
            kind=kind,
            actor_name=f"app:{app.slug}",
            actor_ip=self.ip,
            user_agent=self.user_agent,
            request_id=wanted.request_id,
            decision_id=self.decision_id,
            application_id=app.id,
            application_name=app.name,
            team_name=app.team_name,
            compliance_revision=self.snapshot.compliance_revision,
            classification=wanted.classification,
            region=wanted.region or "",
            task_type=wanted.task_type,
            **fields,
        )

    def refusal(self, refusal: engine.Refusal) -> Answer:
        """403 for a classification the application may not send, else 422 naming every exclusion."""
        forbidden = self.wanted.classification not in self.wanted.app.classifications
        status = 403 if forbidden else 422
        body: dict[str, Any] = {"detail": refusal.detail, "decision_id": str(self.decision_id)}
        if not forbidden:
            policy = refusal.policy
            body["policy"] = {"slug": policy.slug, "version": policy.version} if policy else None
            body["rule"] = refusal.rule.name if refusal.rule else None
            body["compliance_revision"] = self.snapshot.compliance_revision
            body["excluded"] = [
                {"model_version": version.ref, "model_version_id": version.id, "reason": why}
                for version, why in refusal.excluded
            ]
        event = self.event(
            "routing.refused",
            policy_slug=refusal.policy.slug if refusal.policy else "",
            policy_version=refusal.policy.version if refusal.policy else None,
            rule=refusal.rule.name if refusal.rule else "",
            reason=refusal.detail,
            data={"request": self.stored_request, "response": body, "status": status},
        )
        with insert_guard():
            insert(event)
        return Answer(status, body)

    def over_budget(self, decision: engine.Decision, why: str, exceeded: list[dict[str, Any]]) -> Answer:
        """429 naming the budget, recorded like every refusal: the rule says refuse over budget."""
        policy, rule = decision.policy, decision.rule
        detail = f"{why}: refused by rule '{rule.name}' of policy {policy.slug} v{policy.version}."
        body: dict[str, Any] = {
            "detail": detail,
            "decision_id": str(self.decision_id),
            "policy": {"slug": policy.slug, "version": policy.version},
            "rule": rule.name,
            "budgets": exceeded,
        }
        event = self.event(
            "routing.refused",
            policy_slug=policy.slug,
            policy_version=policy.version,
            rule=rule.name,
            reason=detail,
            data={"request": self.stored_request, "response": body, "status": 429},
        )
        with insert_guard():
            insert(event)
        return Answer(429, body)
