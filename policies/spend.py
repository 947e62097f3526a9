"""Rebuilding a month's spend counters from the audit ledger (``manage.py rebuild_spend``).

A Redis that loses its data (restarted without persistence, flushed, failed over) reads every
month-to-date spend as zero, and the budgets stop biting. The ledger still holds every decision
the counters were charged for: the ``routing.decision`` events, each with the estimated cost it
reported (``data.response.estimated_cost_usd``, the very figure ``policies.decisions`` charges,
in micro-dollars). Refusals are never charged, a downgraded decision is charged (and stored) at
its economy cost, and a replayed request id is refunded and stores nothing, so the sum over the
month's decisions is what the counters should hold. Whatever else they hold is drift: a restart,
or a Redis charge whose event was never stored (the database failed after ``check``).

Routing goes on while a rebuild runs. Each backend therefore measures the drift, counter minus
ledger, at (as near as it can) one instant, and then *adds* the correction to the counters
instead of setting them, so whatever is charged after that instant is kept whatever the query
takes. In the database the two are read in one snapshot and the result is exact; Redis charges a
cost before its event is stored, so there the decisions in flight at that instant may be counted
once too few or too many (see ``RedisCounters.rebuild_month``); a run at a quieter moment mends
them, and a run on counters that agree with the ledger changes nothing.

Team spend is attributed as routing attributed it: to the team the decision names (its
``team_name``, as the routing snapshot had it), or, if no team has that name any more (renamed),
to the application's current team. A team renamed after a decision *and* another team given its
old name would take that decision's spend; a decision of a deleted application whose team was
renamed counts for the application only.
"""

import datetime
import functools
from collections import defaultdict
from typing import Any

from django.db.models import BigIntegerField, CharField, DecimalField, F, Func, Sum
from django.db.models.fields.json import KT
from django.db.models.functions import Cast, Round
from django.utils import timezone

from audit.models import AuditArchive, AuditEvent
from policies.budgets import MICRO, month_of, next_month
from policies.counters import APPLICATION, TEAM, Owner, Rebuilt, get_counters
from policies.models import Application, Team

DECISION = "routing.decision"

# One decision's charge, as ``policies.decisions._micro`` computes it: the stored estimate (six
# places) in whole micro-dollars. Rounded per event to an integer, so the sum is exact on SQLite too.
_CHARGE = Cast(
    Round(Cast(KT("data__response__estimated_cost_usd"), DecimalField(max_digits=20, decimal_places=6)) * MICRO),
    BigIntegerField(),
)


class _Unindexed(Func):
    """A column SQLite's planner will not look up by index: with no statistics it prefers the
    ``kind`` index (every decision ever) to the month's range on ``occurred_at``; unary ``+`` is
    SQLite's way to say otherwise (as in ``audit.rollups``). PostgreSQL has statistics."""

    template = "%(expressions)s"
    output_field = CharField()

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return self.as_sql(compiler, connection, template="+%(expressions)s", **extra)


class RebuildRefused(Exception):
    """The month's ledger cannot say what its counters should be."""


def month_bounds(month: datetime.date) -> tuple[datetime.datetime, datetime.datetime]:
    """Where a budget month starts and ends: midnights in ``TIME_ZONE``, as ``budgets.month_of`` counts."""
    midnight = datetime.time()
    start, end = (datetime.datetime.combine(day, midnight) for day in (month, next_month(month)))
    return timezone.make_aware(start), timezone.make_aware(end)


def ledger(month: datetime.date) -> dict[Owner, int]:
    """Each team's and application's spend in ``month`` by the ledger, in micro-dollars.

    One GROUP BY over the month's decisions (per application and recorded team name), then a few
    rows to attribute to teams.
    """
    start, end = month_bounds(month)
    rows = list(
        AuditEvent.objects.alias(by_time=_Unindexed(F("kind")))
        .filter(by_time=DECISION, occurred_at__gte=start, occurred_at__lt=end)
        .values_list("application_id", "team_name")
        .annotate(micro=Sum(_CHARGE))
        .order_by()
    )
    teams = dict(Team.objects.filter(name__in={name for _, name, _ in rows}).values_list("name", "pk"))
    current = dict(Application.objects.filter(pk__in={app for app, _, _ in rows}).values_list("pk", "team_id"))
    spend: dict[Owner, int] = defaultdict(int)
    for app_id, team_name, micro in rows:
        spend[(APPLICATION, app_id)] += micro
        team_id = teams.get(team_name, current.get(app_id))
        if team_id is not None:
            spend[(TEAM, team_id)] += micro
    return dict(spend)


def rebuild(month: datetime.date, *, dry_run: bool = False) -> list[Rebuilt]:
    """Set the configured counters of ``month`` to the ledger's spends, zero where it has none.

    Returns every counter either side knows, as it was read and as the ledger has it. Raises
    ``RebuildRefused`` for a month not begun or archived (its events are no longer in the
    database), ``counters.RebuildBusy`` while another rebuild runs, and
    ``counters.CountersUnavailable`` when Redis cannot be reached.
    """
    month, this_month = month.replace(day=1), month_of(timezone.now())
    if month > this_month:
        raise RebuildRefused(f"{month:%Y-%m} has not begun; this month is {this_month:%Y-%m}.")
    archived = AuditArchive.objects.filter(month__gte=month).order_by("-month").values_list("month", flat=True).first()
    if archived is not None:
        raise RebuildRefused(
            f"The audit log is archived up to {archived:%Y-%m}, so the database no longer holds all of "
            f"{month:%Y-%m}'s decisions; its counters cannot be rebuilt."
        )
    return get_counters().rebuild_month(month, functools.partial(ledger, month), dry_run=dry_run)
