"""What every panel is made of, and the ``Dashboard`` that reads what the panels share once.

A ``Dashboard`` holds the scope and its reads: the rollup sums (``queries.Sums``), the registry's
versions for the model version ids present, the teams and applications with their budgets, the
savings baseline. Panels are functions of a ``Dashboard`` in the modules beside this one, so that
however many panels a page draws, the database is read for them once.
"""

import datetime
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cached_property
from typing import Any

from django.utils import timezone

from console.dashboard import charts, tables
from console.dashboard.filters import DAY, HOUR, MOST_EXPENSIVE, Scope
from console.dashboard.queries import ZERO, Row, Sums, day_start, month_start
from console.dashboard.savings import Baseline, allowed_versions, baseline_choices
from console.dashboard.tables import Column, Table
from console.dashboard.versions import VersionInfo, registry_versions, unknown_version

# Charts name this many series; the rest are added up as "Other".
TOP_SERIES = 8
OTHER = "Other"
NO_TEAM = "(no team)"
NO_RULE = "(no rule matched)"
NO_POLICY = "(no policy)"


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
        self.sums = Sums(scope, now=now)

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

    def over_time(
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
            table.rows.append([period_label(moment, bucket), *amounts, sum(amounts)])
        column_totals = [sum(values[name]) for name in series]
        table.total = ["Total", *column_totals, sum(column_totals)]
        return table, values

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
