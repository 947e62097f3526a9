"""The registry and compliance pages: who may see and change what, and what people are told."""

import datetime
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from policies.models import ComplianceRequest
from registry import services
from registry.models import ComplianceCell, Counter, DataClassification, ModelVersion, Region
from registry.tests.factories import make_model, make_provider, make_version

pytestmark = pytest.mark.django_db


@pytest.fixture
def version(vocabulary: dict[str, Any]) -> ModelVersion:
    return make_version(lifecycle="approved")


def client_for(user: User | None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def read_pages(version: ModelVersion) -> list[str]:
    return [
        reverse("home"),
        reverse("registry:version-list"),
        reverse("registry:version-detail", args=[version.pk]),
        reverse("registry:provider-list"),
        reverse("registry:provider-detail", args=[version.model.provider_id]),
        reverse("registry:model-detail", args=[version.model_id]),
        reverse("registry:compliance"),
    ]


def write_pages(version: ModelVersion) -> list[str]:
    return [
        reverse("registry:version-create"),
        reverse("registry:version-update", args=[version.pk]),
        reverse("registry:version-transition", args=[version.pk]) + "?to=deprecated",
        reverse("registry:provider-create"),
        reverse("registry:provider-update", args=[version.model.provider_id]),
        reverse("registry:model-create"),
        reverse("registry:model-update", args=[version.model_id]),
        reverse("registry:compliance-cell", args=[version.pk, "pii"]),
    ]


@pytest.mark.parametrize(
    ("role", "read", "write"),
    [("administrator", 200, 200), ("reviewer", 200, 403), ("auditor", 200, 403), ("none", 403, 403)],
)
def test_role_matrix_for_pages(
    personas: dict[str, User], version: ModelVersion, role: str, read: int, write: int
) -> None:
    client = client_for(personas[role])
    for url in read_pages(version):
        assert client.get(url).status_code == read, url
    for url in write_pages(version):
        assert client.get(url).status_code == write, url
        assert client.post(url, {}).status_code in ({write} if write == 403 else {200, 400, 302}), url


def test_read_only_roles_cannot_change_anything_by_post(personas: dict[str, User], version: ModelVersion) -> None:
    before = AuditEvent.objects.count()
    for role in ("reviewer", "auditor", "none"):
        client = client_for(personas[role])
        client.post(reverse("registry:version-transition", args=[version.pk]), {"to": "deprecated"})
        client.post(
            reverse("registry:compliance-cell", args=[version.pk, "pii"]),
            {"decision": "approved", "reason": "x", "evidence": "y", "confirm": "yes"},
        )
    assert AuditEvent.objects.count() == before
    version.refresh_from_db()
    assert version.lifecycle == "approved"
    assert not ComplianceCell.objects.exists()


def test_anonymous_visitor_is_sent_to_login(version: ModelVersion) -> None:
    for url in [*read_pages(version), *write_pages(version)]:
        response = Client().get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("login")), url


def test_read_only_roles_see_no_edit_controls(personas: dict[str, User], version: ModelVersion) -> None:
    for role in ("reviewer", "auditor"):
        client = client_for(personas[role])
        for url in read_pages(version):
            html = client.get(url).content.decode()
            assert "/edit/" not in html, (role, url)
            assert "/new/" not in html, (role, url)
            assert "/transition/" not in html, (role, url)
            assert ">Change<" not in html, (role, url)


def version_form(model_id: int, **overrides: Any) -> dict[str, Any]:
    data = {
        "model": model_id,
        "label": "2025-06",
        "api_model_id": "acme-large-2025-06",
        "context_window": "200000",
        "input_cost_per_mtok": "3.00",
        "output_cost_per_mtok": "15.00",
        "typical_latency_ms": "900",
        "regions": [Region.objects.get(slug="eu").pk],
        "quality_scores": '{"code": 80}',
    }
    data.update(overrides)
    return data


def test_administrator_creates_a_candidate_version(administrator: User, vocabulary: dict[str, Any]) -> None:
    model = make_model()
    response = client_for(administrator).post(reverse("registry:version-create"), version_form(model.pk))
    version = ModelVersion.objects.get(label="2025-06")
    assert response.status_code == 302
    assert response["Location"] == version.get_absolute_url()
    assert version.lifecycle == "candidate"
    assert version.input_cost_per_mtok == Decimal("3.00")
    assert [region.slug for region in version.regions.all()] == ["eu"]
    event = AuditEvent.objects.get(kind="modelversion.created")
    assert event.actor_name == administrator.username
    assert event.after["api_model_id"] == "acme-large-2025-06"


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"input_cost_per_mtok": "-1"}, "input_cost_per_mtok", "greater than or equal to 0"),
        ({"regions": ["9999"]}, "regions", "Select a valid choice"),
        ({"regions": []}, "regions", "This field is required"),
        ({"quality_scores": '{"telepathy": 50}'}, "quality_scores", "Unknown capability"),
        ({"quality_scores": '{"code": 140}'}, "quality_scores", "from 0 to 100"),
        ({"context_window": "0"}, "context_window", "greater than or equal to 1"),
    ],
)
def test_version_form_refuses_bad_input_with_a_message(
    administrator: User, vocabulary: dict[str, Any], overrides: dict[str, Any], field: str, message: str
) -> None:
    model = make_model()
    response = client_for(administrator).post(reverse("registry:version-create"), version_form(model.pk, **overrides))
    assert response.status_code == 200
    assert message in " ".join(response.context["form"].errors[field])
    assert not ModelVersion.objects.exists()


