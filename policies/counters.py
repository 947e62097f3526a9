"""Quota and spend counters that every web process shares: Redis when configured, else the database.

``ROUTING_COUNTERS_URL`` (e.g. ``redis://127.0.0.1:6379/0``) selects Redis; unset, the counters
live in the database (``QuotaWindow``, ``MonthlySpend``). Either way a routing request pays for
them with at most one extra round trip:

- ``check`` counts the request in its application's clock minute and reads the team's and the
  application's month-to-date spend, in one SQL statement or one Redis script call.
- The decision's estimated cost is added to both spends without a round trip of its own. On
  PostgreSQL the spend UPSERT rides in the audit INSERT's statement (a data-modifying CTE), so a
  cost is counted exactly when its decision is stored. Redis cannot join the database's
  statement, so its script adds the cost in ``check`` already: the engine decides before the
  counters are asked (it is in memory), ``check`` gets the cost within budget and the cost over
  budget (the economy downgrade, or nothing when the rule refuses), and the script picks with the
  spend it has just read. A stored replay of a request id is refunded (a second call, only on that
  rare path). SQLite has no data-modifying CTEs, and no round trips either (it runs in process):
  there the UPSERT is a second statement in the audit INSERT's transaction.

A Redis that loses its data (restarted without persistence, flushed, failed over) reads every
spend as zero, and budgets stop biting, until ``manage.py rebuild_spend`` sets the month's spends
again from the audit ledger (``policies.spend``; each backend's ``rebuild_month`` says how it
stays right while requests are routed).

Quotas count fixed clock minutes (a burst of up to twice the quota can straddle a minute's end;
in exchange ``Retry-After`` is exact and the same in every process). Spend is counted in integer
micro-dollars, the precision the API reports estimated costs in, so increments add exactly.
"""

import datetime
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import redis
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections, transaction

from audit.models import AuditEvent
from audit.services import insert
from policies.models import Application, MonthlySpend, QuotaWindow, Scope, Team

QUOTA_TTL_SECONDS = 120  # a minute's counter outlives its minute, then Redis forgets it
SPEND_TTL_SECONDS = 62 * 24 * 3600  # a month's spend stays readable into the next month
REDIS_TIMEOUT_SECONDS = 0.5  # the routing API answers 503 rather than wait longer
REBUILD_LOCK_SECONDS = 600  # a crashed rebuild holds the Redis lock no longer than this
NO_LIMIT = -1
TEAM, APPLICATION = Scope.TEAM.value, Scope.APPLICATION.value  # plain strings for the drivers

Owner = tuple[str, int]  # whose spend: (TEAM or APPLICATION, its id)
Ledger = Callable[[], dict[Owner, int]]  # a month's spends as the ledger has them, read when called


class CountersUnavailable(Exception):
    """The counters could not be reached; routing fails closed (503) rather than ignore budgets."""


class RebuildBusy(Exception):
    """Another rebuild of the spend counters is running: two at once would each add the same correction."""

    def __init__(self, month: datetime.date) -> None:
        super().__init__(f"Another rebuild of {month:%Y-%m}'s spend counters is running; try again when it is done.")


@dataclass(frozen=True, slots=True)
class Window:
    """Where one request is counted: its application's minute and its month's spends."""

    app_id: int
    team_id: int
    minute: int  # minutes since the Unix epoch
    month: datetime.date  # first day
    requests_per_minute: int | None
    team_budget_micro: int | None
    app_budget_micro: int | None


@dataclass(frozen=True, slots=True)
class Usage:
    """What ``check`` saw: the request's number in its minute (0 without a quota) and the spends
    before this request's cost, in micro-dollars."""

    requests: int
    team_spent: int
    app_spent: int

    def over_quota(self, window: Window) -> bool:
        return window.requests_per_minute is not None and self.requests > window.requests_per_minute

    def over_team_budget(self, window: Window) -> bool:
        return window.team_budget_micro is not None and self.team_spent >= window.team_budget_micro

    def over_app_budget(self, window: Window) -> bool:
        return window.app_budget_micro is not None and self.app_spent >= window.app_budget_micro

    def over_budget(self, window: Window) -> bool:
        # The Redis script below makes the same comparison; keep the two alike.
        return self.over_team_budget(window) or self.over_app_budget(window)


