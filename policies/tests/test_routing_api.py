"""The routing API contract: every status it promises, and the audit event behind every answer."""

import datetime
import hashlib
import time
from dataclasses import dataclass
from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from audit.models import AuditEvent
from policies import services
from policies.budgets import month_of
from policies.counters import get_counters
from policies.models import Application
from policies.tests.factories import make_active_policy, make_app, pinned_rule, rules_document
from registry import services as registry_services
from registry.models import DataClassification, ModelVersion
from registry.tests.factories import approve, make_model, make_provider, make_version

pytestmark = pytest.mark.django_db

ROUTE = "/api/v1/route"


@dataclass
class World:
    app: Application
    key: str
    a: ModelVersion
    b: ModelVersion
    c: ModelVersion

    def client(self, key: str | None = None) -> Client:
        return Client(HTTP_AUTHORIZATION=f"Bearer {key or self.key}")

    def route(self, key: str | None = None, **body: Any) -> Any:
        payload = {"task_type": "code", "data_classification": "internal", **body}
        return self.client(key).post(ROUTE, payload, content_type="application/json")


@pytest.fixture
def world(vocabulary: Any, administrator: User, reviewer: User) -> World:
    acme = make_provider(name="Acme", slug="acme")
    beta = make_provider(name="Beta", slug="beta")
    a = make_version(make_model(acme, name="Large", slug="large"), lifecycle="approved", label="1")
    b = make_version(make_model(acme, name="Small", slug="small"), lifecycle="approved", label="1")
    c = make_version(make_model(beta, name="Other", slug="other"), lifecycle="approved", label="1")
    for version in (a, b, c):
        approve(version, "internal")
    approve(b, "pii", regions=("eu",))
    ref = services.version_ref
    policy = make_active_policy(
        rules_document(pinned_rule(ref(a), fallbacks=[ref(b), ref(c)], verifier=ref(c))),
        author=administrator,
        reviewer=reviewer,
        slug="main",
    )
    app = make_app(classifications=("public", "internal", "pii"), slug="support", name="Support", policy=policy)
    _, key = services.generate_key(app, name="prod")
    return World(app=app, key=key, a=a, b=b, c=c)


def test_a_decision_names_the_exact_model_version_with_fallbacks_and_reasons(world: World) -> None:
    response = world.route(input_tokens=1000, max_output_tokens=500, request_id="req-1")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {
        "decision_id",
        "model",
        "fallbacks",
        "verifier",
        "policy",
        "rule",
        "compliance_revision",
        "reasons",
        "estimated_cost_usd",
    }
    assert body["model"] == {
        "provider": "acme",
        "model": "Large",
        "version": "1",
        "api_model_id": world.a.api_model_id,
        "model_version_id": world.a.pk,
    }
    assert [f["model_version_id"] for f in body["fallbacks"]] == [world.b.pk, world.c.pk]
    assert body["verifier"]["model_version_id"] == world.c.pk
    assert body["policy"] == {"slug": "main", "version": 1}
    assert body["rule"] == "default"
    assert body["compliance_revision"] == registry_services.current("compliance_revision")
    assert body["estimated_cost_usd"] == pytest.approx((1000 * 1.5 + 500 * 6.0) / 1e6)
    assert any("pinned to acme/large/1" in reason for reason in body["reasons"])


def test_every_decision_is_stored_with_its_attribution_before_the_answer(world: World) -> None:
    body = world.route(region="eu", complexity="low", request_id="req-9").json()
    event = AuditEvent.objects.get(kind="routing.decision")
    assert str(event.decision_id) == body["decision_id"]
    assert (event.application_id, event.application_name, event.team_name) == (
        world.app.pk,
        "Support",
        world.app.team.name,
    )
    assert (event.policy_slug, event.policy_version, event.rule) == ("main", 1, "default")
    assert event.compliance_revision == body["compliance_revision"]
    assert (event.model_version_id, event.model_version_name) == (world.a.pk, "acme/large/1")
    assert (event.classification, event.region, event.task_type, event.request_id) == (
        "internal",
        "eu",
        "code",
        "req-9",
    )
    assert event.actor_name == "app:support"
    assert event.data["response"] == body
    assert event.data["request"]["complexity"] == "low"


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"task_type": None, "data_classification": None}, {"task_type", "data_classification"}),
        ({"task_type": "telepathy"}, {"task_type"}),
        ({"data_classification": "secret"}, {"data_classification"}),
        ({"region": "mars", "complexity": "extreme"}, {"region", "complexity"}),
        (
            {"input_tokens": -1, "max_output_tokens": 0, "max_latency_ms": "fast"},
            {"input_tokens", "max_output_tokens", "max_latency_ms"},
        ),
        ({"max_cost_usd": -0.5}, {"max_cost_usd"}),
        ({"request_id": "has spaces"}, {"request_id"}),
        ({"metadata": "not-an-object"}, {"metadata"}),
        ({"colour": "blue"}, {"colour"}),
    ],
)
def test_malformed_or_unknown_values_are_400_naming_each_field(
    world: World, body: dict[str, Any], fields: set[str]
) -> None:
    payload = {k: v for k, v in body.items() if v is not None}
    if body.get("task_type", "x") is None:
        response = world.client().post(ROUTE, payload, content_type="application/json")
    else:
        response = world.route(**payload)
    assert response.status_code == 400
    assert set(response.json()["errors"]) == fields
    assert not AuditEvent.objects.filter(kind__startswith="routing.").exists()


