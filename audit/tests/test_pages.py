"""The auditor's pages: every filter narrows the log, an event links to what it is about, roles."""

import csv
import datetime
import hashlib
import html
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from audit.models import AuditEvent
from audit.sealing import seal_all
from conftest import sign_in
from console.roles import ADMINISTRATOR, AUDITOR, REVIEWER
from policies import services
from policies.models import Application
from policies.tests.factories import make_active_policy, make_app, make_team, pinned_rule, rules_document
from registry import services as registry_services
from registry.models import DataClassification, ModelVersion
from registry.tests.factories import approve, make_model, make_provider, make_version

pytestmark = pytest.mark.django_db

LIST = reverse("audit:event-list")
T0 = datetime.datetime(2025, 3, 1, 9, 0, tzinfo=datetime.UTC)


@dataclass
class Traffic:
    """Two applications on two policies, each pinned to its own model version."""

    support: Application
    billing: Application
    large: ModelVersion
    small: ModelVersion
    keys: dict[str, str] = field(default_factory=dict)

    def route(self, app: Application, classification: str = "internal") -> str:
        client = Client(HTTP_AUTHORIZATION=f"Bearer {self.keys[app.slug]}")
        body = {"task_type": "code", "data_classification": classification}
        response = client.post("/api/v1/route", body, content_type="application/json")
        assert response.status_code == 200, response.content
        return str(response.json()["decision_id"])

    def report(self, app: Application, decision_id: str, version: ModelVersion) -> None:
        client = Client(HTTP_AUTHORIZATION=f"Bearer {self.keys[app.slug]}")
        body = {
            "model_version_id": version.pk,
            "status": "ok",
            "input_tokens": 10,
            "output_tokens": 20,
            "latency_ms": 300,
            "output_sha256": hashlib.sha256(b"hi").hexdigest(),
        }
        response = client.post(f"/api/v1/decisions/{decision_id}/outcome", body, content_type="application/json")
        assert response.status_code == 201, response.content


def build_traffic(administrator: User, reviewer: User) -> Traffic:
    """The registry, policies and applications, made through the services as in production."""
    acme = make_provider(name="Acme", slug="acme")
    large = make_version(make_model(acme, name="Large", slug="large"), lifecycle="approved", label="1")
    small = make_version(make_model(acme, name="Small", slug="small"), lifecycle="approved", label="1")
    for version in (large, small):
        for slug in ("internal", "pii"):
            approve(version, slug)
    ref = services.version_ref
    main = make_active_policy(
        rules_document(pinned_rule(ref(large))), author=administrator, reviewer=reviewer, slug="main"
    )
    books = make_active_policy(
        rules_document(pinned_rule(ref(small))), author=administrator, reviewer=reviewer, slug="books"
    )
    support = make_app(
        make_team(name="Care", slug="care"),
        classifications=("internal", "pii"),
        slug="support",
        name="Support",
        policy=main,
    )
    billing = make_app(
        make_team(name="Finance", slug="finance"),
        classifications=("internal", "pii"),
        slug="billing",
        name="Billing",
        policy=books,
    )
    traffic = Traffic(support=support, billing=billing, large=large, small=small)
    for app in (support, billing):
        traffic.keys[app.slug] = services.generate_key(app, name="prod")[1]
    return traffic


@pytest.fixture
def traffic(vocabulary: Any, administrator: User, reviewer: User) -> Traffic:
    return build_traffic(administrator, reviewer)


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def listed(client: Client, **params: Any) -> list[AuditEvent]:
    response = client.get(LIST, params)
    assert response.status_code == 200
    return list(response.context["page"].object_list)


def decisions(events: list[AuditEvent]) -> list[AuditEvent]:
    return [event for event in events if event.kind == "routing.decision"]


def test_filtering_by_application_lists_only_its_events(traffic: Traffic, auditor: User) -> None:
    traffic.route(traffic.support)
    traffic.route(traffic.billing)
    events = listed(signed_in(auditor), application="billing")
    assert [event.application_name for event in events] == ["Billing"]


def test_filtering_by_model_version_or_model_name_lists_only_its_events(traffic: Traffic, auditor: User) -> None:
    traffic.route(traffic.support)
    traffic.route(traffic.billing)
    client = signed_in(auditor)
    by_id = listed(client, model_version=traffic.small.pk)
    assert by_id and {event.model_version_id for event in by_id} == {traffic.small.pk}
    by_name = listed(client, model="acme/large")
    assert decisions(by_name) and {event.model_version_name for event in by_name} == {"acme/large/1"}


