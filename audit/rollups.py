"""Hourly usage rollups of routing traffic, for the dashboard: built from the ledger, never the record.

``rebuild`` recomputes whole UTC hours from the events (delete the hour's rows, insert the new sums,
in one transaction per hour), so running it twice changes nothing and any range can be repaired.
``refresh`` (beat, every ``ROLLUP_SECONDS``) rebuilds just the hours that events inserted since its
last run touched, found from a watermark on the event id.

Daily rollups (``DailyUsageRollup``) add a day's hourly rows up without the task type, for
dashboards over weeks: about one row in fifty. Whatever rebuilds an hour rebuilds its day in the
same transaction, from the hourly rows, so a day is always the sum of its hours.

Where things count:
- a decision or a refusal in the hour it occurred, under its own attribution; refusals under no
  model version (``model_version_id`` null), counted in ``refusals``;
- an outcome in the hour of its decision, so tokens, cost and latency sit beside the decisions they
  belong to (a late outcome rebuilds that earlier hour), and under the model version that actually
  answered: after a fallback that is a different row from the decision's. An outcome whose decision
  is no longer in the database (archived) is not counted;
- tokens and reported cost come from outcomes (what was used), estimated cost from decisions;
- latency percentiles cover every outcome that reports a latency, whatever its status, because
  leaving timeouts out would hide exactly the tail p99 is for. The error rate is beside them.

Hours of archived months are left as they are: their events have left the database, so the
rollups are all that remain of them.

All sums and percentiles are computed by the database with GROUP BY, one query for decisions and
one for outcomes per hour; only SQLite, which has no ``percentile_cont``, gets its exact
percentiles from the sorted latencies in Python.
"""

import bisect
import datetime
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import connection, transaction
from django.db.models import IntegerField, Max, Min, Q, Sum
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, TruncHour
from django.utils import timezone

from audit.models import AuditArchive, AuditEvent, DailyUsageRollup, RollupWatermark, UsageRollup

DECISION = "routing.decision"
REFUSED = "routing.refused"
OUTCOME = "routing.outcome"

# Upper bounds (inclusive) of the latency histogram's buckets, in milliseconds. A histogram has one
# more count than there are bounds: the last counts latencies above 60 s. Changing this list makes
# stored histograms unreadable: rebuild every hour after changing it.
LATENCY_BUCKETS_MS: tuple[int, ...] = (
    25,
    50,
    100,
    150,
    200,
    300,
    400,
    500,
    750,
    1_000,
    1_500,
    2_000,
    3_000,
    5_000,
    7_500,
    10_000,
    15_000,
    20_000,
    30_000,
    60_000,
)
PERCENTILES = (50, 95, 99)

# The attribution a rollup row sums over, in the order of the queries' GROUP BY.
KEY = (
    "application_name",
    "team_name",
    "policy_slug",
    "rule",
    "model_version_id",
    "model_version_name",
    "task_type",
    "classification",
)
# A daily row's attribution: the hourly one without the task type.
DAILY_KEY = tuple(name for name in KEY if name != "task_type")
COUNTS = (
    "decisions",
    "refusals",
    "outcomes_ok",
    "outcomes_error",
    "outcomes_timeout",
    "input_tokens",
    "output_tokens",
    "estimated_cost_usd",
    "reported_cost_usd",
)

# Ids of events read by one refresh transaction: a backlog (the first run over a full ledger)
# goes in several commits rather than one transaction holding every hour.
REFRESH_BATCH_IDS = 200_000
# How long an id missing below the watermark is watched for a late commit. Events are written by
# single statements or short service transactions; an id still missing after this was rolled back.
GAP_SECONDS = 600
MAX_PENDING_GAPS = 1_000
# PostgreSQL's work memory for a rollup transaction (see ``_lock``).
WORK_MEM = "64MB"

MICRO = Decimal("0.000001")
HOUR = datetime.timedelta(hours=1)
DAY = datetime.timedelta(days=1)


def histogram_sums(field: str = "latency_histogram") -> dict[str, Sum]:
    """Aggregates adding up the histograms of the rows grouped: ``h0`` ... ``hN``, one per bucket."""
    return {
        f"h{index}": Sum(Cast(KeyTextTransform(str(index), field), IntegerField()))
        for index in range(len(LATENCY_BUCKETS_MS) + 1)
    }


def hour_of(moment: datetime.datetime) -> datetime.datetime:
    """The start of the UTC hour that ``moment`` falls in."""
    return moment.astimezone(datetime.UTC).replace(minute=0, second=0, microsecond=0)


