"""Demo routing policies, keys and a month of traffic, loaded by ``manage.py seed_demo``.

Everything goes through the services, as people would: the administrator writes each policy,
reviewers approve it, one more change waits in the review queue, and the traffic is recorded
by the same code as the routing API, so the impact preview and the audit log have something real.
"""

import datetime
import hashlib
import random
import uuid
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import User
from django.db.models import Count
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import insert
from policies import budgets, decisions, engine, services
from policies.counters import APPLICATION, get_counters
from policies.models import Application, Policy
from policies.snapshot import compile_snapshot
from registry import services as registry_services

# slug: (name, required approvals, applications, rules)
POLICIES: dict[str, tuple[str, int, tuple[str, ...], list[dict[str, Any]]]] = {
    "customer-care": (
        "Customer care",
        1,
        ("support-assistant", "ticket-triage"),
        [
            {
                "name": "customer-pii",
                "description": "Personal data goes to a model approved for it, in the EU when possible.",
                "match": {"classifications": ["pii"]},
                "action": {"pinned": "anthropic/claude-quill/4.0"},
                "fallbacks": ["helix/helix-70b/2.0", "anthropic/claude-lark/3.5"],
            },
            {
                "name": "triage",
                "description": "Classification and extraction: the cheapest model that is good enough.",
                "match": {"task_types": ["classification", "extraction"]},
                "action": {"cheapest": {"min_quality": 70}},
                "fallbacks": ["openai/gpt-lite/2.0"],
                "over_budget": "downgrade",
            },
            {
                "name": "hard-cases",
                "match": {"complexity": ["high"]},
                "action": {"tier": "frontier"},
            },
            {
                "name": "everything-else",
                "description": "Canary: 10% of the rest tries the new Quill.",
                "action": {
                    "split": [
                        {"model_version": "openai/gpt-standard/4.1", "weight": 90},
                        {"model_version": "anthropic/claude-quill/4.0", "weight": 10},
                    ]
                },
                "fallbacks": ["google/gemini-spark/2.0"],
                "escalation": {"complexity": "medium", "tier": "workhorse"},
                "over_budget": "downgrade",
            },
        ],
    ),
    "clinical": (
        "Clinical research",
        2,
        ("trial-summarizer",),
        [
            {
                "name": "phi",
                "description": "Health data: only BAA-covered models, checked by a second provider.",
                "match": {"classifications": ["phi"]},
                "action": {"pinned": "anthropic/claude-quill/4.0"},
                "fallbacks": ["openai/gpt-standard/4.1"],
                "verifier": "openai/gpt-standard/4.1",
            },
            {
                "name": "sensitive-in-eu",
                "match": {"classifications": ["pii", "confidential"]},
                "action": {"pinned": "helix/helix-70b/2.0"},
                "fallbacks": ["anthropic/claude-quill/4.0"],
            },
            {
                "name": "default",
                "action": {"cheapest": {"min_quality": 75}},
            },
        ],
    ),
}

# The change waiting for review: the canary grows from 10% to 50%.
PENDING_CHANGE = (
    "customer-care",
    3,
    [
        {"model_version": "openai/gpt-standard/4.1", "weight": 50},
        {"model_version": "anthropic/claude-quill/4.0", "weight": 50},
    ],
)

TRAFFIC_DAYS = 30
TRAFFIC_PER_DAY = 120  # on a working day at the end of the month; weekends are quieter, growth is steady
WEEKEND_SHARE = 0.35
GROWTH = 0.3  # a month ago traffic was 30% lower
# Requests per hour of the day (UTC), relative: office hours are busy, nights are not.
HOURLY_WEIGHTS = (1, 1, 1, 1, 1, 2, 3, 6, 9, 10, 10, 9, 8, 9, 10, 9, 8, 6, 4, 3, 2, 2, 1, 1)
OUTCOME_SHARE = 0.95  # decisions whose application reports back
FALLBACK_SHARE = 0.04  # of outcomes, answered by the first fallback
STATUSES = ("ok",) * 96 + ("error",) * 3 + ("timeout",)
TIMEOUT_MS = 30_000
TASKS = ("summarization", "classification", "extraction", "reasoning", "code", "creative")