@dataclass(frozen=True, slots=True)
class Rebuilt:
    """One spend counter of a rebuilt month: what it held and what the ledger says, in micro-dollars."""

    scope: str
    owner_id: int
    counter: int
    ledger: int


def _compare(counters: dict[Owner, int], ledger: dict[Owner, int]) -> list[Rebuilt]:
    """Every owner either side knows, teams first (the order ``_SPEND_UPSERT`` locks rows in)."""
    owners = sorted(counters.keys() | ledger.keys(), key=lambda owner: (owner[0] != TEAM, owner[1]))
    return [
        Rebuilt(scope, owner_id, counters.get((scope, owner_id), 0), ledger.get((scope, owner_id), 0))
        for scope, owner_id in owners
    ]


class Counters(Protocol):
    charges_in_check: bool

    def check(self, window: Window, *, within: int, over: int) -> Usage: ...

    def store(self, event: AuditEvent, window: Window, charge: int) -> None: ...

    def refund(self, window: Window, charge: int) -> None: ...

    def spent(self, scope: str, owner_id: int, month: datetime.date) -> int: ...

    def rebuild_month(self, month: datetime.date, ledger: Ledger, *, dry_run: bool = False) -> list[Rebuilt]:
        """Make the month's spend counters say what ``ledger`` says; returns each as read beside the ledger.

        The counters are read, then ``ledger`` is called, and the difference is *added* to each
        counter (never set), so a charge made since the read is kept; see ``policies.spend``.
        """
        ...


# --- The database --------------------------------------------------------------------------

_SPENT = (
    f"COALESCE((SELECT spent_micro_usd FROM {MonthlySpend._meta.db_table} "  # noqa: S608 - names are ours
    "WHERE scope = %s AND owner_id = %s AND month = %s), 0)"
)


def _check_sql(vendor: str, *, quota: bool, app_spend: bool) -> str:
    """One statement: count the request in its application's minute (with a quota) and read the
    team's spend and (with a budget) the application's.

    The quota is one row per application, reset in place when a later minute starts, so the
    table never grows. A process whose clock lags (an older minute) counts into the newer minute
    instead of resetting it.
    """
    spends = f"{_SPENT}, {_SPENT if app_spend else '0'}"
    if not quota:
        return f"SELECT 0, {spends}"
    table = QuotaWindow._meta.db_table
    greatest = "GREATEST" if vendor == "postgresql" else "MAX"
    return (
        f"INSERT INTO {table} (application_id, minute, requests) VALUES (%s, %s, 1) "  # noqa: S608
        f"ON CONFLICT (application_id) DO UPDATE SET "
        f"requests = CASE WHEN excluded.minute > {table}.minute THEN 1 ELSE {table}.requests + 1 END, "
        f"minute = {greatest}(excluded.minute, {table}.minute) "
        f"RETURNING requests, {spends}"
    )


def _spend_upsert(rows: int) -> str:
    """Add to ``rows`` spends (each scope, owner, month, micro-dollars), creating those not counted yet."""
    table = MonthlySpend._meta.db_table
    values = ", ".join(["(%s, %s, %s, %s)"] * rows)
    return (
        f"INSERT INTO {table} (scope, owner_id, month, spent_micro_usd) VALUES {values} "  # noqa: S608
        f"ON CONFLICT (scope, owner_id, month) DO UPDATE SET spent_micro_usd = {table}.spent_micro_usd + "
        "excluded.spent_micro_usd"
    )


# A decision's cost, added to its team's spend and its application's, in that order: whatever else
# adds to several spends in one transaction (``rebuild_month``) takes the teams first too, so the
# row locks are always taken in one order and never deadlock.
_SPEND_UPSERT = _spend_upsert(2)
_EVENT_FIELDS = [field for field in AuditEvent._meta.concrete_fields if not field.primary_key]


