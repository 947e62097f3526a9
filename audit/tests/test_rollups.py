"""Hourly and daily usage rollups against figures worked out by hand from the events written here."""

import datetime
import hashlib
import io
import uuid
from decimal import Decimal
from typing import Any

import pytest
import time_machine
from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.test import Client

from audit.models import AuditArchive, AuditEvent, DailyUsageRollup, RollupWatermark, UsageRollup
from audit.rollups import (
    DAILY_KEY,
    GAP_SECONDS,
    LATENCY_BUCKETS_MS,
    exact_percentile,
    merged_percentiles,
    rebuild,
    rebuild_days,
    refresh,
)
from audit.services import insert, record_event
from audit.tasks import refresh_rollups
from policies import services
from policies.tests.factories import make_active_policy, make_app, make_team, pinned_rule, rules_document
from registry.tests.factories import approve, make_model, make_provider, make_version
from registry.tests.test_tasks import wait_for

pytestmark = pytest.mark.django_db

UTC = datetime.UTC
TEN = datetime.datetime(2026, 11, 1, 10, tzinfo=UTC)
HOUR = datetime.timedelta(hours=1)
LARGE = (1, "acme/large/1")
SMALL = (2, "acme/small/1")

# The columns a rollup row holds, to compare rows without their ids.
FIGURES = [field.attname for field in UsageRollup._meta.concrete_fields if not field.primary_key]


def decision(
    at: datetime.datetime,
    *,
    version: tuple[int, str] = LARGE,
    estimated: float = 0.0,
    app: str = "Support",
    team: str = "Care",
    task: str = "code",
) -> AuditEvent:
    """A decision as ``policies.decisions`` stores it (only what rollups read is filled in)."""
    decision_id = uuid.uuid4()
    return insert(
        AuditEvent(
            occurred_at=at,
            kind="routing.decision",
            actor_name=f"app:{app.lower()}",
            decision_id=decision_id,
            application_name=app,
            team_name=team,
            policy_slug="main",
            policy_version=1,
            rule="default",
            model_version_id=version[0],
            model_version_name=version[1],
            classification="internal",
            task_type=task,
            data={
                "request": {"task_type": task, "data_classification": "internal"},
                "response": {"decision_id": str(decision_id), "estimated_cost_usd": estimated, "reasons": []},
            },
        )
    )


def refusal(at: datetime.datetime, *, status: int = 422) -> AuditEvent:
    return insert(
        AuditEvent(
            occurred_at=at,
            kind="routing.refused",
            actor_name="app:support",
            decision_id=uuid.uuid4(),
            application_name="Support",
            team_name="Care",
            policy_slug="main",
            policy_version=1,
            rule="default",
            classification="internal",
            task_type="code",
            reason="No model version survives the hard filters.",
            data={"request": {}, "response": {"detail": "refused"}, "status": status},
        )
    )


def outcome(
    of: AuditEvent,
    at: datetime.datetime,
    *,
    status: str = "ok",
    version: tuple[int, str] | None = None,
    tokens: tuple[int | None, int | None] = (None, None),
    latency: int | None = None,
    reported: float | None = None,
) -> AuditEvent:
    """An outcome as the routing API stores it: the decision's attribution, the answering version."""
    version_id, version_name = version or (of.model_version_id, of.model_version_name)
    inherited = ("decision_id", "application_name", "team_name", "policy_slug", "policy_version", "rule")
    return insert(
        AuditEvent(
            occurred_at=at,
            kind="routing.outcome",
            actor_name=of.actor_name,
            **{name: getattr(of, name) for name in inherited},
            classification=of.classification,
            task_type=of.task_type,
            model_version_id=version_id,
            model_version_name=version_name,
            data={
                "status": status,
                "input_tokens": tokens[0],
                "output_tokens": tokens[1],
                "latency_ms": latency,
                "output_sha256": "0" * 64,
                "reported_cost_usd": reported,
                "fallback_used": version_id != of.model_version_id,
            },
        )
    )


