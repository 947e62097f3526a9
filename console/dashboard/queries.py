"""The dashboard's sums over hourly rollups, and the per-day cache that keeps them fast.

Two GROUP BY queries give everything the panels need: one sums counts, tokens and costs per
period and attribution (model version, team, application, classification, policy, rule), the
other adds up latency histograms per period and model version. Each panel is then shaped in
Python from those rows, so the page's query count does not grow with charts, versions or teams.

Why a cache: a month of hourly rollups for a busy portfolio is about 100,000 rows, and adding up
100,000 JSON histograms alone costs PostgreSQL some 200 ms. Whole past days are summed once per
filter combination and kept in Django's cache, each with a fingerprint of its rollup rows
(their count and highest id). ``audit.rollups`` replaces an hour's rows whenever it rebuilds it,
and new rows always get higher ids, so a rebuilt day has a new fingerprint and is summed again:
the cache is never stale, it only saves work. Days split by the range's start and the current
day are always read live.
"""

import datetime
import hashlib
from collections.abc import Iterable
from dataclasses import astuple, dataclass
from decimal import Decimal
from functools import cached_property
from typing import Any

from django.core.cache import cache
from django.db.models import BooleanField, Case, Count, IntegerField, Max, Q, Sum, Value, When
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, Trunc

from audit.models import UsageRollup
from audit.rollups import LATENCY_BUCKETS_MS
from console.dashboard.filters import DAY, Scope

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
BUCKETS = len(LATENCY_BUCKETS_MS) + 1
HISTOGRAM = {
    f"h{index}": Sum(Cast(KeyTextTransform(str(index), "latency_histogram"), IntegerField()))
    for index in range(BUCKETS)
}
NO_ROWS = (0, 0)
# Bump when the cached rows change shape, so old entries are never read as new ones.
CACHE_VERSION = 1
CACHE_SECONDS = 7 * 24 * 3600


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


@dataclass
class Chunk:
    """Rows and histograms (per period, in range or not, and model version) of some stretch of
    time, and the fingerprint of each day summed."""

    rows: list[Row]
    histograms: dict[tuple[datetime.datetime, bool, int], list[int]]
    prints: dict[datetime.datetime, tuple[int, int]]


def _windows(days: Iterable[datetime.datetime]) -> Q:
    """Hours of the given days, as few ranges as possible (adjacent days merge)."""
    spans: list[list[datetime.datetime]] = []
    for day in sorted(days):
        if spans and spans[-1][1] == day:
            spans[-1][1] = day + DAY
        else:
            spans.append([day, day + DAY])
    where = Q(pk__in=[])
    for since, until in spans:
        where |= Q(hour__gte=since, hour__lt=until)
    return where


