"""Each chart of the dashboard as a table (for the page and its CSV) and a figure drawn from it.

A ``Dashboard`` holds the scope and reads what the panels share once: the rollup sums
(``queries.Sums``), the registry's versions for the model version ids present, the teams and
applications with their budgets. Panels are methods; ``PANELS`` names those with a CSV.
"""

import datetime
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cached_property
from typing import Any
from urllib.parse import urlencode

from django.urls import reverse
from django.utils import timezone

from audit.rollups import merged_percentiles
from console.dashboard import charts, tables
from console.dashboard.filters import DAY, HOUR, MOST_EXPENSIVE, SPEND_BY, Scope
from console.dashboard.queries import ZERO, Row, Sums, day_start, month_start
from console.dashboard.savings import Baseline, allowed_versions, baseline_choices
from console.dashboard.tables import DATE, INT, MONEY, MS, PERCENT, Column, Link, Table, money
from console.dashboard.versions import VersionInfo, registry_versions, unknown_version
from registry.models import Lifecycle, Model

# Charts name this many series; the rest are added up as "Other".
TOP_SERIES = 8
TOP_RULES = 10
TOP_VERSIONS = 12
LISTED = 20
SOON = datetime.timedelta(days=30)
REFUSED = "Refused"
OTHER = "Other"
NO_TEAM = "(no team)"
NO_RULE = "(no rule matched)"
NO_POLICY = "(no policy)"
TIERS = list(Model.Tier.values)
WARNING_SHARE = Decimal(80)
EXHAUSTED_SHARE = Decimal(100)


@dataclass
class Panel:
    """A chart, the table that holds its numbers, and the words around them."""

    slug: str
    title: str
    caption: str
    table: Table
    figure: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    empty: str = "Nothing in this range."

    @cached_property
    def table_html(self) -> str:
        return tables.render(self.table, slug=self.slug, caption=self.title)

    @cached_property
    def chart(self) -> str:
        if self.figure is None or not self.table.rows:
            return ""
        return charts.fragment(self.figure, div_id=f"chart-{self.slug}")


@dataclass(frozen=True)
class Budgeted:
    """A team or an application with its monthly budget (None: an application without its own)."""

    kind: str  # "team" or "application"
    name: str
    team: str
    budget: Decimal | None
    url: str


def share(part: Decimal | int, whole: Decimal | int) -> float | None:
    return float(part) * 100 / float(whole) if whole else None


def periods(scope: Scope) -> list[datetime.datetime]:
    """Every period of the range, so that quiet hours show as zero rather than vanish."""
    if scope.bucket == "hour":
        moment = scope.since
    elif scope.bucket == "day":
        moment = day_start(scope.since)
    else:
        moment = month_start(scope.since)
    found = []
    while moment < scope.until:
        found.append(moment)
        if scope.bucket == "month":
            moment = (moment + datetime.timedelta(days=32)).replace(day=1)
        else:
            moment += HOUR if scope.bucket == "hour" else DAY
    return found


def period_of(moment: datetime.datetime, bucket: str) -> datetime.datetime:
    if bucket == "month":
        return month_start(moment)
    return day_start(moment) if bucket == "day" else moment


def period_label(moment: datetime.datetime, bucket: str) -> str:
    return moment.strftime({"hour": "%Y-%m-%d %H:00", "day": "%Y-%m-%d", "month": "%Y-%m"}[bucket])


def top_names(totals: dict[str, Any], limit: int = TOP_SERIES) -> list[str]:
    """The names with the largest totals, largest first; ties by name so the order is stable."""
    return sorted((name for name, total in totals.items() if total), key=lambda name: (-totals[name], name))[:limit]