def rows(**filters: Any) -> list[dict[str, Any]]:
    return list(UsageRollup.objects.filter(**filters).order_by("hour", "application_name", "id").values(*FIGURES))


def one(**filters: Any) -> UsageRollup:
    return UsageRollup.objects.get(**filters)


@pytest.fixture
def busy_hour() -> None:
    """Ten o'clock: four decisions for Support on Large (three answered), one for Triage, two refusals,
    plus traffic in the next hour and a governance event, which must not count."""
    first = decision(TEN + datetime.timedelta(minutes=1), estimated=0.001234)
    second = decision(TEN + datetime.timedelta(minutes=2), estimated=0.00001)  # stored as 1e-05
    third = decision(TEN + datetime.timedelta(minutes=3), estimated=0.5)
    decision(TEN + datetime.timedelta(minutes=4), estimated=0.1)  # never answered
    triage = decision(TEN + datetime.timedelta(minutes=5), estimated=0.02, app="Triage", team="Ops", version=SMALL)
    refusal(TEN + datetime.timedelta(minutes=6), status=422)
    refusal(TEN + datetime.timedelta(minutes=59, seconds=59), status=403)
    outcome(first, TEN + datetime.timedelta(minutes=1, seconds=2), tokens=(100, 200), latency=300, reported=0.0015)
    outcome(second, TEN + datetime.timedelta(minutes=30), status="error", tokens=(50, 0), latency=1200, reported=75e-6)
    outcome(third, TEN + datetime.timedelta(minutes=40), status="timeout", latency=30_000)
    outcome(triage, TEN + datetime.timedelta(minutes=6), tokens=(10, 10), latency=80, reported=0.00002)
    decision(TEN + HOUR, estimated=9.0)  # eleven o'clock
    record_event("registry.version.created", reason="not traffic")


def test_decisions_outcomes_and_refusals_add_up_to_hand_computed_figures(busy_hour: None) -> None:
    assert refresh() == 2
    support = one(hour=TEN, application_name="Support", model_version_id=LARGE[0])
    assert (support.team_name, support.policy_slug, support.rule, support.model_version_name) == (
        "Care",
        "main",
        "default",
        "acme/large/1",
    )
    assert (support.task_type, support.classification) == ("code", "internal")
    assert (support.decisions, support.refusals) == (4, 0)
    assert (support.outcomes_ok, support.outcomes_error, support.outcomes_timeout) == (1, 1, 1)
    assert (support.input_tokens, support.output_tokens) == (150, 200)
    # 0.001234 + 0.00001 + 0.5 + 0.1, and 0.0015 + 0.000075 (the timeout reported no cost): exact.
    assert support.estimated_cost_usd == Decimal("0.601244")
    assert support.reported_cost_usd == Decimal("0.001575")
    # Latencies 300, 1200, 30000: the median is 1200; p95 sits 0.9 of the way from 1200 to 30000.
    assert support.latency_p50_ms == 1200
    assert support.latency_p95_ms == pytest.approx(1200 + 0.9 * 28_800)
    assert support.latency_p99_ms == pytest.approx(1200 + 0.98 * 28_800)
    assert sum(support.latency_histogram) == 3
    assert support.latency_histogram[LATENCY_BUCKETS_MS.index(300)] == 1
    assert support.latency_histogram[LATENCY_BUCKETS_MS.index(1_500)] == 1  # 1200 is in (1000, 1500]
    assert support.latency_histogram[LATENCY_BUCKETS_MS.index(30_000)] == 1

    triage = one(hour=TEN, application_name="Triage")
    assert (triage.team_name, triage.model_version_id, triage.decisions, triage.outcomes_ok) == ("Ops", 2, 1, 1)
    assert (triage.input_tokens, triage.output_tokens) == (10, 10)
    assert (triage.estimated_cost_usd, triage.reported_cost_usd) == (Decimal("0.020000"), Decimal("0.000020"))
    assert triage.latency_p50_ms == triage.latency_p95_ms == triage.latency_p99_ms == 80

    refused = one(hour=TEN, model_version_id__isnull=True)
    assert (refused.application_name, refused.model_version_name, refused.refusals, refused.decisions) == (
        "Support",
        "",
        2,
        0,
    )
    assert refused.estimated_cost_usd == 0 and refused.latency_p50_ms is None and refused.latency_histogram == []

    assert UsageRollup.objects.filter(hour=TEN).count() == 3
    eleven = one(hour=TEN + HOUR)
    assert (eleven.decisions, eleven.estimated_cost_usd, eleven.outcomes_ok) == (1, Decimal("9.000000"), 0)


