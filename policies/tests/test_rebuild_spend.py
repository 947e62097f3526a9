"""``manage.py rebuild_spend``: the month's spend counters again from the ledger, with either backend."""

import datetime
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from io import StringIO
from typing import Any

import pytest
import redis
import time_machine
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import F
from django.utils import timezone

from audit.models import AuditArchive
from policies import spend
from policies.budgets import month_of
from policies.counters import REBUILD_LOCK, get_counters, spend_key
from policies.models import MonthlySpend
from policies.tests.conftest import TEST_REDIS_URL
from policies.tests.factories import make_team
from policies.tests.test_budgets import CHEAP_COST, FRONTIER_COST, NOON, Shop, build
from registry import services as registry_services

pytestmark = pytest.mark.django_db

NOVEMBER = datetime.date(2026, 11, 1)
NOTHING = "Neither the counters nor the ledger hold any spend in {}.\n"


@pytest.fixture
def at_noon() -> Iterator[Any]:
    with time_machine.travel(NOON, tick=False) as traveller:
        yield traveller


def rebuild_spend(*args: str) -> str:
    out = StringIO()
    call_command("rebuild_spend", *args, stdout=out)
    return out.getvalue()


def wipe(counters: str) -> None:
    """What a Redis restart without persistence does; for the database, its rows deleted."""
    if counters == "redis":
        redis.Redis.from_url(TEST_REDIS_URL).flushdb()
    else:
        MonthlySpend.objects.all().delete()


def spends(shop: Shop) -> tuple[Decimal, Decimal]:
    return shop.spent("team"), shop.spent("application")


def add_to_counter(counters: str, scope: str, owner_id: int, month: datetime.date, micro: int) -> None:
    """Drift: a counter holding what no stored decision supports."""
    if counters == "redis":
        redis.Redis.from_url(TEST_REDIS_URL).incrby(spend_key(scope, owner_id, month), micro)
        return
    row, _ = MonthlySpend.objects.get_or_create(scope=scope, owner_id=owner_id, month=month)
    MonthlySpend.objects.filter(pk=row.pk).update(spent_micro_usd=F("spent_micro_usd") + micro)


def test_a_rebuild_restores_the_wiped_spend_and_the_budget_refuses_again(
    counters: str, administrator: User, reviewer: User, at_noon: Any
) -> None:
    shop = build(administrator, reviewer, team_budget="0.10")  # three frontier decisions: 0.12
    assert shop.route(request_id="once").status_code == 200
    assert shop.route(request_id="once")["X-Idempotent-Replay"] == "true"  # refunded: charged once
    assert [shop.route().status_code for _ in range(3)] == [200, 200, 429]  # the refusal costs nothing
    before = spends(shop)
    assert before == (3 * FRONTIER_COST, 3 * FRONTIER_COST)
    wipe(counters)
    assert spends(shop) == (Decimal(0), Decimal(0))

    output = rebuild_spend()

    assert spends(shop) == before
    assert shop.route().status_code == 429
    assert "Set 2 of 2 counters to the ledger" in output


def test_downgraded_and_fractional_costs_are_rebuilt_to_the_micro_dollar(
    counters: str, administrator: User, reviewer: User, at_noon: Any
) -> None:
    shop = build(administrator, reviewer, over_budget="downgrade", team_budget="0.08")
    models = [shop.route().json()["model"]["model_version_id"] for _ in range(3)]
    assert models == [shop.frontier.pk, shop.frontier.pk, shop.cheap.pk]
    # 15 tokens in and 5 out of the cheap model cost $0.0000035, reported as 0.000003: the
    # counters must have added 3 micro-dollars, as the ledger will, not 4.
    odd = shop.route(input_tokens=15, max_output_tokens=5).json()
    assert (odd["model"]["model_version_id"], odd["estimated_cost_usd"]) == (shop.cheap.pk, 0.000003)
    before = spends(shop)
    assert before == (2 * FRONTIER_COST + CHEAP_COST + Decimal("0.000003"),) * 2
    assert "Set 0 of 2 counters to the ledger" in rebuild_spend()  # intact counters already agree
    wipe(counters)

    rebuild_spend("--month", "2026-11")

    assert spends(shop) == before
    assert shop.route().json()["model"]["model_version_id"] == shop.cheap.pk  # over budget again