def test_a_body_that_is_not_json_is_400(world: World) -> None:
    response = world.client().post(ROUTE, "{nope", content_type="application/json")
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["detail"]


def test_missing_wrong_revoked_and_expired_keys_are_401(world: World) -> None:
    assert Client().post(ROUTE, {}, content_type="application/json").status_code == 401
    assert world.route(key="sb_00000000_wrong").json()["detail"] == "Unknown API key."
    key, raw = services.generate_key(world.app, name="old")
    assert world.route(key=raw).status_code == 200
    services.revoke_key(key)
    revoked = world.route(key=raw)
    assert revoked.status_code == 401 and "revoked" in revoked.json()["detail"]
    assert revoked["WWW-Authenticate"].startswith("Bearer")
    _, raw_soon = services.generate_key(
        world.app, name="short", expires_at=timezone.now() + datetime.timedelta(hours=1)
    )
    assert world.route(key=raw_soon).status_code == 200
    with time_machine.travel(timezone.now() + datetime.timedelta(hours=2)):
        expired = world.route(key=raw_soon)  # no database change: expiry is checked on every request
    assert expired.status_code == 401 and "expired" in expired.json()["detail"]


def test_a_classification_the_application_may_not_send_is_403_and_recorded(world: World) -> None:
    response = world.route(data_classification="phi")
    assert response.status_code == 403
    assert "may not send phi" in response.json()["detail"]
    refused = AuditEvent.objects.get(kind="routing.refused")
    assert refused.classification == "phi" and refused.data["status"] == 403


def test_when_nothing_may_serve_the_answer_is_422_naming_every_candidate(world: World) -> None:
    response = world.route(data_classification="pii", region="us")
    assert response.status_code == 422
    body = response.json()
    reasons = {entry["model_version"]: entry["reason"] for entry in body["excluded"]}
    assert reasons == {
        "acme/large/1": "not approved for pii data",
        "acme/small/1": "pii data approved only in eu",
        "beta/other/1": "not approved for pii data",
    }
    assert body["rule"] == "default" and body["policy"] == {"slug": "main", "version": 1}
    assert AuditEvent.objects.get(kind="routing.refused").data["status"] == 422


def test_region_limited_approval_serves_in_its_region(world: World) -> None:
    body = world.route(data_classification="pii", region="eu").json()
    assert body["model"]["model_version_id"] == world.b.pk
    assert body["fallbacks"] == [] and body["verifier"] is None


def test_a_repeated_request_id_returns_the_first_decision(world: World) -> None:
    first = world.route(request_id="same")
    registry_services.set_compliance(
        model_version=world.a,
        classification=DataClassification.objects.get(slug="internal"),
        decision="denied",
        reason="changed meanwhile",
    )
    again = world.route(request_id="same")
    assert again.status_code == 200
    assert again.json() == first.json()
    assert again["X-Idempotent-Replay"] == "true"
    assert AuditEvent.objects.filter(kind="routing.decision").count() == 1
    other_app = make_app(classifications=("internal",), policy=world.app.policy)
    _, other_key = services.generate_key(other_app, name="k")
    assert world.route(key=other_key, request_id="same").json()["decision_id"] != first.json()["decision_id"]


def test_a_narrowed_matrix_takes_effect_on_the_next_request(world: World) -> None:
    assert world.route().json()["model"]["model_version_id"] == world.a.pk
    registry_services.set_compliance(
        model_version=world.a,
        classification=DataClassification.objects.get(slug="internal"),
        decision="denied",
        reason="incident",
    )
    body = world.route().json()
    assert body["model"]["model_version_id"] == world.b.pk
    assert "excluded acme/large/1: not approved for internal data" in body["reasons"]