def day_of(moment: datetime.datetime) -> datetime.datetime:
    """Midnight UTC at the start of the day that ``moment`` falls in."""
    return moment.astimezone(datetime.UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def hours_between(since: datetime.datetime, until: datetime.datetime) -> list[datetime.datetime]:
    """The UTC hours overlapping [since, until): from the one holding ``since`` to the last before ``until``."""
    hours, hour = [], hour_of(since)
    while hour < until:
        hours.append(hour)
        hour += HOUR
    return hours


def archived_until() -> datetime.datetime | None:
    """Where the events still in the database begin: the end of the newest archived month, if any."""
    from audit.archive import add_months, month_start

    newest = AuditArchive.objects.order_by("-month").values_list("month", flat=True).first()
    return month_start(add_months(newest, 1)) if newest is not None else None


def rebuild(since: datetime.datetime, until: datetime.datetime) -> int:
    """Recompute every hour overlapping [since, until), one transaction per hour; returns rows written.

    Each hour's day is added up again in the hour's transaction, so no reader sees a day that
    differs from the sum of its hours.

    Idempotent: an hour's rows are replaced by what its events add up to now. Hours of archived
    months are skipped (see the module's docstring).
    """
    written = 0
    for hour in rebuildable(hours_between(since, until)):
        with transaction.atomic():
            _lock()
            written += _rebuild_hour(hour)
            _rebuild_day(day_of(hour))
    return written


def rebuild_days(days: Iterable[datetime.datetime]) -> int:
    """Add up the given days' hourly rows again, one transaction per day; returns rows written."""
    written = 0
    for day in sorted({day_of(day) for day in days}):
        with transaction.atomic():
            _lock()
            written += _rebuild_day(day)
    return written


def rebuildable(hours: Iterable[datetime.datetime]) -> list[datetime.datetime]:
    """The given hours less those of archived months."""
    start = archived_until()
    return [hour for hour in hours if start is None or hour >= start]


def refresh() -> int:
    """Fold the events inserted since the last run into the rollups; returns how many hours were rebuilt.

    Decisions and refusals mark their own hour, outcomes their decision's hour; each marked hour is
    rebuilt whole. Nothing new: no hour is rebuilt.
    """
    rebuilt = 0
    while True:
        hours, caught_up = _refresh_batch()
        rebuilt += hours
        if caught_up:
            return rebuilt


@transaction.atomic
def _refresh_batch() -> tuple[int, bool]:
    """One transaction of ``refresh``: at most ``REFRESH_BATCH_IDS`` new ids, plus late commits."""
    _lock()
    mark, _ = RollupWatermark.objects.get_or_create(pk=1)
    low = mark.last_event_id
    if low == 0:
        # The first run starts below the oldest event: lower ids were rolled back or archived long ago.
        low = (AuditEvent.objects.aggregate(bottom=Min("id"))["bottom"] or 1) - 1
    top = AuditEvent.objects.aggregate(top=Max("id"))["top"] or 0
    high = max(low, min(top, low + REFRESH_BATCH_IDS))
    now = time.time()
    late, gaps = _late_commits(mark.pending_gaps, now)
    gaps += [[first, last, now] for first, last in _missing_ids(low, high)]
    gaps = gaps[-MAX_PENDING_GAPS:]
    if high == mark.last_event_id and not late and gaps == mark.pending_gaps:
        return 0, True
    hours = rebuildable(_touched_hours(Q(id__gt=low, id__lte=high) | Q(id__in=late)))
    for hour in hours:
        _rebuild_hour(hour)
    for day in sorted({day_of(hour) for hour in hours}):
        _rebuild_day(day)
    mark.last_event_id, mark.pending_gaps, mark.updated_at = high, gaps, timezone.now()
    mark.save()
    return len(hours), high >= top


def _lock() -> None:
    """One rollup writer at a time (a second waits), so two rebuilds of an hour never interleave.

    On PostgreSQL also sizes the transaction for its queries: an hour of 100,000 events sorts
    more than the default 4 MB of work memory in RAM, and JIT compiling the aggregates costs more
    (~150 ms) than it saves on queries this size.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext('switchboard.audit_rollups'))")
            cursor.execute(f"SET LOCAL work_mem = '{WORK_MEM}'")
            cursor.execute("SET LOCAL jit = off")


def _missing_ids(low: int, high: int) -> list[tuple[int, int]]:
    """Ranges of ids in (low, high] with no event (yet): ``high`` is the highest id, so it exists."""
    if high <= low or AuditEvent.objects.filter(id__gt=low, id__lte=high).count() == high - low:
        return []
    table = connection.ops.quote_name(AuditEvent._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT previous + 1, id - 1 FROM (SELECT id, LAG(id, 1, %s) OVER (ORDER BY id) AS previous "  # noqa: S608
            f"FROM {table} WHERE id > %s AND id <= %s) AS ids WHERE id - previous > 1",
            [low, low, high],
        )
        return [(int(first), int(last)) for first, last in cursor.fetchall()]


def _late_commits(gaps: list[list[float]], now: float) -> tuple[list[int], list[list[float]]]:
    """The ids that appeared in the pending gaps, and the gaps still worth watching."""
    recent = [(int(first), int(last), seen) for first, last, seen in gaps if now - seen < GAP_SECONDS]
    if not recent:
        return [], []
    within = Q()
    for first, last, _ in recent:
        within |= Q(id__gte=first, id__lte=last)
    late = sorted(AuditEvent.objects.filter(within).order_by().values_list("id", flat=True))
    remaining: list[list[float]] = []
    for first, last, seen in recent:
        start = first
        for found in late[bisect.bisect_left(late, first) : bisect.bisect_right(late, last)]:
            if found > start:
                remaining.append([start, found - 1, seen])
            start = found + 1
        if start <= last:
            remaining.append([start, last, seen])
    return late, remaining


def _touched_hours(events: Q) -> list[datetime.datetime]:
    """The hours that the given events count in: their own for decisions and refusals, their decision's for outcomes."""
    utc_hour = TruncHour("occurred_at", tzinfo=datetime.UTC)
    new = AuditEvent.objects.filter(events).order_by()
    own = new.filter(kind__in=[DECISION, REFUSED]).annotate(hour=utc_hour).values_list("hour", flat=True)
    answered = (
        AuditEvent.objects.filter(
            kind=DECISION, decision_id__in=new.filter(kind=OUTCOME, decision_id__isnull=False).values("decision_id")
        )
        .order_by()
        .annotate(hour=utc_hour)
        .values_list("hour", flat=True)
    )
    return sorted({hour_of(hour) for hour in (*own.distinct(), *answered.distinct())})


def _rebuild_hour(hour: datetime.datetime) -> int:
    """Replace one hour's rows by the sums of its events; call inside a transaction holding ``_lock``."""
    rows: dict[tuple[Any, ...], UsageRollup] = {}

    def row(key: Sequence[Any]) -> UsageRollup:
        key = tuple(key)
        if key not in rows:
            rows[key] = UsageRollup(hour=hour, **dict(zip(KEY, key, strict=True)))
        return rows[key]

    until = hour + HOUR
    width = len(KEY)
    for found in _query(_decisions_sql(), hour, until):
        decided, refused, estimated = found[width:]
        rollup = row(found[:width])
        rollup.decisions, rollup.refusals = int(decided), int(refused)
        rollup.estimated_cost_usd = _dollars(estimated)
    for found in _query(_outcomes_sql(), hour, until):
        ok, error, timeout, tokens_in, tokens_out, reported, *rest = found[width:]
        rollup = row(found[:width])
        rollup.outcomes_ok, rollup.outcomes_error, rollup.outcomes_timeout = int(ok), int(error), int(timeout)
        rollup.input_tokens, rollup.output_tokens = int(tokens_in or 0), int(tokens_out or 0)
        rollup.reported_cost_usd = _dollars(reported)
        percentiles, (timed, *cumulative) = rest[: -len(LATENCY_BUCKETS_MS) - 1], rest[-len(LATENCY_BUCKETS_MS) - 1 :]
        rollup.latency_histogram = _histogram([int(count or 0) for count in cumulative], int(timed or 0))
        if percentiles:
            rollup.latency_p50_ms, rollup.latency_p95_ms, rollup.latency_p99_ms = percentiles
    if connection.vendor != "postgresql":
        for key, latencies in _latencies(hour, until).items():
            rollup = row(key)
            rollup.latency_p50_ms, rollup.latency_p95_ms, rollup.latency_p99_ms = (
                exact_percentile(latencies, p) for p in PERCENTILES
            )
    UsageRollup.objects.filter(hour=hour).delete()
    UsageRollup.objects.bulk_create(rows.values(), batch_size=500)
    return len(rows)


def _rebuild_day(day: datetime.datetime) -> int:
    """Replace one day's rows by the sums of its hourly rows; call inside a transaction holding ``_lock``."""
    sums = (
        UsageRollup.objects.filter(hour__gte=day, hour__lt=day + DAY)
        .order_by()
        .values(*DAILY_KEY)
        .annotate(**{f"total_{name}": Sum(name) for name in COUNTS}, **histogram_sums())
    )
    rows = []
    for found in sums:
        counts = [found.pop(f"h{index}") or 0 for index in range(len(LATENCY_BUCKETS_MS) + 1)]
        totals = {name: found.pop(f"total_{name}") or 0 for name in COUNTS}
        rows.append(DailyUsageRollup(day=day, **found, **totals, latency_histogram=counts if any(counts) else []))
    DailyUsageRollup.objects.filter(day=day).delete()
    DailyUsageRollup.objects.bulk_create(rows, batch_size=500)
    return len(rows)


def _dollars(micros: Any) -> Decimal:
    """Sums are kept in whole micro-dollars (integers add up exactly on every database)."""
    return (Decimal(micros or 0) * MICRO).quantize(MICRO)


def _histogram(cumulative: list[int], total: int) -> list[int]:
    """Counts per bucket from counts at or below each bound, plus the overflow above the last."""
    counts, below = [], 0
    for at_or_below in cumulative:
        counts.append(at_or_below - below)
        below = at_or_below
    return [*counts, total - below]


@dataclass(frozen=True)
class _Dialect:
    """The little that differs between the databases: reading a value out of the JSON ``data``."""

    postgresql: bool

    def text(self, column: str, *path: str) -> str:
        if self.postgresql:
            *parents, leaf = path
            return column + "".join(f" -> '{key}'" for key in parents) + f" ->> '{leaf}'"
        return f"json_extract({column}, '$.{'.'.join(path)}')"

    def number(self, column: str, *path: str, kind: str) -> str:
        return f"({self.text(column, *path)})::{kind}" if self.postgresql else self.text(column, *path)

    def micros(self, column: str, *path: str) -> str:
        """Dollars as whole micro-dollars; the API stores costs rounded to six places, so nothing is lost."""
        if self.postgresql:
            return f"ROUND(({self.text(column, *path)})::numeric * 1000000)"
        return f"CAST(ROUND({self.text(column, *path)} * 1000000) AS INTEGER)"

    def latency(self) -> str:
        return self.number("o.data", "latency_ms", kind="float8")

    def by_time(self, kind_column: str) -> str:
        """The kind column, kept from steering SQLite's planner: with no statistics it prefers the
        kind index (every decision ever) to the hour's range on ``occurred_at``. Unary ``+`` is
        SQLite's way to say so; PostgreSQL has statistics and needs nothing."""
        return kind_column if self.postgresql else f"+{kind_column}"


def _dialect() -> _Dialect:
    return _Dialect(postgresql=connection.vendor == "postgresql")


def _key_columns(alias: str) -> str:
    return ", ".join(f"{alias}.{connection.ops.quote_name(name)}" for name in KEY)


def _table() -> str:
    return connection.ops.quote_name(AuditEvent._meta.db_table)


def _decisions_sql() -> str:
    sql = _dialect()
    quote = connection.ops.quote_name
    # A refusal counts under no model version, whatever its event may name.
    unless_refused = {
        "model_version_id": f"CASE WHEN e.kind = '{REFUSED}' THEN NULL ELSE e.{quote('model_version_id')} END",
        "model_version_name": f"CASE WHEN e.kind = '{REFUSED}' THEN '' ELSE e.{quote('model_version_name')} END",
    }
    key = ", ".join(unless_refused.get(name, f"e.{quote(name)}") for name in KEY)
    return (
        f"SELECT {key}, "  # noqa: S608 - names and kinds are ours, values are parameters
        f"SUM(CASE WHEN e.kind = '{DECISION}' THEN 1 ELSE 0 END), "
        f"SUM(CASE WHEN e.kind = '{REFUSED}' THEN 1 ELSE 0 END), "
        f"SUM(CASE WHEN e.kind = '{DECISION}' THEN {sql.micros('e.data', 'response', 'estimated_cost_usd')} END) "
        f"FROM {_table()} AS e "
        f"WHERE {sql.by_time('e.kind')} IN ('{DECISION}', '{REFUSED}') "
        "AND e.occurred_at >= %s AND e.occurred_at < %s "
        f"GROUP BY {', '.join(str(position) for position in range(1, len(KEY) + 1))}"
    )


def _answered_sql(columns: str) -> str:
    """The outcomes whose decisions occurred in the hour: their key (the answering version's) and ``columns``."""
    return (
        f"SELECT {_key_columns('o')}, {columns} "  # noqa: S608 - names and kinds are ours, values are parameters
        f"FROM {_table()} AS d JOIN {_table()} AS o ON o.decision_id = d.decision_id AND o.kind = '{OUTCOME}' "
        f"WHERE {_dialect().by_time('d.kind')} = '{DECISION}' AND d.decision_id IS NOT NULL "
        f"AND d.occurred_at >= %s AND d.occurred_at < %s"
    )


def _outcomes_sql() -> str:
    sql = _dialect()
    read_once = ", ".join(
        [
            f"{sql.text('o.data', 'status')} AS status",
            f"{sql.number('o.data', 'input_tokens', kind='bigint')} AS tokens_in",
            f"{sql.number('o.data', 'output_tokens', kind='bigint')} AS tokens_out",
            f"{sql.micros('o.data', 'reported_cost_usd')} AS reported",
            f"{sql.latency()} AS latency",
        ]
    )
    percentiles = (
        [f"percentile_cont({p / 100}) WITHIN GROUP (ORDER BY a.latency)" for p in PERCENTILES] if sql.postgresql else []
    )
    columns = [
        "SUM(CASE WHEN a.status = 'ok' THEN 1 ELSE 0 END)",
        "SUM(CASE WHEN a.status = 'error' THEN 1 ELSE 0 END)",
        "SUM(CASE WHEN a.status = 'timeout' THEN 1 ELSE 0 END)",
        "SUM(a.tokens_in)",
        "SUM(a.tokens_out)",
        "SUM(a.reported)",
        *percentiles,
        "COUNT(a.latency)",
        *(f"SUM(CASE WHEN a.latency <= {bound} THEN 1 ELSE 0 END)" for bound in LATENCY_BUCKETS_MS),
    ]
    # MATERIALIZED: each outcome's JSON is read once, not once for every aggregate that names a column.
    return (
        f"WITH a AS MATERIALIZED ({_answered_sql(read_once)}) "  # noqa: S608 - as above
        f"SELECT {_key_columns('a')}, {', '.join(columns)} FROM a GROUP BY {_key_columns('a')}"
    )


def _latencies(hour: datetime.datetime, until: datetime.datetime) -> dict[tuple[Any, ...], list[float]]:
    """Each row's reported latencies, sorted (SQLite only: PostgreSQL computes the percentiles itself)."""
    sql = _answered_sql(f"{_dialect().latency()} AS latency")
    found: dict[tuple[Any, ...], list[float]] = {}
    timed = f"SELECT * FROM ({sql}) AS a WHERE a.latency IS NOT NULL"  # noqa: S608 - as above
    for *key, latency in _query(timed, hour, until):
        found.setdefault(tuple(key), []).append(float(latency))
    for latencies in found.values():
        latencies.sort()
    return found


def _query(sql: str, since: datetime.datetime, until: datetime.datetime) -> list[tuple[Any, ...]]:
    adapt = connection.ops.adapt_datetimefield_value
    with connection.cursor() as cursor:
        cursor.execute(sql, [adapt(since), adapt(until)])
        rows: list[tuple[Any, ...]] = cursor.fetchall()
        return rows


def exact_percentile(ordered: Sequence[float], percentile: float) -> float | None:
    """The percentile of sorted values, interpolated as PostgreSQL's ``percentile_cont`` does."""
    if not ordered:
        return None
    position = percentile / 100 * (len(ordered) - 1)
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)


