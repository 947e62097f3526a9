"""The events API: auditors and administrators read the log with cursors and filters; nobody writes."""

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from rest_framework.authtoken.models import Token

from audit.models import AuditEvent
from audit.sealing import seal_all
from audit.tests.test_pages import Traffic, build_traffic
from console.roles import ADMINISTRATOR, AUDITOR, REVIEWER

pytestmark = pytest.mark.django_db

EVENTS = reverse("audit-api-events")


@pytest.fixture
def traffic(vocabulary: Any, administrator: User, reviewer: User) -> Traffic:
    return build_traffic(administrator, reviewer)


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_an_auditor_reads_every_field_and_the_seal(traffic: Traffic, auditor: User) -> None:
    traffic.route(traffic.support)
    seal_all()
    traffic.route(traffic.billing)
    response = signed_in(auditor).get(EVENTS)
    assert response.status_code == 200
    rows = response.json()["results"]
    assert [row["id"] for row in rows] == sorted((row["id"] for row in rows), reverse=True)
    newest, sealed = rows[0], rows[1]
    assert newest["seal"] is None and newest["application_name"] == "Billing"
    event = AuditEvent.objects.select_related("seal").get(pk=sealed["id"])
    assert sealed["seal"]["sequence"] == event.seal.sequence
    assert (sealed["seal"]["hash"], sealed["seal"]["prev_hash"]) == (event.seal.hash, event.seal.prev_hash)
    assert {f.name for f in AuditEvent._meta.concrete_fields} <= set(sealed)


def test_the_next_cursor_link_walks_every_event_once(traffic: Traffic, administrator: User) -> None:
    while AuditEvent.objects.count() <= 120:
        traffic.route(traffic.support)
    client = signed_in(administrator)
    first = client.get(EVENTS).json()
    assert len(first["results"]) == 100 and first["next"]
    second = client.get(first["next"]).json()
    seen = [row["id"] for row in first["results"] + second["results"]]
    assert seen == sorted(AuditEvent.objects.values_list("id", flat=True), reverse=True)
    assert second["next"] is None


def test_an_auditor_can_use_a_user_token(traffic: Traffic, auditor: User) -> None:
    token = Token.objects.create(user=auditor)
    response = Client(HTTP_AUTHORIZATION=f"Token {token.key}").get(EVENTS)
    assert response.status_code == 200


def test_an_applications_api_key_does_not_open_the_log(traffic: Traffic) -> None:
    response = Client(HTTP_AUTHORIZATION=f"Bearer {traffic.keys['support']}").get(EVENTS)
    assert response.status_code == 401


@pytest.mark.parametrize(("role", "status"), [(ADMINISTRATOR, 200), (AUDITOR, 200), (REVIEWER, 403), ("none", 403)])
def test_only_auditors_and_administrators_read_the_log(personas: dict[str, User], role: str, status: int) -> None:
    assert signed_in(personas[role]).get(EVENTS).status_code == status


def test_anonymous_clients_get_401(db: Any) -> None:
    response = Client().get(EVENTS)
    assert response.status_code == 401 and "WWW-Authenticate" in response


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
@pytest.mark.parametrize(("role", "status"), [(ADMINISTRATOR, 405), (AUDITOR, 405), (REVIEWER, 403), ("none", 403)])
def test_nobody_writes_through_the_events_api(personas: dict[str, User], method: str, role: str, status: int) -> None:
    response = getattr(signed_in(personas[role]), method)(EVENTS, {}, content_type="application/json")
    assert response.status_code == status


def test_anonymous_writes_get_401(db: Any) -> None:
    assert Client().post(EVENTS, {}, content_type="application/json").status_code == 401


def test_the_api_filters_like_the_pages(traffic: Traffic, auditor: User) -> None:
    first = traffic.route(traffic.support, "pii")
    traffic.route(traffic.billing)
    traffic.report(traffic.support, first, traffic.large)
    client = signed_in(auditor)

    def ids(**params: Any) -> set[str | None]:
        response = client.get(EVENTS, params)
        assert response.status_code == 200
        return {row["decision_id"] for row in response.json()["results"]}

    billing = str(AuditEvent.objects.get(kind="routing.decision", application_name="Billing").decision_id)
    assert ids(application="Billing") == {billing}
    assert ids(model_version=traffic.small.pk) == {billing}
    assert ids(classification="pii") == {first}
    assert ids(kind="routing.outcome") == {first}
    assert ids(decision_id=first) == {first}
    assert ids(policy="main", policy_version=1) == {first}


def test_a_malformed_filter_is_a_400_naming_it(traffic: Traffic, auditor: User) -> None:
    response = signed_in(auditor).get(EVENTS, {"decision_id": "nope"})
    assert response.status_code == 400 and "decision_id" in response.json()
