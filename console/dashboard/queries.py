"""The dashboard's sums over the usage rollups: daily rows for whole days, hourly ones for the rest.

Two GROUP BY queries per stretch of rows give everything the panels need: one sums counts,
tokens and costs per period and attribution (model version, team, application, classification,
policy, rule), the other adds up the range's latency histograms per model version. Each panel is
then shaped in Python from those rows, so the page's query count does not grow with charts,
versions or teams.

Whole days come from ``DailyUsageRollup`` (about one row in fifty of the hourly ones, because the
task type is left out); only the hours of a day the range cuts, and every hour when the charts
show hours, come from ``UsageRollup``. ``audit.rollups`` rebuilds a day in the same transaction as
any of its hours, so the two tables never disagree and nothing needs a cache: the last 30 days of
a portfolio with 10,000,000 events a quarter are about 2,200 daily rows and a few hours of hourly
ones (``bench/dashboard.py``).
"""

import datetime
from dataclasses import dataclass, replace
from decimal import Decimal
from functools import cached_property

from django.db.models import BooleanField, Case, F, Q, Sum, Value, When
from django.db.models.functions import Trunc
from django.utils import timezone

from audit.models import DailyUsageRollup, UsageRollup
from audit.rollups import histogram_sums
from console.dashboard.filters import DAY, Scope

RollupTable = type[UsageRollup] | type[DailyUsageRollup]
ZERO = Decimal(0)
KEYS = (
    "model_version_id",
    "model_version_name",
    "team_name",
    "application_name",
    "classification",
    "policy_slug",
    "rule",
)
SUMS = {
    "decisions": Sum("decisions"),
    "refusals": Sum("refusals"),
    "estimated": Sum("estimated_cost_usd"),
    "reported": Sum("reported_cost_usd"),
    "ok": Sum("outcomes_ok"),
    "error": Sum("outcomes_error"),
    "timeout": Sum("outcomes_timeout"),
    "input_tokens": Sum("input_tokens"),
    "output_tokens": Sum("output_tokens"),
}
HISTOGRAM = histogram_sums()


