"""What waits for people: reviews, expiring approvals, retirements and budget alerts.

These read small governance tables (not rollups) and do not depend on the time range: a review
waits whatever period the charts show.
"""

import datetime
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, F, Q
from django.urls import reverse
from django.utils import timezone

from console.dashboard.tables import INT, Column, Link, Table
from policies.models import BudgetAlert, ComplianceRequest, PolicyVersion
from registry.models import ComplianceCell, Lifecycle, ModelVersion

SOON = datetime.timedelta(days=30)
LISTED = 20


def lifecycle_counts() -> dict[str, int]:
    """Versions per lifecycle label, in lifecycle order, zeros included (one query)."""
    found = dict(ModelVersion.objects.order_by().values_list("lifecycle").annotate(n=Count("id")))
    return {lifecycle.label: found.get(lifecycle.value, 0) for lifecycle in Lifecycle}


def age(since: datetime.datetime, now: datetime.datetime) -> str:
    """How long something has waited, in the largest whole unit that reads naturally."""
    waited = now - since
    if waited >= datetime.timedelta(days=2):
        return f"{waited.days} days"
    hours = int(waited.total_seconds() // 3600)
    if hours >= 1:
        return f"{hours} hour{'s' if hours != 1 else ''}"
    return f"{int(waited.total_seconds() // 60)} min"


def pending_reviews(now: datetime.datetime) -> Table:
    """Submitted policy versions and pending compliance widenings, the longest waiting first."""
    waiting: list[tuple[datetime.datetime, Link, str, str]] = []
    versions = PolicyVersion.objects.filter(state=PolicyVersion.State.SUBMITTED).select_related("policy")
    for version in versions.order_by("submitted_at", "id")[:LISTED]:
        url = reverse("policies:version-review", args=[version.policy.slug, version.number])
        label = Link(f"{version.policy.name} v{version.number}", url)
        waiting.append((version.submitted_at or version.created_at, label, "policy version", version.author_name))
    requests = ComplianceRequest.objects.filter(state=ComplianceRequest.State.PENDING).select_related(
        "model_version__model__provider", "classification"
    )
    for change in requests.order_by("created_at", "id")[:LISTED]:
        url = reverse("policies:compliance-request", args=[change.pk])
        label = Link(f"{change.model_version} × {change.classification.slug}: {change.decision}", url)
        waiting.append((change.created_at, label, "compliance change", change.requested_by_name))
    table = Table(
        [
            Column("Waiting for review"),
            Column("Kind"),
            Column("Requested by"),
            Column("Submitted (UTC)"),
            Column("Waiting"),
            Column("Hours waiting", INT),
        ]
    )
    for at, label, kind, by in sorted(waiting, key=lambda item: item[0]):
        hours = int((now - at).total_seconds() // 3600)
        table.rows.append(
            [label, kind, by, at.astimezone(datetime.UTC).strftime("%Y-%m-%d %H:%M"), age(at, now), hours]
        )
    return table


def expiring_cells(today: datetime.date) -> "list[ComplianceCell]":
    return list(
        ComplianceCell.objects.filter(
            decision=ComplianceCell.Decision.APPROVED, expires_on__gte=today, expires_on__lte=today + SOON
        )
        .select_related("model_version__model__provider", "classification")
        .order_by("expires_on", "model_version_id")[:LISTED]
    )


def expired_cells(today: datetime.date) -> "list[ComplianceCell]":
    return list(
        ComplianceCell.objects.filter(decision=ComplianceCell.Decision.APPROVED, expires_on__lt=today)
        .select_related("model_version__model__provider", "classification")
        .order_by("-expires_on", "model_version_id")[:LISTED]
    )


def planned_retirements(today: datetime.date) -> "list[ModelVersion]":
    return list(
        ModelVersion.objects.exclude(lifecycle=Lifecycle.RETIRED)
        .filter(retires_on__gte=today)
        .select_related("model__provider")
        .order_by("retires_on")[:LISTED]
    )


@dataclass(frozen=True)
class Alert:
    """One budget at 80% or 100% this month, worded so it reads without its colour."""

    owner: str
    url: str
    threshold: int
    spend: Any
    budget: Any

    @property
    def exhausted(self) -> bool:
        return self.threshold >= BudgetAlert.Threshold.EXHAUSTED


def budget_alerts(now: datetime.datetime | None = None) -> list[Alert]:
    """This month's alerts for budgets as they stand now (raising a budget re-arms its alerts),
    the highest threshold per budget, exhausted budgets first."""
    month = timezone.localdate(now).replace(day=1)
    alerts = (
        BudgetAlert.objects.filter(month=month)
        .filter(
            Q(application__isnull=True, budget_usd=F("team__monthly_budget_usd"))
            | Q(application__isnull=False, budget_usd=F("application__monthly_budget_usd"))
        )
        .select_related("team", "application")
        .order_by("-threshold", "team__name", "application__name")
    )
    seen: dict[tuple[int, int | None], Alert] = {}
    for alert in alerts:
        key = (alert.team_id, alert.application_id)
        if key in seen:
            continue
        if alert.application is not None:
            owner, url = f"Application {alert.application.name}", alert.application.get_absolute_url()
        else:
            owner, url = f"Team {alert.team.name}", alert.team.get_absolute_url()
        seen[key] = Alert(owner, url, alert.threshold, alert.spend_usd, alert.budget_usd)
    return list(seen.values())