def _hot_path_statements(world: World) -> list[str]:
    world.route()  # warm the snapshot (and Redis's script cache)
    with CaptureQueriesContext(connection) as queries:
        assert world.route().status_code == 200
    # The test runs inside a transaction, so inserts are wrapped in savepoints; in autocommit
    # (production) there are none.
    return [q["sql"] for q in queries.captured_queries if "SAVEPOINT" not in q["sql"]]


SPEND_READ = "COALESCE((SELECT spent_micro_usd FROM policies_monthlyspend WHERE scope = "
AUDIT_INSERT = 'INSERT INTO "audit_auditevent"'
SPEND_UPSERT = "INSERT INTO policies_monthlyspend (scope, owner_id, month, spent_micro_usd) VALUES"


def _assert_stores_with_one_round_trip(statements: list[str]) -> None:
    """The decision's audit INSERT, carrying the spend UPSERT: one statement on PostgreSQL. SQLite
    has no data-modifying CTEs (nor round trips: it runs in process), so there it is a second one."""
    if connection.vendor == "postgresql":
        assert len(statements) == 1
        assert statements[0].startswith(f"WITH spend AS ({SPEND_UPSERT}")
        assert f") {AUDIT_INSERT}" in statements[0]
    else:
        assert len(statements) == 2
        assert statements[0].startswith(AUDIT_INSERT)
        assert statements[1].startswith(SPEND_UPSERT)


def test_the_hot_path_reads_the_budget_in_one_statement_and_stores_the_decision_with_its_cost(
    world: World, settings: Any
) -> None:
    settings.ROUTING_SNAPSHOT_TTL_SECONDS = 60
    settings.ROUTING_SPEND_FRESH_SECONDS = 0  # read the spend on every request
    statements = _hot_path_statements(world)
    # No registry or policy query: the counters' one statement (the team's month-to-date spend;
    # no quota, no application budget here), then the store.
    assert statements[0].startswith(f"SELECT 0, {SPEND_READ}")
    assert statements[0].count("SELECT spent_micro_usd") == 1
    _assert_stores_with_one_round_trip(statements[1:])
    assert len(statements) == (2 if connection.vendor == "postgresql" else 3)


@pytest.mark.postgresql
def test_a_fresh_spend_reading_saves_the_budget_round_trip(world: World, settings: Any) -> None:
    settings.ROUTING_SNAPSHOT_TTL_SECONDS = 60
    registry_services.update_object(world.app, data={"monthly_budget_usd": 50})
    statements = _hot_path_statements(world)
    # The warm-up's store returned the team's and the application's new spends: only the store.
    _assert_stores_with_one_round_trip(statements)
    assert statements[0].endswith(
        "RETURNING id, (SELECT spent_micro_usd FROM spend WHERE scope = 'team'), "
        "(SELECT spent_micro_usd FROM spend WHERE scope = 'application')"
    )
    # Once the reading is older than the window, the spends are read again first.
    settings.ROUTING_SPEND_FRESH_SECONDS = 0.05
    time.sleep(0.06)
    with CaptureQueriesContext(connection) as queries:
        assert world.route().status_code == 200
    statements = [q["sql"] for q in queries.captured_queries if "SAVEPOINT" not in q["sql"]]
    assert statements[0].startswith(f"SELECT 0, {SPEND_READ}")
    assert len(statements) == 2
    # Skipping reads never skips a charge: the counter is the sum of the stored estimates.
    stored = AuditEvent.objects.filter(kind="routing.decision").values_list("data", flat=True)
    charged = sum(round(data["response"]["estimated_cost_usd"] * 1_000_000) for data in stored)
    assert charged > 0
    assert get_counters().spent("team", world.app.team_id, month_of(timezone.now())) == charged


def test_a_quota_and_an_application_budget_still_cost_one_statement(world: World, settings: Any) -> None:
    settings.ROUTING_SNAPSHOT_TTL_SECONDS = 60
    registry_services.update_object(world.app, data={"requests_per_minute": 1000, "monthly_budget_usd": 50})
    statements = _hot_path_statements(world)
    # Count the request in its minute and read both spends: one INSERT … ON CONFLICT … RETURNING.
    assert statements[0].startswith("INSERT INTO policies_quotawindow (application_id, minute, requests)")
    assert statements[0].count("SELECT spent_micro_usd") == 2
    _assert_stores_with_one_round_trip(statements[1:])
    assert len(statements) == (2 if connection.vendor == "postgresql" else 3)