def _event_insert(connection: Any) -> str:
    quote = connection.ops.quote_name
    columns = ", ".join(quote(field.column) for field in _EVENT_FIELDS)
    placeholders = ", ".join(["%s"] * len(_EVENT_FIELDS))
    return f"INSERT INTO {quote(AuditEvent._meta.db_table)} ({columns}) VALUES ({placeholders}) RETURNING id"  # noqa: S608


class DatabaseCounters:
    """Counters in the database: one statement per check, and the spend rides with the audit insert."""

    charges_in_check = False

    def __init__(self) -> None:
        self._sql: dict[str, str] = {}
        # (scope, owner id, month) -> (spend in micro-dollars, time.monotonic() when read)
        self._known: dict[tuple[str, int, datetime.date], tuple[int, float]] = {}

    def check(self, window: Window, *, within: int, over: int) -> Usage:
        """Count the request in its minute and read the spends, in one statement, or in none.

        On PostgreSQL, a request without a quota whose spends this process read or wrote less than
        ``ROUTING_SPEND_FRESH_SECONDS`` ago uses those figures and makes no round trip: every
        stored decision returns its team's and application's new spend (all processes' charges
        included), so under steady traffic they are a few milliseconds old. SQLite runs in
        process and is read every time.
        """
        connection = connections[DEFAULT_DB_ALIAS]
        quota, app_spend = window.requests_per_minute is not None, window.app_budget_micro is not None
        reuse = not quota and connection.vendor == "postgresql" and settings.ROUTING_SPEND_FRESH_SECONDS > 0
        if reuse:
            known = self._known_usage(window, app_spend=app_spend)
            if known is not None:
                return known
        month = connection.ops.adapt_datefield_value(window.month)
        key = f"check:{connection.vendor}:{quota}:{app_spend}"
        sql = self._sql.get(key)
        if sql is None:
            sql = self._sql[key] = _check_sql(connection.vendor, quota=quota, app_spend=app_spend)
        # The application's spend is always counted (a budget set mid-month starts from the
        # truth) but only read when it has a budget.
        params: list[int | str | None] = [window.app_id, window.minute] if quota else []
        params += [TEAM, window.team_id, month]
        if app_spend:
            params += [APPLICATION, window.app_id, month]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            requests, team_spent, app_spent = cursor.fetchone()
        if reuse:
            self._remember(window, team_spent, app_spent if app_spend else None)
        return Usage(requests=int(requests), team_spent=int(team_spent), app_spent=int(app_spent))

    def _known_usage(self, window: Window, *, app_spend: bool) -> Usage | None:
        """The spends as last read or written here, if fresh enough (both, with an application budget)."""
        oldest = time.monotonic() - settings.ROUTING_SPEND_FRESH_SECONDS
        team = self._known.get((TEAM, window.team_id, window.month))
        if team is None or team[1] < oldest:
            return None
        app_spent = 0
        if app_spend:
            app = self._known.get((APPLICATION, window.app_id, window.month))
            if app is None or app[1] < oldest:
                return None
            app_spent = app[0]
        return Usage(requests=0, team_spent=team[0], app_spent=app_spent)

    def forget(self) -> None:
        """Drop every remembered spend: the next request of each team reads them again."""
        self._known.clear()

    def _remember(self, window: Window, team_spent: int, app_spent: int | None) -> None:
        now = time.monotonic()
        self._known[(TEAM, window.team_id, window.month)] = (int(team_spent), now)
        if app_spent is not None:
            self._known[(APPLICATION, window.app_id, window.month)] = (int(app_spent), now)

    def store(self, event: AuditEvent, window: Window, charge: int) -> None:
        """Insert the audit event and add ``charge`` to both spends, together or not at all.

        A duplicate request id raises ``IntegrityError`` and counts nothing.
        """
        connection = connections[DEFAULT_DB_ALIAS]
        values = [field.get_db_prep_save(field.pre_save(event, add=True), connection) for field in _EVENT_FIELDS]
        month = connection.ops.adapt_datefield_value(window.month)
        spend: list[int | str | None] = [TEAM, window.team_id, month, charge, APPLICATION, window.app_id, month, charge]
        if charge <= 0:
            sql, params = self._insert(connection), values
        elif connection.vendor == "postgresql":
            sql, params = self._insert(connection, with_spend=True), [*spend, *values]
        else:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(self._insert(connection), values)
                event.pk = cursor.fetchone()[0]
                cursor.execute(_SPEND_UPSERT, spend)
            self._stored(event)
            return
        with insert_guard(), connection.cursor() as cursor:
            cursor.execute(sql, params)
            event.pk, *spent = cursor.fetchone()
        if spent:
            self._remember(window, *spent)
        self._stored(event)

    def refund(self, window: Window, charge: int) -> None:
        """Nothing to give back: a cost is only counted with its stored event."""

    def spent(self, scope: str, owner_id: int, month: datetime.date) -> int:
        row = MonthlySpend.objects.filter(scope=scope, owner_id=owner_id, month=month).first()
        return row.spent_micro_usd if row else 0

    def rebuild_month(self, month: datetime.date, ledger: Ledger, *, dry_run: bool = False) -> list[Rebuilt]:
        """The counters and the ledger are read in one snapshot, where a counter differs from the
        ledger only by drift (a cost is counted in its event's own statement), and that difference
        is added to each counter. The result is exact however many decisions are stored meanwhile.

        On PostgreSQL the snapshot is a REPEATABLE READ transaction (when the caller has none open;
        inside one, its isolation holds) and the differences are added in a second, READ COMMITTED
        one: each UPSERT adds to the row's newest value, so the decisions stored in between keep
        their charge (in REPEATABLE READ, updating a row routing changed since would fail). A
        session advisory lock keeps a second rebuild of the month out; two would each add the same
        correction. SQLite's transactions are IMMEDIATE here: the one transaction holds the write
        lock from the read to the write, so nothing comes between them, and routing's writes wait
        for the ledger's query.
        """
        connection = connections[DEFAULT_DB_ALIAS]
        postgresql = connection.vendor == "postgresql"
        with _one_rebuild_at_a_time(connection, month, enabled=postgresql and not dry_run):
            outermost = not connection.in_atomic_block
            with transaction.atomic():
                if outermost and postgresql:
                    with connection.cursor() as cursor:
                        cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                rows = MonthlySpend.objects.filter(month=month).values_list("scope", "owner_id", "spent_micro_usd")
                rebuilt = _compare({(scope, owner_id): spent for scope, owner_id, spent in rows}, ledger())
                if not dry_run and not postgresql:
                    self._add(connection, month, rebuilt)
            if not dry_run and postgresql:
                with transaction.atomic():
                    self._add(connection, month, rebuilt)
        return rebuilt

    @staticmethod
    def _add(connection: Any, month: datetime.date, rebuilt: list[Rebuilt]) -> None:
        """Add each counter's difference from the ledger (teams first, as routing locks them)."""
        stored_month = connection.ops.adapt_datefield_value(month)
        params = [
            [row.scope, row.owner_id, stored_month, row.ledger - row.counter]
            for row in rebuilt
            if row.ledger != row.counter
        ]
        with connection.cursor() as cursor:
            cursor.executemany(_spend_upsert(1), params)

    def _insert(self, connection: Any, *, with_spend: bool = False) -> str:
        """The audit INSERT, built once per database; on PostgreSQL optionally led by the spend UPSERT."""
        key = f"insert:{connection.vendor}:{with_spend}"
        sql = self._sql.get(key)
        if sql is None:
            insert = _event_insert(connection)
            if with_spend:
                # The new spends come back with the event's id, for ``check`` to reuse.
                spent = ", ".join(
                    f"(SELECT spent_micro_usd FROM spend WHERE scope = '{scope}')"  # noqa: S608 - our constants
                    for scope in (TEAM, APPLICATION)
                )
                insert = f"WITH spend AS ({_SPEND_UPSERT} RETURNING scope, spent_micro_usd) {insert}, {spent}"
            sql = self._sql[key] = insert
        return sql

    @staticmethod
    def _stored(event: AuditEvent) -> None:
        event._state.adding = False
        event._state.db = DEFAULT_DB_ALIAS


