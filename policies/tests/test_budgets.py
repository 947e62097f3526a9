"""Budgets and quotas through the routing API, with the database's counters and with Redis's."""

import datetime
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import User
from django.core import mail
from django.test import Client

from audit.models import AuditEvent
from policies import budgets, services
from policies.counters import get_counters
from policies.models import Application, BudgetAlert, MonthlySpend, Team
from policies.tests.factories import make_active_policy, make_app, make_team, pinned_rule, rules_document
from registry import services as registry_services
from registry.models import DataClassification, Model, ModelVersion
from registry.tests.factories import approve, make_model, make_provider, make_version
from registry.tests.test_tasks import wait_for

pytestmark = pytest.mark.django_db

ROUTE = "/api/v1/route"
UTC = datetime.UTC
NOON = datetime.datetime(2026, 11, 10, 12, 0, 15, tzinfo=UTC)  # 15 s into a minute, mid-month
# 1,000 tokens in and out; per million tokens: frontier 10 / 30, economy 0.1 / 0.4 and 0.2 / 0.8.
BODY = {"task_type": "code", "data_classification": "internal", "input_tokens": 1000, "max_output_tokens": 1000}
FRONTIER_COST, CHEAP_COST, MINI_COST = Decimal("0.04"), Decimal("0.0005"), Decimal("0.001")


@dataclass
class Shop:
    team: Team
    app: Application
    key: str
    frontier: ModelVersion
    cheap: ModelVersion  # economy, approved for internal data only
    mini: ModelVersion  # economy, from another provider, approved for internal and PII data

    def route(self, **body: Any) -> Any:
        return Client(HTTP_AUTHORIZATION=f"Bearer {self.key}").post(
            ROUTE, {**BODY, **body}, content_type="application/json"
        )

    def spent(self, scope: str = "team") -> Decimal:
        owner = self.team.pk if scope == "team" else self.app.pk
        return Decimal(get_counters().spent(scope, owner, NOON.date().replace(day=1))) / 1_000_000


def version(provider: Any, slug: str, tier: str, cost_in: str, cost_out: str, score: int) -> ModelVersion:
    model = make_model(provider, name=slug.title(), slug=slug, tier=tier)
    return make_version(
        model,
        lifecycle="approved",
        label="1",
        input_cost_per_mtok=Decimal(cost_in),
        output_cost_per_mtok=Decimal(cost_out),
        quality_scores={"code": score},
    )


def build(
    administrator: User,
    reviewer: User,
    *,
    over_budget: str | None = None,
    team_budget: str = "1000",
    app_budget: str | None = None,
    rpm: int | None = None,
    contacts: str = "lead@example.test\nfinance@example.test",
) -> Shop:
    acme, beta = make_provider(name="Acme", slug="acme"), make_provider(name="Beta", slug="beta")
    frontier = version(acme, "grand", Model.Tier.FRONTIER, "10", "30", 95)
    cheap = version(acme, "cheap", Model.Tier.ECONOMY, "0.1", "0.4", 80)
    mini = version(beta, "mini", Model.Tier.ECONOMY, "0.2", "0.8", 60)
    for each in (frontier, cheap, mini):
        approve(each, "internal")
    approve(frontier, "pii")
    approve(mini, "pii")
    extra = {"over_budget": over_budget} if over_budget else {}
    policy = make_active_policy(
        rules_document(pinned_rule(services.version_ref(frontier), **extra)),
        author=administrator,
        reviewer=reviewer,
        slug="main",
    )
    team = make_team(name="Care", slug="care", monthly_budget_usd=Decimal(team_budget), contacts=contacts)
    app = make_app(
        team,
        classifications=("internal", "pii"),
        name="Support",
        slug="support",
        policy=policy,
        requests_per_minute=rpm,
        monthly_budget_usd=Decimal(app_budget) if app_budget else None,
    )
    _, key = services.generate_key(app, name="prod")
    return Shop(team=team, app=app, key=key, frontier=frontier, cheap=cheap, mini=mini)


@pytest.fixture
def at_noon() -> Any:
    with time_machine.travel(NOON, tick=False) as traveller:
        yield traveller


# --- Quota ------------------------------------------------------------------------------------