class Dashboard:
    """One scope's panels; everything read from the database is read once and shared."""

    def __init__(
        self,
        scope: Scope,
        *,
        now: datetime.datetime,
        teams: list[Budgeted],
        applications: list[Budgeted],
        spend_by: str = "provider",
        baseline: str = MOST_EXPENSIVE,
    ) -> None:
        self.scope, self.now, self.spend_by, self.baseline_choice = scope, now, spend_by, baseline
        self.today = timezone.localdate(now)
        self.teams, self.applications = teams, applications
        self.sums = Sums(scope)

    # --- What several panels share ----------------------------------------------------------

    @cached_property
    def versions(self) -> dict[int, VersionInfo]:
        return registry_versions(self.sums.version_ids)

    def version(self, row: Row) -> VersionInfo:
        found = self.versions.get(row.model_version_id) if row.model_version_id is not None else None
        return found or unknown_version(row.model_version_id, row.model_version_name)

    @cached_property
    def baseline(self) -> Baseline:
        choice = self.baseline_choice
        if choice != MOST_EXPENSIVE and int(choice) not in self.versions:
            choice = MOST_EXPENSIVE  # a version deleted since the link was made
        allowed = allowed_versions(self.today) if choice == MOST_EXPENSIVE else {}
        return Baseline(choice, self.versions, allowed)

    @cached_property
    def baseline_options(self) -> list[tuple[str, str]]:
        return baseline_choices(self.versions)

    def _label(self, moment: datetime.datetime) -> str:
        return period_label(moment, self.scope.bucket)

    def _over_time(
        self,
        series_of: Callable[[Row], str],
        value_of: Callable[[Row], Any],
        *,
        kind: str,
        last: str | None = None,
    ) -> tuple[Table, dict[str, list[Any]]]:
        """Pivot the range's rows: a row per period, a column per series (the largest by name,
        then Other, then ``last``, which is never folded into Other) and a total row."""
        cells: dict[tuple[datetime.datetime, str], Any] = defaultdict(int)
        totals: dict[str, Any] = defaultdict(int)
        bucket = self.scope.bucket
        for row in self.sums.rows:
            amount = value_of(row)
            if not amount:
                continue
            name = series_of(row)
            cells[period_of(row.moment, bucket), name] += amount
            totals[name] += amount
        named = top_names({name: total for name, total in totals.items() if name != last})
        rest = [name for name in totals if name not in named and name != last]
        series = [*named, *([OTHER] if rest else []), *([last] if last in totals else [])]
        table = Table([Column("Period (UTC)"), *(Column(name, kind) for name in series), Column("Total", kind)])
        values: dict[str, list[Any]] = {name: [] for name in series}
        if not totals:
            return table, values
        for moment in periods(self.scope):
            amounts = [
                sum(cells[moment, other] for other in rest) if name == OTHER else cells[moment, name] for name in series
            ]
            for name, amount in zip(series, amounts, strict=True):
                values[name].append(amount)
            table.rows.append([self._label(moment), *amounts, sum(amounts)])
        column_totals = [sum(values[name]) for name in series]
        table.total = ["Total", *column_totals, sum(column_totals)]
        return table, values

    # --- Panels ------------------------------------------------------------------------------

    def spend(self) -> Panel:
        by = self.spend_by

        def series(row: Row) -> str:
            if by == "team":
                return row.team_name or NO_TEAM
            version = self.version(row)
            return version.provider if by == "provider" else version.model

        table, values = self._over_time(series, lambda row: row.estimated, kind=MONEY)
        figure = charts.stacked_bars(
            table.column("Period (UTC)"),
            {name: [float(value) for value in column] for name, column in values.items()},
            y_title="US dollars",
            money=True,
        )
        return Panel(
            "spend",
            f"Spend by {SPEND_BY[by].lower()}",
            f"Estimated cost of routed requests per {self.scope.bucket}, stacked by {SPEND_BY[by].lower()}; "
            f"{self.scope.describe()}.",
            table,
            figure,
            notes=[
                "Estimated cost is the routing API's estimate at decision time: the input tokens and the "
                "requested maximum output at the chosen version's list price."
            ],
        )

    def decisions(self) -> Panel:
        def series(row: Row) -> str:
            return REFUSED if row.model_version_id is None else self.version(row).name

        table, values = self._over_time(series, lambda row: row.decisions + row.refusals, kind=INT, last=REFUSED)
        return Panel(
            "decisions",
            "Decisions by model version",
            f"Routing decisions per {self.scope.bucket}, stacked by the model version chosen, refusals on top; "
            f"{self.scope.describe()}.",
            table,
            charts.stacked_bars(table.column("Period (UTC)"), values, y_title="Requests"),
        )

    def tiers(self) -> Panel:
        requests: dict[str, int] = defaultdict(int)
        cost: dict[str, Decimal] = defaultdict(Decimal)
        for row in self.sums.rows:
            if row.refusals:
                requests[REFUSED] += row.refusals
            if row.decisions and row.model_version_id is not None:
                tier = self.version(row).tier
                requests[tier] += row.decisions
                cost[tier] += row.estimated
        everything = sum(requests.values())
        table = Table(
            [Column("Tier"), Column("Requests", INT), Column("Share", PERCENT), Column("Estimated cost", MONEY)]
        )
        for tier in [*TIERS, *sorted(set(requests) - {*TIERS, REFUSED}), REFUSED]:
            if requests.get(tier):
                name = tier.capitalize() if tier in TIERS else tier
                table.rows.append([name, requests[tier], share(requests[tier], everything), cost.get(tier, ZERO)])
        if table.rows:
            table.total = ["Total", everything, 100.0, sum(cost.values(), ZERO)]
        return Panel(
            "tiers",
            "Routing mix by tier",
            f"Where requests went, by the tier of the model chosen; {self.scope.describe()}.",
            table,
            charts.horizontal_bars(table.column("Tier"), {"Requests": table.column("Requests")}, x_title="Requests"),
        )

    def rules(self) -> Panel:
        by_rule: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
        for row in self.sums.rows:
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
            table.rows.append(
                [rule or NO_RULE, policy or NO_POLICY, routed, refused, share(routed + refused, everything)]
            )
        if len(ranked) > TOP_RULES:
            rest = [counts for _, counts in ranked[TOP_RULES:]]
            routed, refused = sum(c[0] for c in rest), sum(c[1] for c in rest)
            table.rows.append([f"{len(rest)} other rules", "", routed, refused, share(routed + refused, everything)])
        labels = [f"{row[1]} · {row[0]}" if row[1] else row[0] for row in table.rows]
        return Panel(
            "rules",
            "Top rules by traffic",
            f"Requests per policy rule, routed and refused; {self.scope.describe()}.",
            table,
            charts.horizontal_bars(
                labels, {"Routed": table.column("Routed"), "Refused": table.column("Refused")}, x_title="Requests"
            ),
        )

    def latency(self) -> Panel:
        outcomes: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0])
        names: dict[int, Row] = {}
        for row in self.sums.rows:
            if row.model_version_id is None or not row.outcomes:
                continue
            counts = outcomes[row.model_version_id]
            counts[0] += row.ok
            counts[1] += row.error
            counts[2] += row.timeout
            names.setdefault(row.model_version_id, row)
        histograms = self.sums.histograms
        table = Table(
            [
                Column("Model version"),
                Column("Outcomes", INT),
                Column("OK", INT),
                Column("Errors", INT),
                Column("Timeouts", INT),
                Column("Failed", PERCENT),
                Column("p50", MS),
                Column("p95", MS),
                Column("p99", MS),
            ]
        )
        ranked = sorted(outcomes.items(), key=lambda item: (-sum(item[1]), self.version(names[item[0]]).name))
        for version_id, (ok, error, timeout) in ranked:
            version = self.version(names[version_id])
            estimate = merged_percentiles(histograms.get(version_id, []), (50, 95, 99))
            total = ok + error + timeout
            table.rows.append(
                [
                    Link(version.name, version.url) if version.url else version.name,
                    total,
                    ok,
                    error,
                    timeout,
                    share(error + timeout, total),
                    estimate[50],
                    estimate[95],
                    estimate[99],
                ]
            )
        shown = table.rows[:TOP_VERSIONS]
        labels = [str(row[0]) for row in shown]
        figure = charts.grouped_bars(
            labels, {"p50": [row[6] for row in shown], "p95": [row[7] for row in shown]}, y_title="Milliseconds"
        )
        charts.with_rate(figure, labels, [row[5] for row in shown], "Failed (error or timeout)")
        return Panel(
            "latency",
            "Latency and errors by model version",
            "Reported latency (p50 and p95, bars) and the share of failed outcomes (diamonds, right axis) for the "
            f"model version that answered; {self.scope.describe()}.",
            table,
            figure,
            notes=[
                "Percentiles are estimated from the hourly latency histograms merged over the range, so each is "
                "accurate to the width of its histogram bucket. Outcomes count in the hour of their decision.",
            ],
            empty="No outcomes reported in this range.",
        )

    def budget(self) -> Panel:
        month = self.sums.budget_month
        spent: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
        for row in self.sums.month_rows:
            spent["team", row.team_name] += row.estimated
            spent["application", row.application_name] += row.estimated
        owners = [owner for owner in [*self.teams, *self.applications] if self._budget_in_scope(owner)]
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
                    self._status(amount, owner.budget),
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
            f"with the 80% alert and 100% lines; {self.scope.describe()}.",
            table,
            figure,
            notes=[
                "A budget is for a calendar month (UTC), so this counts from the month's first day even when the "
                "range starts later. A team's budget covers all of its applications; an application's own budget "
                "applies on top of its team's."
            ],
            empty="No team or application budget matches the filters.",
        )

    def _budget_in_scope(self, owner: Budgeted) -> bool:
        scope = self.scope
        if owner.kind == "application" and owner.budget is None:
            return False
        if scope.team and owner.team != scope.team:
            return False
        return not (scope.application and owner.kind == "application" and owner.name != scope.application)

    @staticmethod
    def _status(amount: Decimal, budget: Decimal | None) -> str:
        if budget is None:
            return "no budget"
        if not budget:
            return "over budget" if amount > 0 else "within budget"
        used = amount * 100 / budget
        if used >= EXHAUSTED_SHARE:
            return "over budget"
        return "80% reached" if used >= WARNING_SHARE else "within budget"

    def savings(self) -> Panel:
        baseline = self.baseline
        tokens: dict[tuple[datetime.datetime, str, str], list[Any]] = {}
        for row in self.sums.rows:
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
            f"month and team; {self.scope.describe()}.",
            table,
            figure,
            notes=notes,
            empty="No outcomes with token counts in this range: savings need reported outcomes.",
        )

    def lifecycle(self) -> Panel:
        """Versions deprecated, retired or due to be soon that still were chosen or answered."""
        traffic: dict[int, list[Any]] = {}
        for row in self.sums.rows:
            if row.model_version_id is None or not (row.decisions or row.outcomes):
                continue
            sums = traffic.setdefault(row.model_version_id, [0, 0, row.moment])
            sums[0] += row.decisions
            sums[1] += row.outcomes
            sums[2] = max(sums[2], row.moment)
        soon = self.today + SOON
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
            version = self.versions.get(version_id)
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
                    period_label(last, "hour" if self.scope.bucket == "hour" else "day"),
                ]
            )
        return Panel(
            "lifecycle",
            "Deprecated or soon-retired versions still receiving traffic",
            "Versions deprecated, retired, or due to be within 30 days, that were chosen or answered requests; "
            f"{self.scope.describe()}.",
            table,
            empty="None: no traffic goes to deprecated or soon-retired versions.",
        )

    def refusals(self) -> Panel:
        counts: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0])
        for row in self.sums.rows:
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
        ranked = sorted(
            ((key, pair) for key, pair in counts.items() if pair[0]), key=lambda item: (-item[1][0], item[0])
        )
        for (policy, rule, classification), (refused, decided) in ranked[:LISTED]:
            table.rows.append(
                [
                    rule or NO_RULE,
                    policy or NO_POLICY,
                    classification,
                    refused,
                    share(refused, refused + decided),
                    Link("in the audit log", self._audit_url(policy, classification)),
                ]
            )
        labels = [f"{row[1]} · {row[0]} · {row[2]}" for row in table.rows]
        return Panel(
            "refusals",
            "Refused requests by rule and classification",
            "Requests refused (403 or 422), by the rule that matched and the data classification; "
            f"{self.scope.describe()}.",
            table,
            charts.horizontal_bars(labels, {"Refused": table.column("Refused")}, x_title="Refused requests"),
            notes=[
                "Rollups do not keep a refusal's reason, so refusals are grouped by rule and classification; "
                "each row links to those refusals in the audit log, which records every reason."
            ],
            empty="No refused requests in this range.",
        )

    def _audit_url(self, policy: str, classification: str) -> str:
        scope = self.scope
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

    def headline(self) -> dict[str, Any]:
        """The figures someone should read in ten seconds."""
        rows = self.sums.rows
        decided = sum(row.decisions for row in rows)
        refused = sum(row.refusals for row in rows)
        answered = sum(row.outcomes for row in rows)
        return {
            "requests": decided + refused,
            "requests_text": f"{decided + refused:,}",
            "answered_text": f"{answered:,}",
            "refused_share": share(refused, decided + refused),
            "estimated": sum((row.estimated for row in rows), ZERO),
            "failed_share": share(sum(row.error + row.timeout for row in rows), answered),
            "answered": answered,
        }


PANELS: dict[str, Callable[[Dashboard], Panel]] = {
    "spend": Dashboard.spend,
    "budget": Dashboard.budget,
    "savings": Dashboard.savings,
    "decisions": Dashboard.decisions,
    "tiers": Dashboard.tiers,
    "rules": Dashboard.rules,
    "latency": Dashboard.latency,
    "lifecycle": Dashboard.lifecycle,
    "refusals": Dashboard.refusals,
}