def test_percentiles_of_a_known_set_of_latencies_are_exact_and_the_histogram_estimates_them() -> None:
    # 101 latencies 0, 10, ..., 1000 ms: p50 = 500, p95 = 950, p99 = 990 with no interpolation needed.
    for number, latency in enumerate(range(0, 1001, 10)):
        asked = decision(TEN + datetime.timedelta(seconds=number))
        outcome(asked, TEN + datetime.timedelta(hours=2), latency=latency)
    rebuild(TEN, TEN + HOUR)
    row = one(hour=TEN)
    assert (row.latency_p50_ms, row.latency_p95_ms, row.latency_p99_ms) == (500, 950, 990)
    # Counts per bucket: (0, 25] holds 0, 10, 20; (25, 50] 30-50; (50, 100] 60-100; ... (750, 1000] 760-1000.
    counts = dict(zip([*LATENCY_BUCKETS_MS, "over"], row.latency_histogram, strict=True))
    assert {bound: count for bound, count in counts.items() if count} == {
        25: 3,
        50: 3,
        100: 5,
        150: 5,
        200: 5,
        300: 10,
        400: 10,
        500: 10,
        750: 25,
        1_000: 25,
    }
    # The median's rank, 50.5, falls in (400, 500] after 41 latencies: 400 + 100 * 9.5 / 10.
    assert merged_percentiles([row.latency_histogram], [50]) == {50: 495}


def test_merged_percentiles_add_several_rows_up_and_ignore_rows_without_outcomes() -> None:
    fast = [0] * (len(LATENCY_BUCKETS_MS) + 1)
    slow = list(fast)
    fast[0], slow[LATENCY_BUCKETS_MS.index(1_000)] = 90, 10  # 90 at most 25 ms, 10 in (750, 1000]
    estimates = merged_percentiles([fast, [], slow], [50, 95, 99])
    assert estimates == {50: pytest.approx(25 * 50 / 90), 95: 750 + 250 * 5 / 10, 99: 750 + 250 * 9 / 10}
    assert merged_percentiles([[], []], [50]) == {50: None}
    assert exact_percentile([], 50) is None


def test_a_late_outcome_updates_the_hour_of_its_decision() -> None:
    asked = decision(TEN + datetime.timedelta(minutes=20), estimated=0.25)
    assert refresh() == 1
    before = one(hour=TEN)
    assert (before.decisions, before.outcomes_ok, before.input_tokens, before.latency_p50_ms) == (1, 0, 0, None)

    outcome(asked, TEN + datetime.timedelta(hours=2, minutes=5), tokens=(400, 100), latency=950, reported=0.0042)
    assert refresh() == 1
    after = one(hour=TEN)
    assert (after.decisions, after.outcomes_ok, after.input_tokens, after.output_tokens) == (1, 1, 400, 100)
    assert (after.reported_cost_usd, after.latency_p50_ms) == (Decimal("0.004200"), 950)
    assert not UsageRollup.objects.exclude(hour=TEN).exists()  # not in the hour the outcome arrived