def test_over_quota_is_429_with_retry_after_until_the_minute_ends(
    counters: str, administrator: User, reviewer: User, at_noon: Any
) -> None:
    shop = build(administrator, reviewer, rpm=3)
    assert [shop.route().status_code for _ in range(3)] == [200, 200, 200]
    throttled = shop.route()
    assert throttled.status_code == 429
    assert throttled["Retry-After"] == "45"  # 12:00:15 → the minute frees at 12:01:00
    assert throttled.json() == {
        "detail": "Application Support is over its quota of 3 requests per minute; retry in 45 s.",
        "quota": {"requests_per_minute": 3, "retry_after_seconds": 45},
    }
    # Throttling is flow control: the three decisions are recorded, the throttled call is not.
    assert AuditEvent.objects.filter(kind__startswith="routing.").count() == 3
    assert shop.spent() == 3 * FRONTIER_COST


def test_the_quota_counts_afresh_when_the_next_minute_starts(
    counters: str, administrator: User, reviewer: User, at_noon: Any
) -> None:
    shop = build(administrator, reviewer, rpm=2)
    at_noon.move_to(NOON.replace(second=59, microsecond=500_000))
    assert [shop.route().status_code for _ in range(3)] == [200, 200, 429]
    assert shop.route()["Retry-After"] == "1"
    at_noon.move_to(NOON.replace(minute=1, second=0))
    assert [shop.route().status_code for _ in range(3)] == [200, 200, 429]


def test_an_application_without_a_quota_is_never_throttled(
    counters: str, administrator: User, reviewer: User, at_noon: Any
) -> None:
    shop = build(administrator, reviewer)
    assert {shop.route().status_code for _ in range(25)} == {200}


# --- Over budget: refuse or downgrade, as the rule says ----------------------------------------


def test_a_rule_that_says_nothing_refuses_over_budget_with_429_naming_the_budget(
    counters: str, administrator: User, reviewer: User, at_noon: Any
) -> None:
    shop = build(administrator, reviewer, team_budget="0.10")  # three frontier decisions: 0.12
    assert [shop.route().status_code for _ in range(3)] == [200, 200, 200]
    refused = shop.route()
    assert refused.status_code == 429
    body = refused.json()
    assert body["detail"] == (
        "team Care is over its monthly budget of $0.10: refused by rule 'default' of policy main v1."
    )
    assert body["budgets"] == [
        {
            "scope": "team",
            "slug": "care",
            "name": "Care",
            "monthly_budget_usd": "0.10",
            "spent_usd": 0.12,
            "month": "2026-11",
            "resets_at": "2026-12-01T00:00:00+00:00",
        }
    ]
    assert "Retry-After" not in refused  # the budget may be raised any minute; the body says when it resets
    event = AuditEvent.objects.get(kind="routing.refused")
    assert (event.data["status"], event.reason, event.rule) == (429, body["detail"], "default")
    assert str(event.decision_id) == body["decision_id"]
    assert shop.spent() == 3 * FRONTIER_COST  # a refusal costs nothing


def test_downgrade_routes_over_budget_requests_to_the_economy_tier_and_says_so(
    counters: str, administrator: User, reviewer: User, at_noon: Any
) -> None:
    shop = build(administrator, reviewer, over_budget="downgrade", team_budget="0.10")
    for _ in range(3):
        assert shop.route().json()["model"]["model_version_id"] == shop.frontier.pk
    body = shop.route().json()
    assert body["model"]["model_version_id"] == shop.cheap.pk  # the best-scoring economy version
    assert [f["model_version_id"] for f in body["fallbacks"]] == [shop.mini.pk]
    assert body["reasons"][:3] == [
        "rule 'default' of policy main v1 matched",
        "team Care is over its monthly budget of $0.10: downgraded to economy",
        "best code score in the economy tier: acme/cheap/1",
    ]
    assert body["estimated_cost_usd"] == pytest.approx(float(CHEAP_COST))
    assert shop.spent() == 3 * FRONTIER_COST + CHEAP_COST
    stored = AuditEvent.objects.get(decision_id=body["decision_id"])
    assert (stored.kind, stored.model_version_id) == ("routing.decision", shop.cheap.pk)