def test_filtering_by_classification_lists_only_that_classification(traffic: Traffic, auditor: User) -> None:
    traffic.route(traffic.support, "internal")
    pii = traffic.route(traffic.support, "pii")
    events = listed(signed_in(auditor), classification="pii")
    assert [str(event.decision_id) for event in events] == [pii]


def test_filtering_by_kind_lists_only_that_kind(traffic: Traffic, auditor: User) -> None:
    decision = traffic.route(traffic.support)
    traffic.report(traffic.support, decision, traffic.large)
    events = listed(signed_in(auditor), kind="routing.outcome")
    assert [event.kind for event in events] == ["routing.outcome"]


def test_filtering_by_time_range_lists_only_events_inside_it(traffic: Traffic, auditor: User) -> None:
    for hours in (0, 2, 4):
        with time_machine.travel(T0 + datetime.timedelta(hours=hours), tick=False):
            traffic.route(traffic.support)
    events = listed(signed_in(auditor), occurred_after="2025-03-01T10:00", occurred_before="2025-03-01T12:00")
    assert [event.occurred_at for event in events] == [T0 + datetime.timedelta(hours=2)]


def test_filtering_by_decision_id_lists_the_decision_and_its_outcome(traffic: Traffic, auditor: User) -> None:
    decision = traffic.route(traffic.support)
    traffic.route(traffic.support)
    traffic.report(traffic.support, decision, traffic.large)
    events = listed(signed_in(auditor), decision_id=decision)
    assert sorted(event.kind for event in events) == ["routing.decision", "routing.outcome"]
    assert {str(event.decision_id) for event in events} == {decision}


def test_filtering_by_policy_version_lists_only_decisions_under_it(traffic: Traffic, auditor: User) -> None:
    traffic.route(traffic.support)
    traffic.route(traffic.billing)
    events = decisions(listed(signed_in(auditor), policy="books", policy_version=1))
    assert [event.application_name for event in events] == ["Billing"]
    assert listed(signed_in(auditor), policy="books", policy_version=2) == []


def test_a_malformed_decision_id_is_a_form_error_and_lists_nothing(traffic: Traffic, auditor: User) -> None:
    traffic.route(traffic.support)
    response = signed_in(auditor).get(LIST, {"decision_id": "not-a-uuid"})
    assert response.status_code == 200
    assert "decision_id" in response.context["filter"].form.errors
    assert list(response.context["page"].object_list) == []
    assert b"Enter a valid UUID" in response.content


def test_the_list_is_newest_first_with_seal_numbers_or_unsealed(traffic: Traffic, auditor: User) -> None:
    traffic.route(traffic.support)
    seal_all()
    traffic.route(traffic.billing)
    response = signed_in(auditor).get(LIST)
    events = list(response.context["page"].object_list)
    assert events == sorted(events, key=lambda event: (event.occurred_at, event.pk), reverse=True)
    assert events[0].application_name == "Billing" and b"unsealed" in response.content
    assert events[1].seal.sequence > 0


def test_the_list_pages_by_fifty(traffic: Traffic, auditor: User) -> None:
    while AuditEvent.objects.count() <= 50:
        traffic.route(traffic.support)
    response = signed_in(auditor).get(LIST)
    assert len(response.context["page"].object_list) == 50
    assert response.context["page"].has_next()


def test_the_list_page_runs_the_same_queries_for_few_and_many_events(traffic: Traffic, auditor: User) -> None:
    client = signed_in(auditor)
    traffic.route(traffic.support)
    seal_all()
    client.get(LIST)  # warm the session and content-type caches

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(LIST).status_code == 200
        return len(queries.captured_queries)

    few = count()
    for _ in range(20):
        traffic.route(traffic.billing)
    seal_all()
    traffic.route(traffic.support)  # one unsealed among sealed ones
    assert count() == few
    assert few <= 10  # filters, page, count, session, user, and two for the ledger facts