def test_duplicate_version_label_is_refused(administrator: User, version: ModelVersion) -> None:
    response = client_for(administrator).post(
        reverse("registry:version-create"), version_form(version.model_id, label=version.label)
    )
    assert response.status_code == 200
    assert "already exists" in str(response.context["form"].errors)
    assert ModelVersion.objects.count() == 1


def test_frozen_version_form_ignores_technical_fields_but_saves_notes(
    administrator: User, version: ModelVersion
) -> None:
    url = reverse("registry:version-update", args=[version.pk])
    page = client_for(administrator).get(url).content.decode()
    assert 'name="input_cost_per_mtok"' in page and "disabled" in page
    data = version_form(version.model_id, label=version.label, input_cost_per_mtok="0.01", notes="Good at SQL.")
    response = client_for(administrator).post(url, data)
    assert response.status_code == 302
    version.refresh_from_db()
    assert version.notes == "Good at SQL."
    assert version.input_cost_per_mtok == Decimal("1.5000")


def test_new_version_from_an_approved_one_is_prefilled(administrator: User, version: ModelVersion) -> None:
    response = client_for(administrator).get(reverse("registry:version-create") + f"?from={version.pk}")
    form = response.context["form"]
    assert form.initial["api_model_id"] == version.api_model_id
    assert form.initial["model"] == version.model_id
    assert form.initial["label"] == ""


def test_transition_needs_confirmation_then_applies(administrator: User, version: ModelVersion) -> None:
    client = client_for(administrator)
    url = reverse("registry:version-transition", args=[version.pk])
    confirm = client.get(url + "?to=deprecated")
    assert b"Yes, mark deprecated" in confirm.content
    version.refresh_from_db()
    assert version.lifecycle == "approved"
    response = client.post(url, {"to": "deprecated", "reason": "Successor is out."})
    assert response.status_code == 302
    version.refresh_from_db()
    assert version.lifecycle == "deprecated"
    assert version.deprecated_at is not None
    assert AuditEvent.objects.get(kind="modelversion.lifecycle", reason="Successor is out.")


def test_disallowed_transition_is_a_400_with_the_allowed_steps(administrator: User, version: ModelVersion) -> None:
    response = client_for(administrator).post(
        reverse("registry:version-transition", args=[version.pk]), {"to": "candidate"}
    )
    assert response.status_code == 400
    assert b"allowed: deprecated" in response.content


def test_compliance_cell_change_asks_for_confirmation_and_reason(
    administrator: User, reviewer: User, version: ModelVersion
) -> None:
    """An approval widens the matrix: confirmed, it goes to review, and applies once a reviewer approves."""
    client = client_for(administrator)
    url = reverse("registry:compliance-cell", args=[version.pk, "pii"])
    eu = Region.objects.get(slug="eu")
    data = {"decision": "approved", "regions": [eu.pk], "evidence": "DPA signed 2026-01", "reason": "Legal review"}

    no_reason = client.post(url, {**data, "reason": ""})
    assert no_reason.status_code == 400
    assert "reason" in no_reason.context["form"].errors

    review = client.post(url, data)
    assert review.status_code == 200
    assert b"Goes to review." in review.content and b"Send for review" in review.content
    assert not ComplianceCell.objects.exists()

    revision = services.current(Counter.COMPLIANCE_REVISION)
    sent = client.post(url, {**data, "confirm": "yes"})
    request = ComplianceRequest.objects.get()
    assert sent.status_code == 302
    assert sent["Location"] == reverse("policies:compliance-request", args=[request.pk])
    assert not ComplianceCell.objects.exists()
    assert services.current(Counter.COMPLIANCE_REVISION) == revision

    approved = client_for(reviewer).post(sent["Location"], {"verdict": "approve", "comment": "DPA checked"})
    assert approved.status_code == 302
    cell = ComplianceCell.objects.get()
    assert cell.decision == "approved"
    assert cell.region_slugs() == ["eu"]
    assert cell.decided_by_name == reviewer.username
    assert cell.revision == revision + 1
    assert services.current(Counter.COMPLIANCE_REVISION) == revision + 1