@contextmanager
def insert_guard() -> Iterator[None]:
    """A savepoint when a transaction is open (so a duplicate does not poison it), else nothing:
    in autocommit the insert stays one round trip."""
    if connections[DEFAULT_DB_ALIAS].in_atomic_block:
        with transaction.atomic():
            yield
    else:
        yield


REBUILD_LOCK = 0x5B5E  # any fixed number: the class of PostgreSQL advisory locks rebuild_month takes


@contextmanager
def _one_rebuild_at_a_time(connection: Any, month: datetime.date, *, enabled: bool) -> Iterator[None]:
    """Hold the month's PostgreSQL session advisory lock (it outlives transactions), or refuse."""
    if not enabled:
        yield
        return
    lock = [REBUILD_LOCK, month.year * 100 + month.month]
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", lock)
        if not cursor.fetchone()[0]:
            raise RebuildBusy(month)
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", lock)


# --- Redis ---------------------------------------------------------------------------------

# KEYS: the minute's request count, the team's spend, the application's spend.
# ARGV: quota (-1: none), team budget, application budget (-1: none), cost within budget, cost
# over budget, the two TTLs. Over quota, nothing is charged; the over-budget test is the one
# ``Usage.over_budget`` makes.
_CHECK_SCRIPT = """
local requests = 0
local limit = tonumber(ARGV[1])
if limit >= 0 then
  requests = redis.call('INCR', KEYS[1])
  if requests == 1 then redis.call('EXPIRE', KEYS[1], ARGV[6]) end
end
local team = tonumber(redis.call('GET', KEYS[2]) or '0')
local app = tonumber(redis.call('GET', KEYS[3]) or '0')
if limit < 0 or requests <= limit then
  local team_budget, app_budget = tonumber(ARGV[2]), tonumber(ARGV[3])
  local over = (team_budget >= 0 and team >= team_budget) or (app_budget >= 0 and app >= app_budget)
  local cost = tonumber(ARGV[4])
  if over then cost = tonumber(ARGV[5]) end
  if cost > 0 then
    redis.call('INCRBY', KEYS[2], cost)
    redis.call('EXPIRE', KEYS[2], ARGV[7])
    redis.call('INCRBY', KEYS[3], cost)
    redis.call('EXPIRE', KEYS[3], ARGV[7])
  end
end
return {requests, team, app}
"""