def test_rebuilding_twice_writes_the_same_rows(busy_hour: None) -> None:
    first = rebuild(TEN, TEN + 2 * HOUR)
    figures = rows()
    assert rebuild(TEN, TEN + 2 * HOUR) == first == 4
    assert rows() == figures


def test_rebuilding_a_range_replaces_its_hours_and_leaves_the_others_alone(busy_hour: None) -> None:
    decision(TEN - HOUR, estimated=1.0)
    refresh()
    nine, eleven = set(UsageRollup.objects.filter(hour__in=[TEN - HOUR, TEN + HOUR]).values_list("id", flat=True))
    ten = rows(hour=TEN)
    stale = UsageRollup.objects.create(hour=TEN, application_name="Gone", decisions=99)
    later = UsageRollup.objects.create(hour=TEN + 5 * HOUR, application_name="Elsewhere", decisions=7)

    # Any moment inside ten o'clock selects that whole hour, and only it.
    assert rebuild(TEN + datetime.timedelta(minutes=15), TEN + datetime.timedelta(minutes=45)) == 3
    assert rows(hour=TEN) == ten
    assert not UsageRollup.objects.filter(pk=stale.pk).exists()
    assert set(UsageRollup.objects.exclude(hour=TEN).values_list("id", flat=True)) == {nine, eleven, later.pk}

    # An hour whose events are gone (never here) has no rows once rebuilt.
    assert rebuild(TEN + 5 * HOUR, TEN + 6 * HOUR) == 0
    assert not UsageRollup.objects.filter(pk=later.pk).exists()


def test_hours_of_archived_months_are_left_as_they_are(busy_hour: None) -> None:
    refresh()
    october = datetime.datetime(2026, 10, 31, 23, tzinfo=UTC)
    kept = UsageRollup.objects.create(hour=october, application_name="Archived", decisions=5)
    AuditArchive.objects.create(
        month=datetime.date(2026, 10, 1),
        first_sequence=1,
        last_sequence=1,
        last_hash="0" * 64,
        rows=1,
        file_name="audit-archive-2026-10.jsonl",
        sha256="0" * 64,
        manifest={},
        created_by_name="system",
    )
    ten = rows(hour=TEN)
    assert rebuild(october, TEN + HOUR) == 3  # November's ten o'clock only
    assert UsageRollup.objects.filter(pk=kept.pk).exists()
    assert rows(hour=TEN) == ten


def test_refresh_does_nothing_the_second_time(busy_hour: None) -> None:
    assert refresh() == 2
    figures = list(UsageRollup.objects.order_by("id").values("id", *FIGURES))
    mark = RollupWatermark.objects.get()
    assert mark.last_event_id == AuditEvent.objects.aggregate(top=Max("id"))["top"]
    assert mark.pending_gaps == []
    assert refresh() == 0
    assert list(UsageRollup.objects.order_by("id").values("id", *FIGURES)) == figures
    record_event("registry.version.created", reason="new, but not traffic")
    assert refresh() == 0
    assert RollupWatermark.objects.get().last_event_id > mark.last_event_id


def test_an_event_committed_after_a_higher_id_was_read_is_still_counted() -> None:
    first = decision(TEN)
    # Id first + 2 is visible while first + 1 is still being written (ids come before commits).
    AuditEvent.objects.create(
        id=first.pk + 2, kind="routing.decision", actor_name="app:support", occurred_at=TEN + HOUR, data={}
    )
    assert refresh() == 2
    assert RollupWatermark.objects.get().pending_gaps[0][:2] == [first.pk + 1, first.pk + 1]

    AuditEvent.objects.create(
        id=first.pk + 1, kind="routing.decision", actor_name="app:support", occurred_at=TEN + 3 * HOUR, data={}
    )
    assert refresh() == 1
    assert one(hour=TEN + 3 * HOUR).decisions == 1
    assert RollupWatermark.objects.get().pending_gaps == []