# Set after the traffic, which is history and was never throttled.
QUOTAS = {"support-assistant": 600, "ticket-triage": 1200, "trial-summarizer": 120}
# One application with a budget of its own, 85% spent, so the dashboard's banner has an alert.
NEAR_BUDGET_APP = "ticket-triage"
NEAR_BUDGET_SHARE = Decimal("0.85")
# Early in a month there is little spend yet; some traffic today makes the 85% a meaningful sum.
NEAR_BUDGET_MIN_SPEND = Decimal("1.00")
MAX_TODAY = 300


def load(result: Any, now: datetime.datetime) -> dict[str, str]:
    """Create what is missing; returns the raw keys made this time (shown once, never stored)."""
    admin = User.objects.get(username="admin")
    reviewers = [User.objects.get(username="reviewer"), User.objects.get(username="reviewer2")]
    for slug, (name, approvals, apps, rules) in POLICIES.items():
        if Policy.objects.filter(slug=slug).exists():
            continue
        version = services.create_policy(
            name=name, slug=slug, required_approvals=approvals, document={"rules": rules}, actor=admin
        )
        version = services.submit(version, actor=admin)
        for reviewer in reviewers[:approvals]:
            version = services.review(version, reviewer=reviewer, verdict="approve", comment="Looks right.")
        for app in Application.objects.filter(slug__in=apps):
            registry_services.update_object(app, data={"policy": version.policy}, actor=admin)
        result.created["policies"] += 1
        if slug == PENDING_CHANGE[0]:
            _propose_change(version.policy, admin)
    keys = {}
    for app in Application.objects.annotate(keys=Count("api_keys")).filter(keys=0):
        _, raw = services.generate_key(app, name="demo", actor=admin)
        keys[app.slug] = raw
    if keys:
        result.created["decisions"] += _traffic(now)
        result.created["decisions"] += _budgets(now, admin)
    return keys


def _propose_change(policy: Policy, admin: User) -> None:
    _, rule_index, split = PENDING_CHANGE
    draft = services.new_draft(policy, actor=admin)
    rules = [dict(rule) for rule in draft.document["rules"]]
    rules[rule_index] = {**rules[rule_index], "action": {"split": split}}
    draft = services.edit_version(draft, document={"rules": rules}, summary="Canary to 50%", actor=admin)
    services.submit(draft, actor=admin)


def _traffic(now: datetime.datetime) -> int:
    """A month of routing decisions and their outcomes, recorded exactly as the API records them."""
    rng = random.Random(7)  # noqa: S311 - demo data, not a secret
    snapshot = compile_snapshot()
    apps = {key.app.slug: key.app for key in snapshot.keys.values()}
    count = 0
    for day in range(TRAFFIC_DAYS, -1, -1):
        start = (now - datetime.timedelta(days=day)).replace(hour=0, minute=0, second=0, microsecond=0)
        volume = TRAFFIC_PER_DAY * (1 - GROWTH * day / TRAFFIC_DAYS) * (WEEKEND_SHARE if start.weekday() >= 5 else 1)
        for _ in range(round(volume)):
            app = apps[rng.choice(sorted(apps))]
            stored = {
                "task_type": rng.choice(TASKS),
                "data_classification": rng.choice(sorted(app.classifications)),
                "region": rng.choice(["eu", "eu", "us"]),
                "complexity": rng.choice(["low", "low", "medium", "high"]),
                "input_tokens": rng.randint(200, 12_000),
                "max_output_tokens": rng.choice([256, 512, 1024, 2048]),
            }
            hour = rng.choices(range(24), weights=HOURLY_WEIGHTS)[0]
            at = start + datetime.timedelta(hours=hour, seconds=rng.randint(0, 3599))
            if at > now:
                continue
            wanted = engine.Request.from_body(app, stored)
            answer = decisions.decide_and_record(snapshot, wanted, stored_request=stored, at=min(at, timezone.now()))
            count += 1
            if answer.status == 200 and rng.random() < OUTCOME_SHARE:
                _report_outcome(snapshot, wanted, answer.body, rng, at)
    return count


