"""Demo routing policies, keys and a week of traffic, loaded by ``manage.py seed_demo``.

Everything goes through the services, as people would: the administrator writes each policy,
reviewers approve it, one more change waits in the review queue, and the traffic is recorded
by the same code as the routing API, so the impact preview and the audit log have something real.
"""

import datetime
import random
from typing import Any

from django.contrib.auth.models import User
from django.db.models import Count
from django.utils import timezone

from policies import decisions, engine, services
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

TRAFFIC_DAYS = 7
TRAFFIC_PER_DAY = 60
TASKS = ("summarization", "classification", "extraction", "reasoning", "code", "creative")


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
    return keys


def _propose_change(policy: Policy, admin: User) -> None:
    _, rule_index, split = PENDING_CHANGE
    draft = services.new_draft(policy, actor=admin)
    rules = [dict(rule) for rule in draft.document["rules"]]
    rules[rule_index] = {**rules[rule_index], "action": {"split": split}}
    draft = services.edit_version(draft, document={"rules": rules}, summary="Canary to 50%", actor=admin)
    services.submit(draft, actor=admin)


def _traffic(now: datetime.datetime) -> int:
    """A week of routing decisions, recorded exactly as the API records them."""
    rng = random.Random(7)  # noqa: S311 - demo data, not a secret
    snapshot = compile_snapshot()
    apps = {key.app.slug: key.app for key in snapshot.keys.values()}
    count = 0
    for day in range(TRAFFIC_DAYS, 0, -1):
        for _ in range(TRAFFIC_PER_DAY):
            app = apps[rng.choice(sorted(apps))]
            stored = {
                "task_type": rng.choice(TASKS),
                "data_classification": rng.choice(sorted(app.classifications)),
                "region": rng.choice(["eu", "eu", "us"]),
                "complexity": rng.choice(["low", "low", "medium", "high"]),
                "input_tokens": rng.randint(200, 12_000),
                "max_output_tokens": rng.choice([256, 512, 1024, 2048]),
            }
            wanted = engine.Request.from_body(app, stored)
            at = now - datetime.timedelta(days=day, seconds=rng.randint(0, 86_399))
            decisions.decide_and_record(snapshot, wanted, stored_request=stored, at=min(at, timezone.now()))
            count += 1
    return count