def merged_percentiles(
    histograms: Iterable[Sequence[int]], percentiles: Iterable[float] = PERCENTILES
) -> dict[float, float | None]:
    """Estimated latency percentiles of several rollup rows together (hours, versions, teams), by percentile.

    Adds the histograms up and interpolates linearly inside the bucket where each percentile's rank
    falls (as Prometheus' ``histogram_quantile`` does), so an estimate is off by at most its bucket's
    width. A rank in the overflow bucket reads as the last bound (60 s). None when nothing was timed.
    Empty histograms (rows without outcomes) are ignored.
    """
    totals = [0] * (len(LATENCY_BUCKETS_MS) + 1)
    for histogram in histograms:
        for index, count in enumerate(histogram):
            totals[index] += count
    timed = sum(totals)
    estimates: dict[float, float | None] = {}
    for percentile in percentiles:
        if not timed:
            estimates[percentile] = None
            continue
        rank, below = percentile / 100 * timed, 0
        for index, count in enumerate(totals):
            if count and below + count >= rank:
                if index == len(LATENCY_BUCKETS_MS):
                    estimates[percentile] = float(LATENCY_BUCKETS_MS[-1])
                else:
                    low = LATENCY_BUCKETS_MS[index - 1] if index else 0
                    estimates[percentile] = low + (LATENCY_BUCKETS_MS[index] - low) * (rank - below) / count
                break
            below += count
    return estimates