def spend_key(scope: str, owner_id: int, month: datetime.date) -> str:
    return f"{_spend_prefix(month)}{scope}:{owner_id}"


def _spend_prefix(month: datetime.date) -> str:
    return f"switchboard:spend:{month:%Y-%m}:"


def _spend_owner(key: str) -> Owner:
    *_, scope, owner_id = key.split(":")
    return scope, int(owner_id)


def quota_key(app_id: int, minute: int) -> str:
    return f"switchboard:rpm:{app_id}:{minute}"


class RedisCounters:
    """Counters in Redis: one script call per request does the quota, the reads and the charge."""

    charges_in_check = True

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(
            url, socket_timeout=REDIS_TIMEOUT_SECONDS, socket_connect_timeout=REDIS_TIMEOUT_SECONDS
        )
        self._check = self.client.register_script(_CHECK_SCRIPT)

    def check(self, window: Window, *, within: int, over: int) -> Usage:
        keys = [
            quota_key(window.app_id, window.minute),
            spend_key(TEAM, window.team_id, window.month),
            spend_key(APPLICATION, window.app_id, window.month),
        ]
        limit = window.requests_per_minute
        args = [
            NO_LIMIT if limit is None else limit,
            NO_LIMIT if window.team_budget_micro is None else window.team_budget_micro,
            NO_LIMIT if window.app_budget_micro is None else window.app_budget_micro,
            within,
            over,
            QUOTA_TTL_SECONDS,
            SPEND_TTL_SECONDS,
        ]
        try:
            requests, team_spent, app_spent = self._check(keys=keys, args=args)
        except redis.RedisError as error:
            raise CountersUnavailable(str(error)) from error
        return Usage(requests=int(requests), team_spent=int(team_spent), app_spent=int(app_spent))

    def store(self, event: AuditEvent, window: Window, charge: int) -> None:
        """The cost was charged by ``check``; only the event remains to be written."""
        with insert_guard():
            insert(event)

    def refund(self, window: Window, charge: int) -> None:
        if charge <= 0:
            return
        try:
            with self.client.pipeline(transaction=False) as pipe:
                pipe.decrby(spend_key(TEAM, window.team_id, window.month), charge)
                pipe.decrby(spend_key(APPLICATION, window.app_id, window.month), charge)
                pipe.execute()
        except redis.RedisError as error:
            raise CountersUnavailable(str(error)) from error

    def spent(self, scope: str, owner_id: int, month: datetime.date) -> int:
        try:
            value = self.client.get(spend_key(scope, owner_id, month))
        except redis.RedisError as error:
            raise CountersUnavailable(str(error)) from error
        return int(value) if value is not None else 0

    def rebuild_month(self, month: datetime.date, ledger: Ledger, *, dry_run: bool = False) -> list[Rebuilt]:
        """The month's counters are read with one MGET right before the ledger's query starts, and
        the differences are then added with INCRBY (and the TTL a charge gives) in one MULTI.

        The MGET names every team's and application's key, and whatever else a SCAN (which does
        not block Redis, unlike a script walking the keyspace) finds for the month: counters of
        owners since deleted, which nothing charges any more. So all are read at one instant.

        Redis charges a cost in ``check``, before its event is stored, so the counters and the
        ledger cannot be read at one instant: a decision charged before the MGET and stored after
        the ledger's snapshot (in flight across that round trip) ends up uncounted, and one
        charged after the MGET and stored before the snapshot is counted twice. Either costs at
        most the decisions in flight at that moment; everything charged later keeps its charge,
        however long the query takes. A lock in Redis keeps a second rebuild of the month out.
        """
        owners = [(TEAM, pk) for pk in Team.objects.values_list("pk", flat=True)]
        owners += [(APPLICATION, pk) for pk in Application.objects.values_list("pk", flat=True)]
        lock = self.client.lock(f"switchboard:rebuild-spend:{month:%Y-%m}", timeout=REBUILD_LOCK_SECONDS)
        try:
            locked = not dry_run and lock.acquire(blocking=False)
            if not dry_run and not locked:
                raise RebuildBusy(month)
            try:
                keys = {spend_key(scope, owner_id, month) for scope, owner_id in owners}
                keys.update(key.decode() for key in self.client.scan_iter(f"{_spend_prefix(month)}*", count=1000))
                names = sorted(keys)
                values = self.client.mget(names)
                counters = {
                    _spend_owner(key): int(value) for key, value in zip(names, values, strict=True) if value is not None
                }
                rebuilt = _compare(counters, ledger())
                if not dry_run:
                    self._add(month, rebuilt)
            finally:
                if locked:
                    lock.release()
        except redis.RedisError as error:
            raise CountersUnavailable(str(error)) from error
        return rebuilt

    def _add(self, month: datetime.date, rebuilt: list[Rebuilt]) -> None:
        """Add each counter's difference from the ledger, and give it the TTL a charge gives it."""
        with self.client.pipeline(transaction=True) as pipe:
            for row in rebuilt:
                if row.ledger != row.counter:
                    key = spend_key(row.scope, row.owner_id, month)
                    pipe.incrby(key, row.ledger - row.counter)
                    pipe.expire(key, SPEND_TTL_SECONDS)
            pipe.execute()


# --- Which one -----------------------------------------------------------------------------

_lock = threading.Lock()
_backends: dict[str | None, Counters] = {}


def forget_spend_readings() -> None:
    """Drop the spends this process remembers (tests roll counters back under them)."""
    for backend in _backends.values():
        if isinstance(backend, DatabaseCounters):
            backend.forget()


def get_counters() -> Counters:
    """This process's counters for the configured URL (read per call, so tests can switch)."""
    url = settings.ROUTING_COUNTERS_URL
    backend = _backends.get(url)
    if backend is None:
        with _lock:
            backend = _backends.get(url)
            if backend is None:
                backend = _backends[url] = RedisCounters(url) if url else DatabaseCounters()
    return backend