def test_an_id_missing_for_longer_than_any_transaction_is_forgotten() -> None:
    first = decision(TEN)
    AuditEvent.objects.create(id=first.pk + 2, kind="test.happened", actor_name="system", data={})
    refresh()
    assert len(RollupWatermark.objects.get().pending_gaps) == 1
    with time_machine.travel(datetime.datetime.now(UTC) + datetime.timedelta(seconds=GAP_SECONDS + 1)):
        assert refresh() == 0
    assert RollupWatermark.objects.get().pending_gaps == []


def test_refused_rows_have_no_model_version_and_are_still_one_per_key() -> None:
    UsageRollup.objects.create(hour=TEN, application_name="Support", refusals=1)
    UsageRollup.objects.create(hour=TEN, application_name="Support", model_version_id=1, decisions=1)
    with pytest.raises(IntegrityError), transaction.atomic():
        UsageRollup.objects.create(hour=TEN, application_name="Support", refusals=2)


@pytest.fixture
def routing(vocabulary: Any, administrator: User, reviewer: User) -> dict[str, Any]:
    """The real routing API: Large pinned, Small its fallback (prices per million tokens: 2/8 and 1/4)."""
    acme = make_provider(name="Acme", slug="acme")
    large = make_version(
        make_model(acme, name="Large", slug="large"),
        lifecycle="approved",
        label="1",
        input_cost_per_mtok=Decimal("2"),
        output_cost_per_mtok=Decimal("8"),
    )
    small = make_version(
        make_model(acme, name="Small", slug="small"),
        lifecycle="approved",
        label="1",
        input_cost_per_mtok=Decimal("1"),
        output_cost_per_mtok=Decimal("4"),
    )
    for version in (large, small):
        approve(version, "internal")
    ref = services.version_ref
    policy = make_active_policy(
        rules_document(pinned_rule(ref(large), fallbacks=[ref(small)])),
        author=administrator,
        reviewer=reviewer,
        slug="main",
    )
    app = make_app(make_team(name="Care"), slug="support", name="Support", policy=policy)
    _, key = services.generate_key(app, name="prod")
    return {"client": Client(HTTP_AUTHORIZATION=f"Bearer {key}"), "large": large, "small": small}


def test_a_fallback_outcome_counts_under_the_version_that_answered(routing: dict[str, Any]) -> None:
    client, large, small = routing["client"], routing["large"], routing["small"]
    body = {"task_type": "code", "data_classification": "internal", "input_tokens": 1000, "max_output_tokens": 500}
    with time_machine.travel(TEN + datetime.timedelta(minutes=10), tick=False):
        answered = client.post("/api/v1/route", body, content_type="application/json").json()
        unanswered = client.post("/api/v1/route", body, content_type="application/json").json()
    assert answered["model"]["model_version_id"] == unanswered["model"]["model_version_id"] == large.pk
    with time_machine.travel(TEN + datetime.timedelta(hours=1, minutes=2), tick=False):
        reported = {
            "model_version_id": small.pk,
            "status": "ok",
            "input_tokens": 1000,
            "output_tokens": 250,
            "latency_ms": 420,
            "output_sha256": hashlib.sha256(b"answer").hexdigest(),
        }
        url = f"/api/v1/decisions/{answered['decision_id']}/outcome"
        assert client.post(url, reported, content_type="application/json").status_code == 201
    assert refresh() == 1

    chose = one(hour=TEN, model_version_id=large.pk)
    # Estimated for Large: 1000 * 2 + 500 * 8 = 6000 micro-dollars a decision, two decisions.
    assert (chose.model_version_name, chose.decisions, chose.estimated_cost_usd) == (
        "acme/large/1",
        2,
        Decimal("0.012000"),
    )
    assert (chose.outcomes_ok, chose.input_tokens, chose.reported_cost_usd, chose.latency_p50_ms) == (
        0,
        0,
        Decimal(0),
        None,
    )
    fell_back = one(hour=TEN, model_version_id=small.pk)
    # Reported for Small: 1000 * 1 + 250 * 4 = 2000 micro-dollars.
    assert (fell_back.model_version_name, fell_back.decisions, fell_back.outcomes_ok) == ("acme/small/1", 0, 1)
    assert (fell_back.input_tokens, fell_back.output_tokens, fell_back.reported_cost_usd) == (
        1000,
        250,
        Decimal("0.002000"),
    )
    assert (fell_back.team_name, fell_back.rule, fell_back.latency_p99_ms) == ("Care", "default", 420)
    assert UsageRollup.objects.count() == 2


