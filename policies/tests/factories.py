"""Builders for policy tests, through the services (so workflow rules and audit events apply)."""

import itertools
from typing import Any

from django.contrib.auth.models import User

from policies import services
from policies.models import Application, Policy, PolicyVersion, Team
from registry.models import DataClassification

_sequence = itertools.count(1)


def make_team(**overrides: Any) -> Team:
    n = next(_sequence)
    data = {"name": f"Team {n}", "slug": f"team-{n}", "monthly_budget_usd": 1000}
    data.update(overrides)
    return Team.objects.create(**data)


def make_app(
    team: Team | None = None, *, classifications: tuple[str, ...] = ("public", "internal"), **overrides: Any
) -> Application:
    n = next(_sequence)
    data = {"name": f"App {n}", "slug": f"app-{n}"}
    data.update(overrides)
    app = Application.objects.create(team=team or make_team(), **data)
    app.allowed_classifications.set(DataClassification.objects.filter(slug__in=classifications))
    return app


def rules_document(*rules: dict[str, Any]) -> dict[str, Any]:
    return {"rules": list(rules)}


def pinned_rule(ref: str, name: str = "default", **extra: Any) -> dict[str, Any]:
    return {"name": name, "match": {}, "action": {"pinned": ref}, **extra}


def activate(version: PolicyVersion, *reviewers: User) -> PolicyVersion:
    """Submit (if a draft) and approve with each reviewer until it is active."""
    if version.state == PolicyVersion.State.DRAFT:
        version = services.submit(version)
    for reviewer in reviewers:
        version = services.review(version, reviewer=reviewer, verdict="approve")
    return version


def make_active_policy(document: dict[str, Any], *, author: User, reviewer: User, **fields: Any) -> Policy:
    n = next(_sequence)
    data: dict[str, Any] = {"name": f"Policy {n}", "slug": f"policy-{n}"}
    data.update(fields)
    version = services.create_policy(document=document, actor=author, **data)
    activate(version, reviewer)
    return version.policy