def _report_outcome(
    snapshot: engine.Snapshot, wanted: engine.Request, answer: dict[str, Any], rng: random.Random, at: datetime.datetime
) -> None:
    """What the application reports back, stored as ``POST /api/v1/decisions/<id>/outcome`` stores it."""
    offered = [answer["model"], *answer["fallbacks"]]
    used = offered[1] if len(offered) > 1 and rng.random() < FALLBACK_SHARE else offered[0]
    version = snapshot.by_id[used["model_version_id"]]
    status = rng.choice(STATUSES)
    latency = TIMEOUT_MS if status == "timeout" else round(version.latency_ms * rng.lognormvariate(0, 0.35))
    tokens_in = wanted.input_tokens
    tokens_out = rng.randint(wanted.output_tokens // 8, wanted.output_tokens) if status == "ok" else 0
    app = wanted.app
    insert(
        AuditEvent(
            occurred_at=min(at + datetime.timedelta(milliseconds=latency), timezone.now()),
            kind="routing.outcome",
            actor_name=f"app:{app.slug}",
            request_id=wanted.request_id,
            decision_id=uuid.UUID(answer["decision_id"]),
            application_id=app.id,
            application_name=app.name,
            team_name=app.team_name,
            policy_slug=answer["policy"]["slug"],
            policy_version=answer["policy"]["version"],
            rule=answer["rule"],
            compliance_revision=answer["compliance_revision"],
            classification=wanted.classification,
            region=wanted.region or "",
            task_type=wanted.task_type,
            model_version_id=version.id,
            model_version_name=version.ref,
            data={
                "status": status,
                "input_tokens": tokens_in,
                "output_tokens": tokens_out,
                "latency_ms": latency,
                "output_sha256": hashlib.sha256(answer["decision_id"].encode()).hexdigest(),
                "reported_cost_usd": round(version.cost(tokens_in, tokens_out), 6),
                "fallback_used": used is not offered[0],
            },
        )
    )


def _budgets(now: datetime.datetime, admin: User) -> int:
    """Quotas for every application, and one application near its own budget so the dashboard's
    banner shows an 80% alert (raised by the decision that finds it there, as in production)."""
    for application in Application.objects.filter(slug__in=QUOTAS):
        registry_services.update_object(
            application, data={"requests_per_minute": QUOTAS[application.slug]}, actor=admin
        )
    near_budget = Application.objects.filter(slug=NEAR_BUDGET_APP).first()
    if near_budget is None or near_budget.monthly_budget_usd is not None:
        return 0
    rng = random.Random(11)  # noqa: S311 - demo data, not a secret
    month, counters, count = budgets.month_of(now), get_counters(), 0
    snapshot = compile_snapshot()
    app = next(key.app for key in snapshot.keys.values() if key.app.id == near_budget.pk)
    since_midnight = int((now - now.replace(hour=0, minute=0, second=0, microsecond=0)).total_seconds())
    while Decimal(counters.spent(APPLICATION, app.id, month)) / budgets.MICRO < NEAR_BUDGET_MIN_SPEND:
        if count >= MAX_TODAY:
            break
        at = now - datetime.timedelta(seconds=rng.randint(0, since_midnight))
        _one_decision(snapshot, app, rng, at)
        count += 1
    spent = Decimal(counters.spent(APPLICATION, app.id, month)) / budgets.MICRO
    budget = (spent / NEAR_BUDGET_SHARE).quantize(Decimal("0.01"))
    registry_services.update_object(near_budget, data={"monthly_budget_usd": budget}, actor=admin)
    snapshot = compile_snapshot()
    app = next(key.app for key in snapshot.keys.values() if key.app.id == near_budget.pk)
    _one_decision(snapshot, app, rng, now)
    return count + 1


def _one_decision(snapshot: engine.Snapshot, app: engine.App, rng: random.Random, at: datetime.datetime) -> None:
    stored = {
        "task_type": rng.choice(("summarization", "reasoning")),
        "data_classification": "internal",
        "region": "eu",
        "input_tokens": rng.randint(4_000, 12_000),
        "max_output_tokens": 1024,
    }
    wanted = engine.Request.from_body(app, stored)
    decisions.decide_and_record(snapshot, wanted, stored_request=stored, at=min(at, timezone.now()))