# --- Daily rollups ---------------------------------------------------------------------------

DAILY_FIGURES = [field.attname for field in DailyUsageRollup._meta.concrete_fields if not field.primary_key]
MIDNIGHT = TEN.replace(hour=0)


def days(**filters: Any) -> list[dict[str, Any]]:
    return list(
        DailyUsageRollup.objects.filter(**filters)
        .order_by("day", "application_name", "model_version_name", "id")
        .values(*DAILY_FIGURES)
    )


def test_a_day_adds_up_its_hours_across_task_types(busy_hour: None) -> None:
    # Two more decisions of Support on Large that day: another task type at ten, and at 23:30.
    with_task = decision(TEN + datetime.timedelta(minutes=7), estimated=0.3, task="reasoning")
    outcome(with_task, TEN + datetime.timedelta(minutes=8), tokens=(7, 3), latency=120, reported=0.001)
    decision(MIDNIGHT + datetime.timedelta(hours=23, minutes=30), estimated=0.000006)
    decision(MIDNIGHT + datetime.timedelta(days=1), estimated=5.0)  # the next day
    refresh()
    assert UsageRollup.objects.filter(hour=TEN, application_name="Support", model_version_id=LARGE[0]).count() == 2
    support = DailyUsageRollup.objects.get(day=MIDNIGHT, application_name="Support", model_version_id=LARGE[0])
    # Ten o'clock (4 + 1 decisions), eleven o'clock (1) and 23:30 (1).
    assert (support.decisions, support.refusals) == (7, 0)
    assert (support.outcomes_ok, support.outcomes_error, support.outcomes_timeout) == (2, 1, 1)
    assert (support.input_tokens, support.output_tokens) == (157, 203)
    assert support.estimated_cost_usd == Decimal("0.601244") + Decimal("0.3") + Decimal("9") + Decimal("0.000006")
    assert support.reported_cost_usd == Decimal("0.002575")
    # Latencies 300, 1200, 30000 and 120: four outcomes in four buckets.
    assert sum(support.latency_histogram) == 4
    assert support.latency_histogram[LATENCY_BUCKETS_MS.index(150)] == 1
    refused = DailyUsageRollup.objects.get(day=MIDNIGHT, model_version_id__isnull=True)
    assert (refused.refusals, refused.decisions, refused.latency_histogram) == (2, 0, [])
    assert DailyUsageRollup.objects.filter(day=MIDNIGHT).count() == 3  # Support/Large, Triage, refusals
    assert DailyUsageRollup.objects.get(day=MIDNIGHT + datetime.timedelta(days=1)).decisions == 1


def test_every_daily_row_equals_the_sum_of_its_hourly_rows(busy_hour: None) -> None:
    decision(TEN + datetime.timedelta(hours=5), estimated=0.7, task="extraction", version=SMALL)
    refresh()
    by_key: dict[tuple[Any, ...], dict[str, Any]] = {}
    for hourly in UsageRollup.objects.all():
        key = tuple(getattr(hourly, name) for name in DAILY_KEY)
        totals = by_key.setdefault(key, {"decisions": 0, "estimated": Decimal(0), "timed": 0})
        totals["decisions"] += hourly.decisions + hourly.refusals
        totals["estimated"] += hourly.estimated_cost_usd
        totals["timed"] += sum(hourly.latency_histogram)
    daily = {
        tuple(getattr(row, name) for name in DAILY_KEY): {
            "decisions": row.decisions + row.refusals,
            "estimated": row.estimated_cost_usd,
            "timed": sum(row.latency_histogram),
        }
        for row in DailyUsageRollup.objects.all()
    }
    assert daily == by_key
    assert len(daily) == 4