def test_the_count_stops_at_the_cap_and_the_page_says_more_match(
    traffic: Traffic, auditor: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("audit.views.COUNT_CAP", 3)
    for _ in range(5):
        traffic.route(traffic.support)
    with CaptureQueriesContext(connection) as queries:
        response = signed_in(auditor).get(LIST, {"application": "support"})
    paginator = response.context["page"].paginator
    assert paginator.capped and paginator.count == 3
    assert "3+ match — narrow the filters or the time range to see the rest" in response.content.decode()
    # The database is asked for at most one row past the cap, never for every match.
    (count,) = [query["sql"] for query in queries.captured_queries if "COUNT(" in query["sql"].upper()]
    assert "LIMIT 4" in count


def test_pages_work_up_to_the_cap_and_stop_there(
    traffic: Traffic, auditor: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("audit.views.PAGE_SIZE", 2)
    monkeypatch.setattr("audit.views.COUNT_CAP", 5)
    for _ in range(7):
        traffic.route(traffic.support)
    newest = list(AuditEvent.objects.filter(application_name="Support").order_by("-occurred_at", "-id")[:5])
    client = signed_in(auditor)
    pages = [client.get(LIST, {"application": "support", "page": number}) for number in (1, 2, 3)]
    assert [event for page in pages for event in page.context["page"].object_list] == newest
    assert pages[1].context["page"].has_next() and not pages[2].context["page"].has_next()
    assert "Page 3 of 3+ · 5+ match" in pages[2].content.decode()
    beyond = client.get(LIST, {"application": "support", "page": "4"})
    assert beyond.context["page"].number == 3


def test_under_the_cap_the_page_shows_the_exact_count(
    traffic: Traffic, auditor: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("audit.views.PAGE_SIZE", 2)
    monkeypatch.setattr("audit.views.COUNT_CAP", 5)
    for _ in range(3):
        traffic.route(traffic.support)
    response = signed_in(auditor).get(LIST, {"application": "support", "page": "2"})
    page = response.context["page"]
    assert not page.paginator.capped and page.paginator.count == 3
    assert [len(page.object_list), page.has_next()] == [1, False]
    content = response.content.decode()
    assert "Page 2 of 2 · 3 in all" in content and "match — narrow" not in content


def test_the_kind_filter_offers_each_kind_that_occurs_once_in_order(traffic: Traffic, auditor: User) -> None:
    decision = traffic.route(traffic.support)
    traffic.report(traffic.support, decision, traffic.large)
    traffic.route(traffic.billing)
    response = signed_in(auditor).get(LIST)
    offered = [value for value, _ in response.context["filter"].form.fields["kind"].choices if value]
    # The plain DISTINCT is the oracle, ordered by the database's own collation.
    occurring = list(AuditEvent.objects.order_by("kind").values_list("kind", flat=True).distinct())
    assert {"routing.decision", "routing.outcome"} <= set(occurring)
    assert offered == occurring


def test_a_filtered_page_past_the_cap_runs_a_fixed_number_of_queries(
    traffic: Traffic, auditor: User, monkeypatch: pytest.MonkeyPatch, django_assert_num_queries: Any
) -> None:
    monkeypatch.setattr("audit.views.COUNT_CAP", 2)
    for _ in range(3):
        traffic.route(traffic.support)
    seal_all()
    client = signed_in(auditor)
    params = {"application": "support", "model_version": str(traffic.large.pk)}
    client.get(LIST, params)  # warm the session and content-type caches
    # Session, user, two for permissions, the capped count, the page (seals joined), the kinds,
    # two for the ledger facts, and the user's roles for the menu.
    with django_assert_num_queries(10):
        response = client.get(LIST, params)
    assert response.context["page"].paginator.capped


def test_a_decision_links_to_its_outcome_policy_version_and_model_version(traffic: Traffic, auditor: User) -> None:
    decision_id = traffic.route(traffic.support)
    traffic.report(traffic.support, decision_id, traffic.large)
    decision = AuditEvent.objects.get(kind="routing.decision", decision_id=decision_id)
    outcome = AuditEvent.objects.get(kind="routing.outcome", decision_id=decision_id)
    client = signed_in(auditor)
    page = client.get(reverse("audit:event-detail", args=[decision.pk])).content.decode()
    assert reverse("audit:event-detail", args=[outcome.pk]) in page
    assert reverse("policies:version-detail", args=["main", 1]) in page
    assert reverse("registry:version-detail", args=[traffic.large.pk]) in page
    back = client.get(reverse("audit:event-detail", args=[outcome.pk])).content.decode()
    assert reverse("audit:event-detail", args=[decision.pk]) in back


def test_a_decision_shows_the_approvals_of_its_policy_version(traffic: Traffic, auditor: User) -> None:
    decision_id = traffic.route(traffic.support)
    decision = AuditEvent.objects.get(kind="routing.decision", decision_id=decision_id)
    response = signed_in(auditor).get(reverse("audit:event-detail", args=[decision.pk]))
    reviews = list(response.context["policy_version"].reviews.all())
    assert [(review.reviewer_name, review.verdict) for review in reviews] == [("rob", "approve")]
    assert "Reviews of main v1" in response.content.decode()


def test_the_detail_shows_pretty_json_and_the_seal_once_sealed(traffic: Traffic, auditor: User) -> None:
    decision_id = traffic.route(traffic.support)
    decision = AuditEvent.objects.get(kind="routing.decision", decision_id=decision_id)
    client = signed_in(auditor)
    url = reverse("audit:event-detail", args=[decision.pk])
    assert "Not yet sealed" in client.get(url).content.decode()
    seal_all()
    page = client.get(url).content.decode()
    decision.refresh_from_db()
    assert decision.seal.hash in page and decision.seal.prev_hash in page
    assert json.dumps(decision.data, indent=2, sort_keys=True, ensure_ascii=False) in html.unescape(page)


@pytest.mark.parametrize(("role", "status"), [(ADMINISTRATOR, 200), (REVIEWER, 200), (AUDITOR, 200), ("none", 403)])
def test_every_role_reads_the_audit_pages_and_users_without_a_role_are_refused(
    personas: dict[str, User], role: str, status: int
) -> None:
    registry_services.create_object(DataClassification, data={"slug": "secret", "name": "Secret", "sensitivity": 9})
    event = AuditEvent.objects.latest("id")
    client = signed_in(personas[role])
    assert client.get(LIST).status_code == status
    assert client.get(reverse("audit:event-detail", args=[event.pk])).status_code == status


def test_anonymous_visitors_are_sent_to_sign_in(db: Any) -> None:
    response = Client().get(LIST)
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_nobody_can_post_to_the_audit_pages(administrator: User) -> None:
    registry_services.create_object(DataClassification, data={"slug": "secret", "name": "Secret", "sensitivity": 9})
    event = AuditEvent.objects.latest("id")
    client = signed_in(administrator)
    assert client.post(LIST).status_code == 405
    assert client.post(reverse("audit:event-detail", args=[event.pk])).status_code == 405


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_an_auditor_filters_the_log_in_a_browser_and_follows_a_decision_to_its_outcome(
    page: Any, administrator: User, reviewer: User, auditor: User, vocabulary: Any
) -> None:
    traffic = build_traffic(administrator, reviewer)
    traffic.route(traffic.support)
    decision_id = traffic.route(traffic.billing)
    traffic.report(traffic.billing, decision_id, traffic.small)
    outcome = AuditEvent.objects.get(kind="routing.outcome")
    seal_all()  # exports hold sealed events

    sign_in(page, "audrey")
    page.get_by_role("link", name="Audit log").click()
    page.get_by_label("Application").fill("Billing")
    page.get_by_label("Model version id").fill(str(traffic.small.pk))
    page.get_by_role("button", name="Filter").click()
    rows = page.locator("tbody tr")
    assert rows.count() == 2
    for text in rows.all_inner_texts():
        assert "Billing" in text and "acme/small/1" in text and "Support" not in text

    listed_url = page.url

    # The export of the filtered list holds exactly what the page listed, in both formats.
    for format in ("csv", "jsonl"):
        page.goto(listed_url)
        page.get_by_role("link", name="Export…").click()
        page.get_by_label("Format").select_option(format)
        with page.expect_download() as download:
            page.get_by_role("button", name="Export").click()
        exported = Path(download.value.path()).read_text()
        if format == "csv":
            rows = list(csv.DictReader(io.StringIO(exported)))
        else:
            rows = [json.loads(line) for line in exported.splitlines()]
        assert len(rows) == 2, format
        assert {row["application_name"] for row in rows} == {"Billing"}, format
        assert {str(row["model_version_id"]) for row in rows} == {str(traffic.small.pk)}, format

    page.goto(listed_url)
    page.get_by_role("row").filter(has_text="routing.decision").get_by_role("link", name="Details").click()
    page.get_by_role("heading", name="routing.decision").wait_for()
    page.get_by_role("link", name=f"Outcome event {outcome.pk}").click()
    page.wait_for_url(f"**{reverse('audit:event-detail', args=[outcome.pk])}")
    assert "routing.outcome" in page.get_by_role("heading", level=1).inner_text()


def test_the_ledger_page_shows_the_public_key_and_the_last_checkpoint(auditor: User) -> None:
    from audit.checkpoints import make_checkpoint, public_key_hex
    from audit.sealing import seal_all
    from audit.services import record_event

    record_event("test.happened")
    seal_all()
    make_checkpoint()
    client = Client()
    client.force_login(auditor)
    html = client.get(reverse("audit:event-list")).content.decode()
    assert public_key_hex() in html
    assert "Last signed checkpoint: sequence 1" in html