def test_a_dry_run_shows_counters_beside_the_ledger_and_changes_nothing(
    counters: str, administrator: User, reviewer: User, at_noon: Any
) -> None:
    shop = build(administrator, reviewer)
    shop.route()
    wipe(counters)

    output = rebuild_spend("--dry-run")

    assert spends(shop) == (Decimal(0), Decimal(0))
    assert output.splitlines() == [
        f"Spend of 2026-11 in USD; the counters in {'Redis' if counters == 'redis' else 'the database'} as read, "
        "and the ledger:",
        "                                 counter    ledger  difference",
        "team         Care (care)        0.000000  0.040000   +0.040000",
        "application  Support (support)  0.000000  0.040000   +0.040000",
        "Dry run: 2 of 2 counters differ from the ledger; nothing changed.",
    ]


def test_counters_the_ledger_does_not_support_are_set_to_zero_and_other_months_left_alone(
    counters: str, administrator: User, reviewer: User, at_noon: Any
) -> None:
    shop = build(administrator, reviewer)
    shop.route()
    add_to_counter(counters, "team", shop.team.pk, NOVEMBER, 1_000_000)
    add_to_counter(counters, "application", 999, NOVEMBER, 250_000)  # no such application
    add_to_counter(counters, "team", shop.team.pk, datetime.date(2026, 10, 1), 70_000)

    output = rebuild_spend()

    assert spends(shop) == (FRONTIER_COST, FRONTIER_COST)
    assert get_counters().spent("application", 999, NOVEMBER) == 0
    assert get_counters().spent("team", shop.team.pk, datetime.date(2026, 10, 1)) == 70_000
    rows = [line.split() for line in output.splitlines()]
    assert ["application", "#999", "(deleted)", "0.250000", "0.000000", "-0.250000"] in rows
    assert ["team", "Care", "(care)", "1.040000", "0.040000", "-1.000000"] in rows
    assert "Set 2 of 3 counters to the ledger" in output


