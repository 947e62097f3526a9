"""What the traffic cost: spend over time, month-to-date spend against budgets, and savings.

Spend and budgets use the routing API's estimate at decision time, which every decision has;
savings price the tokens that outcomes reported, at the baseline that ``console.dashboard.savings``
chooses, beside what they cost at the version that answered.
"""

import datetime
from collections import defaultdict
from decimal import Decimal
from typing import Any

from console.dashboard import charts
from console.dashboard.filters import SPEND_BY, Scope
from console.dashboard.panels.base import NO_TEAM, Budgeted, Dashboard, Panel, share
from console.dashboard.queries import ZERO, Row, month_start
from console.dashboard.tables import INT, MONEY, PERCENT, Column, Link, Table, money

WARNING_SHARE = Decimal(80)
EXHAUSTED_SHARE = Decimal(100)


def spend(dashboard: Dashboard) -> Panel:
    by = dashboard.spend_by

    def series(row: Row) -> str:
        if by == "team":
            return row.team_name or NO_TEAM
        version = dashboard.version(row)
        return version.provider if by == "provider" else version.model

    table, values = dashboard.over_time(series, lambda row: row.estimated, kind=MONEY)
    figure = charts.stacked_bars(
        table.column("Period (UTC)"),
        {name: [float(value) for value in column] for name, column in values.items()},
        y_title="US dollars",
        money=True,
    )
    return Panel(
        "spend",
        f"Spend by {SPEND_BY[by].lower()}",
        f"Estimated cost of routed requests per {dashboard.scope.bucket}, stacked by {SPEND_BY[by].lower()}; "
        f"{dashboard.scope.describe()}.",
        table,
        figure,
        notes=[
            "Estimated cost is the routing API's estimate at decision time: the input tokens and the "
            "requested maximum output at the chosen version's list price."
        ],
    )


def budget(dashboard: Dashboard) -> Panel:
    month = dashboard.sums.budget_month
    spent: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for row in dashboard.sums.month_rows:
        spent["team", row.team_name] += row.estimated
        spent["application", row.application_name] += row.estimated
    owners = [
        owner for owner in [*dashboard.teams, *dashboard.applications] if _budget_in_scope(owner, dashboard.scope)
    ]
    table = Table(
        [
            Column("Budget"),
            Column("Month"),
            Column("Spent (estimated)", MONEY),
            Column("Monthly budget", MONEY),
            Column("Used", PERCENT),
            Column("Status"),
        ]
    )
    for owner in owners:
        amount = spent.get((owner.kind, owner.name), ZERO)
        table.rows.append(
            [
                Link(f"{owner.kind.capitalize()} {owner.name}", owner.url),
                month.strftime("%Y-%m"),
                amount,
                owner.budget,
                share(amount, owner.budget) if owner.budget is not None else None,
                _status(amount, owner.budget),
            ]
        )
    figure = charts.budget_use(
        [str(row[0]) for row in table.rows],
        [row[4] for row in table.rows],
        [f"{money(row[2])} of {money(row[3])}" for row in table.rows],
    )
    return Panel(
        "budget",
        "Month-to-date spend against budgets",
        f"Share of each monthly budget spent (estimated) in {month:%B %Y}, from the 1st to the end of the range, "
        f"with the 80% alert and 100% lines; {dashboard.scope.describe()}.",
        table,
        figure,
        notes=[
            "A budget is for a calendar month (UTC), so this counts from the month's first day even when the "
            "range starts later. A team's budget covers all of its applications; an application's own budget "
            "applies on top of its team's."
        ],
        empty="No team or application budget matches the filters.",
    )


def _budget_in_scope(owner: Budgeted, scope: Scope) -> bool:
    if owner.kind == "application" and owner.budget is None:
        return False
    if scope.team and owner.team != scope.team:
        return False
    return not (scope.application and owner.kind == "application" and owner.name != scope.application)


def _status(amount: Decimal, budget: Decimal | None) -> str:
    if budget is None:
        return "no budget"
    if not budget:
        return "over budget" if amount > 0 else "within budget"
    used = amount * 100 / budget
    if used >= EXHAUSTED_SHARE:
        return "over budget"
    return "80% reached" if used >= WARNING_SHARE else "within budget"


def savings(dashboard: Dashboard) -> Panel:
    baseline = dashboard.baseline
    tokens: dict[tuple[datetime.datetime, str, str], list[Any]] = {}
    for row in dashboard.sums.rows:
        if row.input_tokens or row.output_tokens:
            key = (month_start(row.moment), row.team_name or NO_TEAM, row.classification)
            sums = tokens.setdefault(key, [0, 0, ZERO])
            sums[0] += row.input_tokens
            sums[1] += row.output_tokens
            sums[2] += row.reported
    # Priced per month, team and classification, so the figure is the same whatever the range's grain.
    grouped: dict[tuple[datetime.datetime, str], list[Any]] = {}
    missing: set[str] = set()
    for (month, team, classification), (tokens_in, tokens_out, actual) in tokens.items():
        priced = baseline.cost(classification, tokens_in, tokens_out)
        if priced is None:
            missing.add(classification)
            priced = actual
        sums = grouped.setdefault((month, team), [0, 0, ZERO, ZERO])
        sums[0] += tokens_in
        sums[1] += tokens_out
        sums[2] += actual
        sums[3] += priced
    table = Table(
        [
            Column("Month"),
            Column("Team"),
            Column("Input tokens", INT),
            Column("Output tokens", INT),
            Column("Actual cost", MONEY),
            Column("Baseline cost", MONEY),
            Column("Saved", MONEY),
            Column("Saved share", PERCENT),
        ]
    )
    for (month, team), (tokens_in, tokens_out, actual, priced) in sorted(grouped.items()):
        saved = priced - actual
        table.rows.append(
            [month.strftime("%Y-%m"), team, tokens_in, tokens_out, actual, priced, saved, share(saved, priced)]
        )
    if table.rows:
        actual, priced = sum(table.column("Actual cost"), ZERO), sum(table.column("Baseline cost"), ZERO)
        table.total = [
            "Total",
            "",
            sum(table.column("Input tokens")),
            sum(table.column("Output tokens")),
            actual,
            priced,
            priced - actual,
            share(priced - actual, priced),
        ]
    figure = charts.grouped_bars(
        [f"{row[0]} · {row[1]}" for row in table.rows],
        {"Actual": [float(row[4]) for row in table.rows], "Baseline": [float(row[5]) for row in table.rows]},
        y_title="US dollars",
        money=True,
    )
    notes = [
        f"Baseline: {baseline.describe()}. Both sides price the tokens that outcomes reported: actual at the "
        "list price of the version that answered, baseline at the baseline version's list price.",
        "Approximations: requests without a reported outcome carry no tokens and are left out; “allowed” is "
        "today's compliance matrix (approved, not expired, version approved or deprecated), not the matrix of "
        "each request's day, and region limits are not applied; the most expensive version is picked per "
        "month, team and classification for those tokens.",
    ]
    if missing:
        notes.append(
            "No version is allowed today for "
            + ", ".join(sorted(missing))
            + ": those tokens count at their actual cost on both sides."
        )
    return Panel(
        "savings",
        "Savings against a baseline",
        "What the reported tokens cost (actual) beside what they would have cost under the baseline, per "
        f"month and team; {dashboard.scope.describe()}.",
        table,
        figure,
        notes=notes,
        empty="No outcomes with token counts in this range: savings need reported outcomes.",
    )