def test_with_redis_counters_the_hot_path_is_one_redis_call_and_one_insert(
    world: World, settings: Any, redis_counters: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.ROUTING_SNAPSHOT_TTL_SECONDS = 60
    registry_services.update_object(world.app, data={"requests_per_minute": 1000, "monthly_budget_usd": 50})
    world.route()  # warm the snapshot, and load the script into Redis
    pool = get_counters().client.connection_pool  # type: ignore[attr-defined]
    checkouts: list[int] = []
    get_connection = pool.get_connection

    def counted(*args: Any, **kwargs: Any) -> Any:
        checkouts.append(1)  # one per command or pipeline sent: a round trip
        return get_connection(*args, **kwargs)

    monkeypatch.setattr(pool, "get_connection", counted)
    with CaptureQueriesContext(connection) as queries:
        assert world.route().status_code == 200
    statements = [q["sql"] for q in queries.captured_queries if "SAVEPOINT" not in q["sql"]]
    assert len(checkouts) == 1  # the script: quota, both spends and the charge
    assert len(statements) == 1 and statements[0].startswith(AUDIT_INSERT)


def outcome(world: World, decision_id: str, **body: Any) -> Any:
    payload = {
        "model_version_id": world.a.pk,
        "status": "ok",
        "input_tokens": 10,
        "output_tokens": 20,
        "latency_ms": 300,
        "output_sha256": hashlib.sha256(b"hi").hexdigest(),
        **body,
    }
    return world.client().post(f"/api/v1/decisions/{decision_id}/outcome", payload, content_type="application/json")


def test_an_outcome_is_recorded_once_with_the_model_version_that_answered(world: World) -> None:
    decision = world.route().json()["decision_id"]
    response = outcome(world, decision, model_version_id=world.b.pk)
    assert response.status_code == 201
    event = AuditEvent.objects.get(kind="routing.outcome")
    assert response.json() == {"event_id": event.pk, "decision_id": decision}
    assert (event.model_version_id, event.model_version_name, event.policy_version, event.rule) == (
        world.b.pk,
        "acme/small/1",
        1,
        "default",
    )
    assert event.data["fallback_used"] is True
    assert event.data["reported_cost_usd"] == pytest.approx((10 * 1.5 + 20 * 6.0) / 1e6)
    second = outcome(world, decision)
    assert second.status_code == 409 and "already reported" in second.json()["detail"]


def test_an_outcome_naming_a_version_the_decision_did_not_offer_is_409(world: World) -> None:
    decision = world.route().json()["decision_id"]
    stranger = make_version(lifecycle="approved")
    response = outcome(world, decision, model_version_id=stranger.pk)
    assert response.status_code == 409
    assert not AuditEvent.objects.filter(kind="routing.outcome").exists()


def test_outcomes_for_unknown_or_other_applications_decisions_are_404(world: World) -> None:
    assert outcome(world, "00000000-0000-0000-0000-000000000000").status_code == 404
    decision = world.route().json()["decision_id"]
    other = make_app(classifications=("internal",), policy=world.app.policy)
    _, other_key = services.generate_key(other, name="k")
    response = Client(HTTP_AUTHORIZATION=f"Bearer {other_key}").post(
        f"/api/v1/decisions/{decision}/outcome", {"status": "ok"}, content_type="application/json"
    )
    assert response.status_code == 404


def test_output_text_is_kept_only_when_the_application_captures_content(world: World) -> None:
    decision = world.route().json()["decision_id"]
    refused = outcome(world, decision, output="the answer", output_sha256=None)
    assert refused.status_code == 400 and "Content capture is off" in refused.json()["errors"]["output"][0]
    Application.objects.filter(pk=world.app.pk).update(content_capture=True)
    registry_services.increment("routing_generation")
    kept = outcome(world, decision, output="the answer", output_sha256=None)
    assert kept.status_code == 201
    data = AuditEvent.objects.get(kind="routing.outcome").data
    assert data["output"] == "the answer"
    assert data["output_sha256"] == hashlib.sha256(b"the answer").hexdigest()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"status": "meh"}, "status"),
        ({"output_sha256": "xyz"}, "output_sha256"),
        ({"latency_ms": -3}, "latency_ms"),
        ({"model_version_id": "a"}, "model_version_id"),
        ({"extra": 1}, "extra"),
    ],
)
def test_malformed_outcomes_are_400(world: World, body: dict[str, Any], field: str) -> None:
    decision = world.route().json()["decision_id"]
    response = outcome(world, decision, **body)
    assert response.status_code == 400
    assert field in response.json()["errors"]