def test_a_decision_stored_while_the_rebuild_runs_keeps_its_charge(
    counters: str, administrator: User, reviewer: User, at_noon: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    shop = build(administrator, reviewer)
    shop.route()
    wipe(counters)
    read_ledger = spend.ledger

    def ledger_then_a_decision(month: datetime.date) -> dict[tuple[str, int], int]:
        found = read_ledger(month)
        assert shop.route().status_code == 200  # after the snapshot, before the counters are written
        return found

    monkeypatch.setattr(spend, "ledger", ledger_then_a_decision)
    rebuild_spend()

    # Setting the counters to the snapshot's 0.04 would lose the second decision's charge.
    assert spends(shop) == (2 * FRONTIER_COST, 2 * FRONTIER_COST)


def test_team_spend_stays_with_the_team_a_decision_was_routed_for(
    counters: str, administrator: User, reviewer: User, at_noon: Any
) -> None:
    shop = build(administrator, reviewer)
    ops = make_team(name="Ops", slug="ops")
    shop.route()
    registry_services.update_object(shop.app, data={"team": ops})  # the application moves mid-month
    shop.route()
    before = [shop.spent("team"), get_counters().spent("team", ops.pk, NOVEMBER), shop.spent("application")]
    assert before == [FRONTIER_COST, 40_000, 2 * FRONTIER_COST]
    wipe(counters)

    rebuild_spend()

    after = [shop.spent("team"), get_counters().spent("team", ops.pk, NOVEMBER), shop.spent("application")]
    assert after == before


def test_a_renamed_team_keeps_the_spend_recorded_under_its_old_name(
    administrator: User, reviewer: User, at_noon: Any
) -> None:
    shop = build(administrator, reviewer)
    shop.route()
    registry_services.update_object(shop.team, data={"name": "Customer care"})
    wipe("database")

    rebuild_spend()

    assert spends(shop) == (FRONTIER_COST, FRONTIER_COST)


@pytest.mark.parametrize("month", ["2026-13", "2026-1", "November", "2026-11-01", ""])
def test_a_month_not_written_as_yyyy_mm_is_a_command_error(month: str) -> None:
    with pytest.raises(CommandError, match="not a month; give it as YYYY-MM"):
        rebuild_spend("--month", month)


def test_a_month_not_begun_is_refused(at_noon: Any) -> None:
    with pytest.raises(CommandError, match="2026-12 has not begun; this month is 2026-11"):
        rebuild_spend("--month", "2026-12")


def test_an_archived_month_is_refused_for_its_decisions_have_left_the_database(
    counters: str, administrator: User, reviewer: User, at_noon: Any
) -> None:
    shop = build(administrator, reviewer)
    shop.route()
    AuditArchive.objects.create(
        month=datetime.date(2026, 10, 1),
        first_sequence=1,
        last_sequence=1,
        rows=1,
        last_hash="0" * 64,
        file_name="audit-archive-2026-10.jsonl",
        sha256="0" * 64,
        manifest={},
        created_by_name="alice",
    )
    add_to_counter(counters, "team", shop.team.pk, datetime.date(2026, 10, 1), 70_000)
    with pytest.raises(CommandError, match="archived up to 2026-10"):
        rebuild_spend("--month", "2026-10")
    assert get_counters().spent("team", shop.team.pk, datetime.date(2026, 10, 1)) == 70_000
    assert "Set 0 of 2" in rebuild_spend()  # the month after the archive still rebuilds


def test_unreachable_redis_counters_are_a_command_error(settings: Any, at_noon: Any) -> None:
    settings.ROUTING_COUNTERS_URL = "redis://127.0.0.1:9/0"  # the discard port: nothing listens
    with pytest.raises(CommandError, match="The spend counters cannot be reached"):
        rebuild_spend()


def test_a_second_rebuild_of_the_month_is_refused_while_one_runs_with_redis(
    redis_counters: redis.Redis, at_noon: Any
) -> None:
    running = redis_counters.lock("switchboard:rebuild-spend:2026-11", timeout=60)
    assert running.acquire(blocking=False)
    with pytest.raises(CommandError, match="Another rebuild of 2026-11's spend counters is running"):
        rebuild_spend()
    assert rebuild_spend("--dry-run") == NOTHING.format("2026-11")  # reading needs no lock
    assert rebuild_spend("--month", "2026-10") == NOTHING.format("2026-10")  # nor another month
    running.release()
    assert rebuild_spend() == NOTHING.format("2026-11")


@pytest.mark.postgresql
def test_a_second_rebuild_of_the_month_is_refused_while_one_runs_in_postgresql(at_noon: Any) -> None:
    other = connections.create_connection(DEFAULT_DB_ALIAS)  # another session, as another process has
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s, %s)", [REBUILD_LOCK, 202611])
        with pytest.raises(CommandError, match="Another rebuild of 2026-11's spend counters is running"):
            rebuild_spend()
        assert rebuild_spend("--month", "2026-10") == NOTHING.format("2026-10")
    finally:
        other.close()
    assert rebuild_spend() == NOTHING.format("2026-11")


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_rebuilds_while_two_processes_route_neither_lose_nor_double_a_charge(
    administrator: User, reviewer: User
) -> None:
    """The database's rebuild is exact under load: its REPEATABLE READ snapshot and added corrections."""
    from policies.tests.test_budgets_two_processes import Servers

    shop = build(administrator, reviewer, team_budget="100000")
    month = month_of(timezone.now())
    two = Servers("")
    try:
        with ThreadPoolExecutor(max_workers=12) as pool:
            burst = pool.map(lambda n: two.route(n % 2, shop.key)[0], range(300))
            for _ in range(10):
                add_to_counter("database", "team", shop.team.pk, month, 1_000_000)  # drift to correct
                rebuild_spend()
            statuses = list(burst)
    finally:
        two.stop()
    assert statuses == [200] * 300
    ledger = spend.ledger(month)
    assert ledger[("team", shop.team.pk)] == ledger[("application", shop.app.pk)] == 300 * 40_000
    assert get_counters().spent("team", shop.team.pk, month) == 300 * 40_000
    assert get_counters().spent("application", shop.app.pk, month) == 300 * 40_000