def month_start(moment: datetime.datetime) -> datetime.datetime:
    return moment.astimezone(datetime.UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def day_start(moment: datetime.datetime) -> datetime.datetime:
    return moment.astimezone(datetime.UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def as_utc(moment: datetime.datetime | datetime.date) -> datetime.datetime:
    """Trunc gives aware datetimes on PostgreSQL and SQLite alike; plain dates are midnight UTC."""
    if isinstance(moment, datetime.datetime):
        return moment.astimezone(datetime.UTC)
    return datetime.datetime.combine(moment, datetime.time(), tzinfo=datetime.UTC)


@dataclass
class Row:
    """Sums for one period and attribution; ``in_range`` is false for the days before the range
    that only the budget panel reads (a budget is for the whole calendar month)."""

    moment: datetime.datetime
    in_range: bool
    model_version_id: int | None
    model_version_name: str
    team_name: str
    application_name: str
    classification: str
    policy_slug: str
    rule: str
    decisions: int
    refusals: int
    estimated: Decimal
    reported: Decimal
    ok: int
    error: int
    timeout: int
    input_tokens: int
    output_tokens: int

    @property
    def outcomes(self) -> int:
        return self.ok + self.error + self.timeout


@dataclass(frozen=True)
class Span:
    """Where a stretch of the sums comes from: ``table`` rows in ``where``, summed per ``grain``.
    With ``budget`` false its rows never count towards the budget month (a daily row read beside
    them already does)."""

    table: RollupTable
    where: Q
    grain: str
    budget: bool = True

    @property
    def column(self) -> str:
        return time_column(self.table)


def time_column(table: RollupTable) -> str:
    """A rollup table's time column, which is also its own grain."""
    return "day" if table is DailyUsageRollup else "hour"


def _between(column: str, since: datetime.datetime, until: datetime.datetime) -> Q:
    return Q(**{f"{column}__gte": since, f"{column}__lt": until})


class Sums:
    """The rollup sums for one scope: read once per request, on first use.

    Rows cover the range and, before it, the rest of the calendar month the range ends in (a
    budget is for the whole month); ``in_range`` tells them apart. With ``daily=False`` every
    period is summed from the hourly rows, which is what the daily ones must agree with.
    """

    def __init__(self, scope: Scope, *, now: datetime.datetime | None = None, daily: bool = True) -> None:
        self.scope = scope
        self.now = now or timezone.now()
        last_moment = scope.until - datetime.timedelta(microseconds=1)
        # The budget panel's month: the one the range ends in, counted from its first day.
        self.budget_month = month_start(last_moment)
        self.spans = _merged(self._spans() if daily else self._hourly_spans())

    def _hourly_spans(self) -> list[Span]:
        since = min(self.budget_month, self.scope.since)
        grain = "hour" if self.scope.bucket == "hour" else "day"
        return [Span(UsageRollup, _between("hour", since, self.scope.until), grain)]

    def _spans(self) -> list[Span]:
        """Daily rows for every whole day, hourly rows for the hours of days the range cuts.

        - The range's first day, when the range starts after its midnight: its hours in the range
          are read hourly. When that day is in the budget month, its daily rows are read too, as
          outside the range, and only they count towards the budget (so the day counts once).
        - The last day, when the range ends before its midnight: if the range ends in the future
          (the presets end with the current hour), no later hour of the day has rows yet, so its
          daily rows are exactly its hours up to the end. Otherwise its hours are read hourly.
        - Charts by the hour read every hour of the range hourly.
        - The budget month's days before the range: daily, and the hours before the range's
          start on its first day hourly (charts by the hour only).
        """
        scope, budget_month = self.scope, self.budget_month
        since, until = scope.since, scope.until
        first_day = day_start(since)
        spans: list[Span] = []

        def read(
            table: RollupTable, start: datetime.datetime, end: datetime.datetime, grain: str, **flags: bool
        ) -> None:
            if start < end:
                spans.append(Span(table, _between(time_column(table), start, end), grain, **flags))

        read(DailyUsageRollup, budget_month, first_day, "day")
        if scope.bucket == "hour":
            read(UsageRollup, max(budget_month, first_day), since, "day")
            read(UsageRollup, since, until, "hour")
            return spans
        day_grain = "month" if scope.bucket == "month" else "day"
        whole_since = first_day if since == first_day else first_day + DAY
        whole_until = day_start(until)
        if until > whole_until and until >= self.now:
            whole_until += DAY
        if since < whole_since:
            read(UsageRollup, since, whole_since, "day", budget=False)
            if budget_month <= first_day:
                read(DailyUsageRollup, first_day, whole_since, day_grain)
        read(DailyUsageRollup, whole_since, whole_until, day_grain)
        read(UsageRollup, whole_until, until, "day")
        return spans

    def _fetch(self, span: Span) -> tuple[list[Row], dict[int, list[int]]]:
        """Sum the span's rows per period, in range or not, and attribution; and the latency
        histograms of its hours in the range per model version."""
        column = span.column
        in_range = Case(
            When(**{f"{column}__gte": self.scope.since}, then=Value(True)),
            default=Value(False),
            output_field=BooleanField(),
        )
        # A table's own grain needs no truncating (nor converting the result back to UTC).
        moment = F(column) if span.grain == column else Trunc(column, span.grain, tzinfo=datetime.UTC)
        rows = self.scope.matching(span.table.objects.filter(span.where).order_by())
        sums = rows.annotate(moment=moment, in_range=in_range).values_list("moment", "in_range", *KEYS).annotate(**SUMS)
        # Only the range's histograms are read, added up per model version over the whole span.
        histograms = (
            rows.filter(**{f"{column}__gte": self.scope.since}, model_version_id__isnull=False)
            .values_list("model_version_id")
            .annotate(**HISTOGRAM)
        )
        width = 2 + len(KEYS)
        found = [
            Row(as_utc(values[0]), bool(values[1]), *values[2:width], *(value or 0 for value in values[width:]))
            for values in sums
        ]
        counted = {version_id: [count or 0 for count in counts] for version_id, *counts in histograms if any(counts)}
        return found, counted

    @cached_property
    def _read(self) -> tuple[list[Row], list[Row], dict[int, list[list[int]]]]:
        """Every row read, those that count towards the budget month, and the range's histograms
        per model version (one per span)."""
        rows: list[Row] = []
        month: list[Row] = []
        histograms: dict[int, list[list[int]]] = {}
        for span in self.spans:
            found, counted = self._fetch(span)
            rows.extend(found)
            if span.budget:
                month.extend(row for row in found if row.moment >= self.budget_month)
            for version_id, counts in counted.items():
                histograms.setdefault(version_id, []).append(counts)
        return rows, month, histograms

    @cached_property
    def rows(self) -> list[Row]:
        """The rows of the range itself."""
        return [row for row in self._read[0] if row.in_range]

    @cached_property
    def month_rows(self) -> list[Row]:
        """The budget month's rows up to the end of the range, from its first day even when the
        range starts later: a budget is for the calendar month."""
        return self._read[1]

    @cached_property
    def histograms(self) -> dict[int, list[list[int]]]:
        """The range's latency histograms per model version."""
        return self._read[2]

    @cached_property
    def version_ids(self) -> set[int]:
        return {row.model_version_id for row in self._read[0] if row.model_version_id is not None}


def _merged(spans: list[Span]) -> list[Span]:
    """One span per table, grain and budget flag: their windows OR-ed, so that a page costs a few queries."""
    merged: dict[tuple[RollupTable, str, bool], Span] = {}
    for span in spans:
        key = (span.table, span.grain, span.budget)
        known = merged.get(key)
        merged[key] = span if known is None else replace(known, where=known.where | span.where)
    return list(merged.values())
