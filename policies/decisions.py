"""Deciding a route and recording it: the part of the routing API that is not HTTP.

The view authenticates and validates; this module asks the engine and writes the audit event
before anything is answered. The demo data and tests record decisions through it too.
"""

import datetime
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import insert
from policies import engine


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


@contextmanager
def insert_guard() -> Iterator[None]:
    """A savepoint when a transaction is open (so a duplicate does not poison it), else nothing:
    in autocommit the insert stays one round trip."""
    if connection.in_atomic_block:
        with transaction.atomic():
            yield
    else:
        yield


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
    """Decide, store the decision (or refusal) as an audit event, then return the answer.

    ``at`` dates a decision in the past (demo traffic); compliance expiry is judged on its day.
    """
    at = at or timezone.now()
    decision_id = uuid.uuid4()
    split_key = wanted.request_id or decision_id.hex  # without a request id, the decision id stands in
    routed = engine.decide(
        snapshot, engine.Request(**{**_fields(wanted), "request_id": split_key}), timezone.localdate(at)
    )
    record = _Record(snapshot, wanted, decision_id, stored_request, ip, user_agent, at)
    if isinstance(routed, engine.Refusal):
        return record.refusal(routed)
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
        with insert_guard():
            insert(event)
    except IntegrityError:
        # The same request id from the same application: answer with the first decision.
        first = AuditEvent.objects.filter(
            kind="routing.decision", application_id=wanted.app.id, request_id=wanted.request_id
        ).first()
        if first is None or not first.data:
            raise
        return Answer(200, first.data["response"], {"X-Idempotent-Replay": "true"})
    return Answer(200, answer)


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
