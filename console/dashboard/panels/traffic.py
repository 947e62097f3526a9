"""Where requests went: per model version over time, per tier, and per policy rule.

Refusals count beside the routed requests in each, so that a rule or a period that turns traffic
away shows as clearly as one that sends it somewhere.
"""

from collections import defaultdict
from decimal import Decimal

from console.dashboard import charts
from console.dashboard.panels.base import NO_POLICY, NO_RULE, Dashboard, Panel, share
from console.dashboard.queries import ZERO, Row
from console.dashboard.tables import INT, MONEY, PERCENT, Column, Table
from registry.models import Model

TOP_RULES = 10
REFUSED = "Refused"
TIERS = list(Model.Tier.values)


def decisions(dashboard: Dashboard) -> Panel:
    def series(row: Row) -> str:
        return REFUSED if row.model_version_id is None else dashboard.version(row).name

    table, values = dashboard.over_time(series, lambda row: row.decisions + row.refusals, kind=INT, last=REFUSED)
    return Panel(
        "decisions",
        "Decisions by model version",
        f"Routing decisions per {dashboard.scope.bucket}, stacked by the model version chosen, refusals on top; "
        f"{dashboard.scope.describe()}.",
        table,
        charts.stacked_bars(table.column("Period (UTC)"), values, y_title="Requests"),
    )


def tiers(dashboard: Dashboard) -> Panel:
    requests: dict[str, int] = defaultdict(int)
    cost: dict[str, Decimal] = defaultdict(Decimal)
    for row in dashboard.sums.rows:
        if row.refusals:
            requests[REFUSED] += row.refusals
        if row.decisions and row.model_version_id is not None:
            tier = dashboard.version(row).tier
            requests[tier] += row.decisions
            cost[tier] += row.estimated
    everything = sum(requests.values())
    table = Table([Column("Tier"), Column("Requests", INT), Column("Share", PERCENT), Column("Estimated cost", MONEY)])
    for tier in [*TIERS, *sorted(set(requests) - {*TIERS, REFUSED}), REFUSED]:
        if requests.get(tier):
            name = tier.capitalize() if tier in TIERS else tier
            table.rows.append([name, requests[tier], share(requests[tier], everything), cost.get(tier, ZERO)])
    if table.rows:
        table.total = ["Total", everything, 100.0, sum(cost.values(), ZERO)]
    return Panel(
        "tiers",
        "Routing mix by tier",
        f"Where requests went, by the tier of the model chosen; {dashboard.scope.describe()}.",
        table,
        charts.horizontal_bars(table.column("Tier"), {"Requests": table.column("Requests")}, x_title="Requests"),
    )


def rules(dashboard: Dashboard) -> Panel:
    by_rule: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for row in dashboard.sums.rows:
        counts = by_rule[row.policy_slug, row.rule]
        counts[0] += row.decisions
        counts[1] += row.refusals
    everything = sum(sum(counts) for counts in by_rule.values())
    ranked = sorted(
        ((key, counts) for key, counts in by_rule.items() if sum(counts)), key=lambda item: (-sum(item[1]), item[0])
    )
    table = Table(
        [
            Column("Rule"),
            Column("Policy"),
            Column("Routed", INT),
            Column("Refused", INT),
            Column("Share of requests", PERCENT),
        ]
    )
    for (policy, rule), (routed, refused) in ranked[:TOP_RULES]:
        table.rows.append([rule or NO_RULE, policy or NO_POLICY, routed, refused, share(routed + refused, everything)])
    if len(ranked) > TOP_RULES:
        rest = [counts for _, counts in ranked[TOP_RULES:]]
        routed, refused = sum(c[0] for c in rest), sum(c[1] for c in rest)
        table.rows.append([f"{len(rest)} other rules", "", routed, refused, share(routed + refused, everything)])
    labels = [f"{row[1]} · {row[0]}" if row[1] else row[0] for row in table.rows]
    return Panel(
        "rules",
        "Top rules by traffic",
        f"Requests per policy rule, routed and refused; {dashboard.scope.describe()}.",
        table,
        charts.horizontal_bars(
            labels, {"Routed": table.column("Routed"), "Refused": table.column("Refused")}, x_title="Requests"
        ),
    )
