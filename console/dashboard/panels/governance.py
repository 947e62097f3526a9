"""The range's traffic that is out of policy or soon will be: the home page's Governance section.

Deprecated or soon-retired versions that still receive traffic, and refusals by rule and data
classification, each refusal row linking to the audit log, which keeps the reasons rollups drop.
"""

import datetime
from collections import defaultdict
from typing import Any
from urllib.parse import urlencode

from django.urls import reverse

from console.dashboard import charts
from console.dashboard.filters import Scope
from console.dashboard.panels.base import NO_POLICY, NO_RULE, Dashboard, Panel, period_label, share
from console.dashboard.tables import DATE, INT, PERCENT, Column, Link, Table
from registry.models import Lifecycle

LISTED = 20
SOON = datetime.timedelta(days=30)


def lifecycle(dashboard: Dashboard) -> Panel:
    """Versions deprecated, retired or due to be soon that still were chosen or answered."""
    traffic: dict[int, list[Any]] = {}
    for row in dashboard.sums.rows:
        if row.model_version_id is None or not (row.decisions or row.outcomes):
            continue
        sums = traffic.setdefault(row.model_version_id, [0, 0, row.moment])
        sums[0] += row.decisions
        sums[1] += row.outcomes
        sums[2] = max(sums[2], row.moment)
    soon = dashboard.today + SOON
    table = Table(
        [
            Column("Model version"),
            Column("Lifecycle"),
            Column("Deprecation planned", DATE),
            Column("Retirement planned", DATE),
            Column("Decisions", INT),
            Column("Outcomes", INT),
            Column("Last seen (UTC)"),
        ]
    )
    for version_id, (decided, answered, last) in sorted(traffic.items(), key=lambda item: (-item[1][0], item[0])):
        version = dashboard.versions.get(version_id)
        if version is None:
            continue
        due = any(day is not None and day <= soon for day in (version.deprecates_on, version.retires_on))
        if version.lifecycle not in (Lifecycle.DEPRECATED, Lifecycle.RETIRED) and not due:
            continue
        table.rows.append(
            [
                Link(version.name, version.url),
                version.lifecycle,
                version.deprecates_on if version.lifecycle == Lifecycle.APPROVED else None,
                version.retires_on,
                decided,
                answered,
                period_label(last, "hour" if dashboard.scope.bucket == "hour" else "day"),
            ]
        )
    return Panel(
        "lifecycle",
        "Deprecated or soon-retired versions still receiving traffic",
        "Versions deprecated, retired, or due to be within 30 days, that were chosen or answered requests; "
        f"{dashboard.scope.describe()}.",
        table,
        empty="None: no traffic goes to deprecated or soon-retired versions.",
    )


def refusals(dashboard: Dashboard) -> Panel:
    counts: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0])
    for row in dashboard.sums.rows:
        pair = counts[row.policy_slug, row.rule, row.classification]
        pair[0] += row.refusals
        pair[1] += row.decisions
    table = Table(
        [
            Column("Rule"),
            Column("Policy"),
            Column("Classification"),
            Column("Refused", INT),
            Column("Share of the rule's requests", PERCENT),
            Column("Reasons"),
        ]
    )
    ranked = sorted(((key, pair) for key, pair in counts.items() if pair[0]), key=lambda item: (-item[1][0], item[0]))
    for (policy, rule, classification), (refused, decided) in ranked[:LISTED]:
        table.rows.append(
            [
                rule or NO_RULE,
                policy or NO_POLICY,
                classification,
                refused,
                share(refused, refused + decided),
                Link("in the audit log", _audit_url(dashboard.scope, policy, classification)),
            ]
        )
    labels = [f"{row[1]} · {row[0]} · {row[2]}" for row in table.rows]
    return Panel(
        "refusals",
        "Refused requests by rule and classification",
        "Requests refused (403 or 422), by the rule that matched and the data classification; "
        f"{dashboard.scope.describe()}.",
        table,
        charts.horizontal_bars(labels, {"Refused": table.column("Refused")}, x_title="Refused requests"),
        notes=[
            "Rollups do not keep a refusal's reason, so refusals are grouped by rule and classification; "
            "each row links to those refusals in the audit log, which records every reason."
        ],
        empty="No refused requests in this range.",
    )


def _audit_url(scope: Scope, policy: str, classification: str) -> str:
    params = {
        "kind": "routing.refused",
        "policy": policy,
        "classification": classification,
        "team": scope.team,
        "application": scope.application,
        "occurred_after": scope.since.strftime("%Y-%m-%d %H:%M"),
        "occurred_before": scope.until.strftime("%Y-%m-%d %H:%M"),
    }
    return reverse("audit:event-list") + "?" + urlencode({name: value for name, value in params.items() if value})