class Sums:
    """The rollup sums for one scope: read once per request, on first use."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        last_moment = scope.until - datetime.timedelta(microseconds=1)
        # The budget panel's month: the one the range ends in, counted from its first day.
        self.budget_month = month_start(last_moment)
        # Read live: the day the range starts in (split between budget-only hours and the range)
        # and every day from the last one on; with hourly charts, the whole range.
        self.live_since = day_start(scope.since)
        self.load_since = min(self.live_since, self.budget_month)
        last_day = day_start(last_moment)
        self.tail_since = self.live_since if scope.bucket == "hour" else max(last_day, self.live_since + DAY)
        self.grain = "hour" if scope.bucket == "hour" else "day"

    def _filtered(self, where: Q) -> Any:
        return self.scope.matching(UsageRollup.objects.filter(where).order_by())

    def _fetch(self, where: Q, grain: str, *, split: bool, timed: Q | None = None) -> Chunk:
        """Sum the rows in ``where`` per ``grain``, and their latency histograms in ``timed``
        (default: the same hours); with ``split``, apart before and after the range's start.
        Each day's fingerprint comes from the same statement as its sums."""
        in_range: Any = Value(True, output_field=BooleanField())
        if split:
            in_range = Case(
                When(hour__gte=self.scope.since, then=Value(True)), default=Value(False), output_field=BooleanField()
            )
        moment = Trunc("hour", grain, tzinfo=datetime.UTC)
        sums = (
            self._filtered(where)
            .annotate(moment=moment, in_range=in_range)
            .values("moment", "in_range", *KEYS)
            .annotate(**SUMS, count=Count("id"), top=Max("id"))
        )
        histograms = (
            self._filtered((where if timed is None else timed) & Q(model_version_id__isnull=False))
            .annotate(moment=moment, in_range=in_range)
            .values_list("moment", "in_range", "model_version_id")
            .annotate(**HISTOGRAM)
        )
        chunk = Chunk([], {}, {})
        for found in sums:
            count, top = found.pop("count"), found.pop("top")
            row = Row(**{**found, **{name: found[name] or 0 for name in SUMS}})
            row.moment, row.in_range = as_utc(row.moment), bool(row.in_range)
            chunk.rows.append(row)
            known = chunk.prints.get(row.moment, (0, 0))
            chunk.prints[row.moment] = (known[0] + count, max(known[1], top))
        for when, flag, version_id, *counts in histograms:
            if any(counts):
                chunk.histograms[as_utc(when), bool(flag), version_id] = [count or 0 for count in counts]
        return chunk

    def _fingerprints(self, days: Iterable[datetime.datetime]) -> dict[datetime.datetime, tuple[int, int]]:
        """Per day, how many matching rollup rows there are and the highest id among them."""
        return {
            as_utc(day): (count, top)
            for day, count, top in self._filtered(_windows(days))
            .annotate(day=Trunc("hour", "day", tzinfo=datetime.UTC))
            .values_list("day")
            .annotate(count=Count("id"), top=Max("id"))
        }

    def _cache_key(self, day: datetime.datetime) -> str:
        scope = self.scope
        filters = hashlib.sha256(f"{scope.team}\n{scope.application}\n{scope.classification}".encode()).hexdigest()
        return f"dashboard:{CACHE_VERSION}:{day:%Y%m%d}:{filters[:32]}"

    def _cached_days(self) -> list[datetime.datetime]:
        """Whole days read through the cache: before the range's first day (for budgets) and
        between it and the last day."""
        days = []
        day = self.load_since
        while day < self.tail_since:
            if day != self.live_since:
                days.append(day)
            day += DAY
        return days

    def _through_cache(self) -> Chunk:
        """The cached days' sums: entries whose fingerprint still matches, the rest summed anew.

        An entry holds a day's rows as tuples (without the day) and its histograms per version;
        a day without rows is cached too, as an empty entry, so it costs nothing next time.
        """
        keys = {day: self._cache_key(day) for day in self._cached_days()}
        found = cache.get_many(list(keys.values()))
        since = self.scope.since
        # Days before the range only feed the budget panel: their histograms are not summed
        # (None) until a range includes them.
        entries = {
            day: found[key]
            for day, key in keys.items()
            if key in found and (day < since or found[key]["histograms"] is not None)
        }
        if entries:
            prints = self._fingerprints(entries)
            entries = {day: entry for day, entry in entries.items() if entry["print"] == prints.get(day, NO_ROWS)}
        stale = [day for day in keys if day not in entries]
        if stale:
            timed = [day for day in stale if day >= since]
            summed = self._fetch(_windows(stale), "day", split=False, timed=_windows(timed))
            fresh = {
                day: {"print": summed.prints.get(day, NO_ROWS), "rows": [], "histograms": {} if day >= since else None}
                for day in stale
            }
            for row in summed.rows:
                fresh[row.moment]["rows"].append(astuple(row)[2:])
            for (day, _, version_id), counts in summed.histograms.items():
                fresh[day]["histograms"][version_id] = counts
            cache.set_many({keys[day]: entry for day, entry in fresh.items()}, timeout=CACHE_SECONDS)
            entries.update(fresh)
        chunk = Chunk([], {}, {})
        for day, entry in entries.items():
            in_range = day >= self.scope.since
            chunk.rows.extend(Row(day, in_range, *values) for values in entry["rows"])
            for version_id, counts in (entry["histograms"] or {}).items():
                chunk.histograms[day, in_range, version_id] = counts
        return chunk

    @cached_property
    def chunk(self) -> Chunk:
        cached = self._through_cache()
        until = self.scope.until
        if self.tail_since == self.live_since:
            live_hours = Q(hour__gte=self.live_since, hour__lt=until)
        else:
            live_hours = Q(hour__gte=self.live_since, hour__lt=self.live_since + DAY) | Q(
                hour__gte=self.tail_since, hour__lt=until
            )
        live = self._fetch(live_hours, self.grain, split=True)
        return Chunk(cached.rows + live.rows, {**cached.histograms, **live.histograms}, {})

    @cached_property
    def rows(self) -> list[Row]:
        """The rows of the range itself."""
        return [row for row in self.chunk.rows if row.in_range]

    @cached_property
    def month_rows(self) -> list[Row]:
        """The budget month's rows up to the end of the range, from its first day even when the
        range starts later: a budget is for the calendar month."""
        return [row for row in self.chunk.rows if row.moment >= self.budget_month]

    @cached_property
    def histograms(self) -> dict[int, list[list[int]]]:
        """The range's latency histograms per model version."""
        found: dict[int, list[list[int]]] = {}
        for (_, in_range, version_id), counts in self.chunk.histograms.items():
            if in_range:
                found.setdefault(version_id, []).append(counts)
        return found

    @cached_property
    def version_ids(self) -> set[int]:
        return {row.model_version_id for row in self.chunk.rows if row.model_version_id is not None}