def test_a_downgrade_still_never_sends_personal_data_to_an_unapproved_economy_model(
    counters: str, administrator: User, reviewer: User, at_noon: Any
) -> None:
    shop = build(administrator, reviewer, over_budget="downgrade", team_budget="0")
    pii = shop.route(data_classification="pii")
    assert pii.json()["model"]["model_version_id"] == shop.mini.pk  # cheap scores higher but may not see PII
    assert "team Care is over its monthly budget of $0.00: downgraded to economy" in pii.json()["reasons"]
    registry_services.set_compliance(
        model_version=shop.mini,
        classification=DataClassification.objects.get(slug="pii"),
        decision="denied",
        reason="incident",
    )
    refused = shop.route(data_classification="pii")
    assert refused.status_code == 422  # nothing economy may see it: fail closed, as always
    body = refused.json()
    assert body["detail"] == (
        "No economy model version may serve this request under rule 'default' "
        "(team Care is over its monthly budget of $0.00)."
    )
    assert {entry["model_version"]: entry["reason"] for entry in body["excluded"]} == {
        "acme/cheap/1": "not approved for pii data",
        "beta/mini/1": "not approved for pii data",
    }
    assert AuditEvent.objects.get(kind="routing.refused").data["status"] == 422


def test_an_application_budget_holds_on_top_of_the_team_budget(
    counters: str, administrator: User, reviewer: User, at_noon: Any
) -> None:
    shop = build(administrator, reviewer, over_budget="downgrade", app_budget="0.05")
    assert shop.route().json()["model"]["model_version_id"] == shop.frontier.pk
    assert shop.route().json()["model"]["model_version_id"] == shop.frontier.pk  # 0.04 < 0.05 before it
    body = shop.route().json()
    assert "application Support is over its monthly budget of $0.05: downgraded to economy" in body["reasons"]
    assert shop.spent("application") == 2 * FRONTIER_COST + CHEAP_COST
    assert shop.spent("team") == 2 * FRONTIER_COST + CHEAP_COST


def test_a_new_month_starts_with_nothing_spent(
    counters: str, administrator: User, reviewer: User, at_noon: Any
) -> None:
    shop = build(administrator, reviewer, team_budget="0.04")
    assert [shop.route().status_code for _ in range(2)] == [200, 429]
    at_noon.move_to(datetime.datetime(2026, 12, 1, 0, 0, 1, tzinfo=UTC))
    assert shop.route().status_code == 200


def test_raising_the_budget_on_the_team_page_takes_effect_on_the_next_request(
    counters: str, administrator: User, reviewer: User, at_noon: Any, client: Client
) -> None:
    shop = build(administrator, reviewer, team_budget="0.04")
    assert [shop.route().status_code for _ in range(2)] == [200, 429]
    client.force_login(administrator)
    response = client.post(
        f"/teams/{shop.team.slug}/edit/",
        {"name": "Care", "slug": "care", "monthly_budget_usd": "100", "contacts": "lead@example.test"},
    )
    assert response.status_code == 302
    assert shop.route().status_code == 200


def test_a_replayed_request_id_is_charged_once(
    counters: str, administrator: User, reviewer: User, at_noon: Any
) -> None:
    shop = build(administrator, reviewer)
    first = shop.route(request_id="retry-me").json()
    again = shop.route(request_id="retry-me")
    assert again["X-Idempotent-Replay"] == "true" and again.json() == first
    assert shop.spent() == shop.spent("application") == FRONTIER_COST


def test_the_database_counter_holds_the_sum_of_the_stored_estimates(
    administrator: User, reviewer: User, at_noon: Any
) -> None:
    shop = build(administrator, reviewer)
    costs = [shop.route(input_tokens=n * 100).json()["estimated_cost_usd"] for n in range(1, 6)]
    rows = {row.scope: row for row in MonthlySpend.objects.all()}
    assert set(rows) == {"team", "application"}
    expected = round(sum(Decimal(str(cost)) for cost in costs) * 1_000_000)
    assert rows["team"].spent_micro_usd == rows["application"].spent_micro_usd == expected
    assert (rows["team"].owner_id, rows["application"].owner_id) == (shop.team.pk, shop.app.pk)
    assert rows["team"].month == datetime.date(2026, 11, 1)


def test_unreachable_redis_counters_fail_closed_with_503(
    administrator: User, reviewer: User, settings: Any, at_noon: Any
) -> None:
    shop = build(administrator, reviewer)
    settings.ROUTING_COUNTERS_URL = "redis://127.0.0.1:9/0"  # the discard port: nothing listens
    response = shop.route()
    assert response.status_code == 503 and response["Retry-After"] == "1"
    assert "counters cannot be reached" in response.json()["detail"]
    assert not AuditEvent.objects.filter(kind__startswith="routing.").exists()


# --- Alerts at 80% and 100% ---------------------------------------------------------------------