def test_a_late_outcome_and_a_rebuild_update_the_day_too() -> None:
    asked = decision(TEN + datetime.timedelta(minutes=20), estimated=0.25)
    refresh()
    assert DailyUsageRollup.objects.get(day=MIDNIGHT).outcomes_ok == 0
    outcome(asked, TEN + datetime.timedelta(days=1, hours=2), tokens=(400, 100), latency=950)
    refresh()
    day = DailyUsageRollup.objects.get()
    assert (day.day, day.outcomes_ok, day.input_tokens) == (MIDNIGHT, 1, 400)

    figures = days()
    rebuild(MIDNIGHT, MIDNIGHT + datetime.timedelta(days=1))
    assert days() == figures
    # A day whose hours are gone (rows deleted by hand) is emptied by rebuilding it.
    UsageRollup.objects.all().delete()
    assert rebuild_days([MIDNIGHT]) == 0
    assert not DailyUsageRollup.objects.exists()


def test_the_migration_adds_up_the_hours_already_there(busy_hour: None) -> None:
    import importlib
    import types

    from django.apps import apps
    from django.db import connection

    refresh()
    expected = days()
    DailyUsageRollup.objects.all().delete()
    migration = importlib.import_module("audit.migrations.0013_daily_rollups")
    # It reads only the editor's connection; SQLite cannot open a schema editor inside a test's transaction.
    migration.add_up_the_hours(apps, types.SimpleNamespace(connection=connection))
    assert days() == expected
    assert len(expected) == 3


def test_rebuild_rollups_command_reports_hours_and_rows(busy_hour: None) -> None:
    out = io.StringIO()
    call_command("rebuild_rollups", "--since", "2026-11-01T09:00", "--until", "2026-11-01T12:00", stdout=out)
    assert out.getvalue() == "Rebuilt 3 hours, wrote 4 rollup rows.\n"
    # An offset is honoured: 11:00+01:00 is ten o'clock UTC.
    call_command(
        "rebuild_rollups", "--since", "2026-11-01T11:00+01:00", "--until", "2026-11-01T12:00+01:00", stdout=out
    )
    assert out.getvalue().endswith("Rebuilt 1 hour, wrote 3 rollup rows.\n")


@pytest.mark.parametrize(
    ("since", "until", "message"),
    [
        ("yesterday", "2026-11-02T00:00", "--since 'yesterday': not an ISO 8601 date and time"),
        ("2026-11-01T00:00", "2026-13-01", "--until '2026-13-01': not an ISO 8601 date and time"),
        ("2026-11-02T00:00", "2026-11-01T00:00", "must be before --until"),
        ("2026-11-01T00:00", "2026-11-01T00:00", "must be before --until"),
    ],
)
def test_rebuild_rollups_command_refuses_bad_ranges(since: str, until: str, message: str) -> None:
    with pytest.raises(CommandError, match=message):
        call_command("rebuild_rollups", "--since", since, "--until", until)


def test_beat_refreshes_the_rollups_every_rollup_seconds(task_runner: str, busy_hour: None) -> None:
    entry = settings.CELERY_BEAT_SCHEDULE["refresh-usage-rollups"]
    assert (entry["task"], entry["schedule"]) == ("audit.tasks.refresh_rollups", settings.ROLLUP_SECONDS)
    refresh_rollups.delay()
    assert wait_for(lambda: UsageRollup.objects.filter(hour=TEN).count() == 3), task_runner