def test_approval_without_evidence_is_refused_on_the_form(administrator: User, version: ModelVersion) -> None:
    url = reverse("registry:compliance-cell", args=[version.pk, "pii"])
    response = client_for(administrator).post(url, {"decision": "approved", "reason": "ok", "confirm": "yes"})
    assert response.status_code == 400
    assert "evidence" in response.context["form"].errors
    assert not ComplianceCell.objects.exists()


def test_matrix_shows_missing_as_denied_and_expired_as_expired(auditor: User, version: ModelVersion) -> None:
    pii = DataClassification.objects.get(slug="pii")
    phi = DataClassification.objects.get(slug="phi")
    long_ago = timezone.now() - datetime.timedelta(days=400)
    services.set_compliance(
        model_version=version,
        classification=phi,
        decision="approved",
        reason="BAA",
        evidence="BAA 2025",
        decided_at=long_ago,
        expires_on=timezone.localdate() - datetime.timedelta(days=3),
    )
    services.set_compliance(
        model_version=version, classification=pii, decision="approved", reason="DPA", evidence="DPA"
    )
    response = client_for(auditor).get(reverse("registry:compliance"))
    (row_version, cells) = response.context["rows"][0]
    by_slug = {classification.slug: cell for classification, cell in cells}
    assert row_version == version
    assert by_slug["public"] is None
    assert by_slug["phi"].effective_decision() == "denied"
    assert by_slug["pii"].effective_decision() == "approved"
    html = response.content.decode()
    assert "Expired" in html and "no decision, denied" in html


def test_registry_list_filters(auditor: User, vocabulary: dict[str, Any]) -> None:
    frontier = make_model(make_provider(name="Acme", slug="acme"), tier="frontier", name="Acme Large")
    economy = make_model(tier="economy", name="Tiny")
    large = make_version(frontier, lifecycle="approved", regions=("eu",))
    tiny = make_version(economy, regions=("us",))
    client = client_for(auditor)

    def listed(query: str) -> set[int]:
        return {v.pk for v in client.get(reverse("registry:version-list") + query).context["page"]}

    assert listed("") == {large.pk, tiny.pk}
    assert listed("?tier=frontier") == {large.pk}
    assert listed("?provider=acme") == {large.pk}
    assert listed("?lifecycle=candidate") == {tiny.pk}
    assert listed("?region=us") == {tiny.pk}
    assert listed("?q=acme+large") == {large.pk}
    assert client.get(reverse("registry:version-list") + "?tier=gold").status_code == 200


def test_version_page_warns_of_planned_retirement(auditor: User, version: ModelVersion) -> None:
    services.update_version(version, data={"retires_on": timezone.localdate() + datetime.timedelta(days=20)})
    html = client_for(auditor).get(version.get_absolute_url()).content.decode()
    assert "Retirement planned on" in html


def test_version_history_includes_its_compliance_decisions(auditor: User, version: ModelVersion) -> None:
    services.set_compliance(
        model_version=version,
        classification=DataClassification.objects.get(slug="pii"),
        decision="denied",
        reason="No DPA yet",
    )
    response = client_for(auditor).get(version.get_absolute_url())
    kinds = [event.kind for event in response.context["history"]]
    assert kinds[0] == "compliance.changed"
    assert "modelversion.created" in kinds and "modelversion.lifecycle" in kinds
    assert b"No DPA yet" in response.content


@pytest.mark.parametrize("url_name", ["registry:version-list", "registry:compliance", "home"])
def test_list_pages_use_a_fixed_number_of_queries(
    auditor: User, vocabulary: dict[str, Any], django_assert_max_num_queries: Any, url_name: str
) -> None:
    """Ten times the versions must not mean more queries (no N+1 on the busiest pages)."""
    client = client_for(auditor)
    pii = DataClassification.objects.get(slug="pii")

    def add_versions(count: int) -> None:
        for _ in range(count):
            version = make_version(lifecycle="approved", retires_on=timezone.localdate() + datetime.timedelta(days=9))
            services.set_compliance(
                model_version=version,
                classification=pii,
                decision="approved",
                reason="ok",
                evidence="DPA",
                regions=Region.objects.filter(slug="eu"),
                expires_on=timezone.localdate() + datetime.timedelta(days=5),
            )

    add_versions(2)
    with CaptureQueriesContext(connection) as few:
        assert client.get(reverse(url_name)).status_code == 200
    add_versions(20)
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert client.get(reverse(url_name)).status_code == 200


def test_filters_speak_plainly(auditor: User, vocabulary: dict[str, Any]) -> None:
    html = client_for(auditor).get(reverse("registry:version-list")).content.decode()
    for label in ("Provider", "Tier", "Capability", "Lifecycle", "Region"):
        assert f">{label}:</label>" in html
    assert "---------" not in html
    assert ">Any</option>" in html