def test_alerts_at_80_and_100_percent_come_once_each_with_email_event_and_banner_row(
    counters: str,
    task_runner: str,
    administrator: User,
    reviewer: User,
    at_noon: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    shop = build(administrator, reviewer, over_budget="downgrade", team_budget="0.10")

    def route() -> None:
        with django_capture_on_commit_callbacks(execute=True):  # as when the API's autocommit commits
            assert shop.route().status_code == 200

    route()  # 0.04: 40%
    assert not BudgetAlert.objects.exists() and mail.outbox == []
    route()  # 0.08: exactly 80%
    assert wait_for(lambda: list(BudgetAlert.objects.values_list("threshold", flat=True)) == [80]), task_runner
    for _ in range(5):  # 0.12 (100%), then downgraded decisions beyond it
        route()
    assert wait_for(lambda: BudgetAlert.objects.count() == 2 and len(mail.outbox) == 2), task_runner
    alerts = list(BudgetAlert.objects.order_by("threshold"))
    assert [(a.threshold, a.team_id, a.application_id) for a in alerts] == [
        (80, shop.team.pk, None),
        (100, shop.team.pk, None),
    ]
    assert [(a.spend_usd, a.budget_usd, a.month) for a in alerts] == [
        (Decimal("0.08"), Decimal("0.10"), datetime.date(2026, 11, 1)),
        (Decimal("0.12"), Decimal("0.10"), datetime.date(2026, 11, 1)),
    ]
    assert [message.to for message in mail.outbox] == [["lead@example.test", "finance@example.test"]] * 2
    assert mail.outbox[0].subject == "[Switchboard] Team Care has used 80% of its monthly budget"
    assert mail.outbox[0].body.startswith(
        "Team Care has used 80% of its monthly budget in November 2026: $0.08 of $0.10 (estimated)."
    )
    assert "refused or downgraded" in mail.outbox[1].body
    events = list(AuditEvent.objects.filter(kind="budget.alert").order_by("id"))
    assert [event.after["threshold"] for event in events] == [80, 100]
    assert events[0].object_type == "policies.team" and events[0].object_id == str(shop.team.pk)
    assert events[0].after["emailed_to"] == ["lead@example.test", "finance@example.test"]
    assert [alert.threshold for alert in budgets.active_alerts(NOON.date())] == [100]


def test_an_application_budget_alerts_its_team_contacts_once(
    counters: str,
    task_runner: str,
    administrator: User,
    reviewer: User,
    at_noon: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    shop = build(administrator, reviewer, app_budget="0.05", contacts="lead@example.test")
    for _ in range(4):  # 0.04 (80%), 0.08 (100%), then refused
        with django_capture_on_commit_callbacks(execute=True):
            shop.route()
    assert wait_for(lambda: BudgetAlert.objects.count() == 2 and len(mail.outbox) == 2), task_runner
    alerts = BudgetAlert.objects.order_by("threshold")
    assert [(a.threshold, a.application_id) for a in alerts] == [(80, shop.app.pk), (100, shop.app.pk)]
    assert [m.subject for m in mail.outbox] == [
        "[Switchboard] Application Support has used 80% of its monthly budget",
        "[Switchboard] Application Support has used 100% of its monthly budget",
    ]
    assert all(m.to == ["lead@example.test"] for m in mail.outbox)


def test_a_second_process_noticing_the_same_threshold_raises_no_second_alert(
    administrator: User, reviewer: User, at_noon: Any
) -> None:
    shop = build(administrator, reviewer)
    arguments: dict[str, Any] = {
        "scope": "team",
        "owner_id": shop.team.pk,
        "month": datetime.date(2026, 11, 1),
        "threshold": 80,
        "budget_micro": 1_000_000_000,
        "spend_micro": 800_000_000,
    }
    assert budgets.raise_alert(**arguments) is not None
    assert budgets.raise_alert(**{**arguments, "spend_micro": 800_100_000}) is None
    assert BudgetAlert.objects.count() == 1 and len(mail.outbox) == 1
    assert AuditEvent.objects.filter(kind="budget.alert").count() == 1


def test_a_team_without_contacts_still_gets_the_banner_and_the_event(
    administrator: User, reviewer: User, at_noon: Any
) -> None:
    shop = build(administrator, reviewer, contacts="")
    alert = budgets.raise_alert(
        scope="team",
        owner_id=shop.team.pk,
        month=datetime.date(2026, 11, 1),
        threshold=100,
        budget_micro=1_000_000_000,
        spend_micro=1_000_000_000,
    )
    assert alert is not None and mail.outbox == []
    assert AuditEvent.objects.get(kind="budget.alert").after["email_error"] == "the team has no contacts"


def test_changing_a_budget_rearms_its_alerts_and_retires_the_old_ones_from_the_banner(
    administrator: User, reviewer: User, at_noon: Any
) -> None:
    shop = build(administrator, reviewer, team_budget="1000")
    month = datetime.date(2026, 11, 1)
    budgets.raise_alert(
        scope="team", owner_id=shop.team.pk, month=month, threshold=80, budget_micro=10**9, spend_micro=8 * 10**8
    )
    assert [a.threshold for a in budgets.active_alerts(NOON.date())] == [80]
    registry_services.update_object(shop.team, data={"monthly_budget_usd": Decimal("2000.00")})
    assert budgets.active_alerts(NOON.date()) == []
    again = budgets.raise_alert(
        scope="team", owner_id=shop.team.pk, month=month, threshold=80, budget_micro=2 * 10**9, spend_micro=16 * 10**8
    )
    assert again is not None and budgets.active_alerts(NOON.date()) == [again]


# --- The pages ----------------------------------------------------------------------------------


def test_the_application_page_sets_a_quota_and_a_budget_audited_like_any_change(
    administrator: User, reviewer: User, client: Client
) -> None:
    shop = build(administrator, reviewer)
    client.force_login(administrator)
    form = {
        "name": "Support",
        "slug": "support",
        "team": shop.team.pk,
        "allowed_classifications": list(
            DataClassification.objects.filter(slug="internal").values_list("pk", flat=True)
        ),
        "policy": shop.app.policy_id,
        "requests_per_minute": "120",
        "monthly_budget_usd": "250",
    }
    assert client.post(f"/applications/{shop.app.slug}/edit/", form).status_code == 302
    shop.app.refresh_from_db()
    assert (shop.app.requests_per_minute, shop.app.monthly_budget_usd) == (120, Decimal("250.00"))
    event = AuditEvent.objects.filter(kind="application.updated").latest("id")
    assert (event.before["requests_per_minute"], event.after["requests_per_minute"]) == (None, 120)
    assert (event.before["monthly_budget_usd"], event.after["monthly_budget_usd"]) == (None, "250.00")
    refused = client.post(f"/applications/{shop.app.slug}/edit/", {**form, "requests_per_minute": "0"})
    assert refused.status_code == 200 and "greater than or equal to 1" in refused.content.decode()
    cleared = client.post(
        f"/applications/{shop.app.slug}/edit/", {**form, "requests_per_minute": "", "monthly_budget_usd": ""}
    )
    assert cleared.status_code == 302
    shop.app.refresh_from_db()
    assert (shop.app.requests_per_minute, shop.app.monthly_budget_usd) == (None, None)


def test_team_and_application_pages_show_this_months_spend_and_alerts(
    counters: str, administrator: User, reviewer: User, auditor: User, client: Client
) -> None:
    shop = build(administrator, reviewer, team_budget="0.10", app_budget="1", rpm=30)
    for _ in range(2):
        shop.route()
    budgets.raise_alert(
        scope="team",
        owner_id=shop.team.pk,
        month=datetime.date.today().replace(day=1),
        threshold=80,
        budget_micro=100_000,
        spend_micro=80_000,
    )
    client.force_login(auditor)
    team_page = client.get(f"/teams/{shop.team.slug}/").content.decode()
    assert "$0.08 estimated, 80% of the budget" in team_page
    assert "the team reached 80% of its $0.10 budget" in team_page
    app_page = client.get(f"/applications/{shop.app.slug}/").content.decode()
    assert "30 requests per minute" in app_page
    assert "$1.00, on top of the team" in app_page
    assert "$0.08 estimated, 8% of the budget" in app_page


@pytest.mark.postgresql
def test_the_minute_counters_skip_the_write_ahead_log_on_postgresql() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT relpersistence FROM pg_class WHERE relname = 'policies_quotawindow'")
        assert cursor.fetchone() == ("u",)  # unlogged: its commits wait for no disk flush
        cursor.execute("SELECT relpersistence FROM pg_class WHERE relname = 'policies_monthlyspend'")
        assert cursor.fetchone() == ("p",)  # spend is a month's money: durable
