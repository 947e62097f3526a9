"""The registry REST API: writes go through the services (rules, audit), reads filter and paginate."""

import datetime
import re
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from audit.models import AuditEvent
from registry import services
from registry.models import Capability, ComplianceCell, DataClassification, Lifecycle, Model, ModelVersion, Provider
from registry.tests.factories import make_model, make_provider, make_version

API = "/api/v1"


@pytest.fixture
def api(administrator: User, vocabulary: dict[str, Any]) -> APIClient:
    """An administrator's client: the role that may write."""
    client = APIClient()
    client.force_authenticate(administrator)
    return client


def version_payload(model: Model, **overrides: Any) -> dict[str, Any]:
    payload = {
        "model": model.pk,
        "label": "2025-01",
        "api_model_id": "acme-large-2025-01",
        "context_window": 200_000,
        "input_cost_per_mtok": "3.00",
        "output_cost_per_mtok": "15.00",
        "typical_latency_ms": 900,
        "regions": ["eu", "us"],
        "quality_scores": {"code": 82, "reasoning": 75},
    }
    payload.update(overrides)
    return payload


# Create, read, update, delete


def test_provider_is_created_read_updated_and_deleted_with_slug_lists(api: APIClient) -> None:
    created = api.post(
        f"{API}/providers/",
        {"name": "Acme", "slug": "acme", "kind": "anthropic", "regions": ["eu"], "certifications": ["soc2"]},
        format="json",
    )
    assert created.status_code == 201, created.json()
    provider_id = created.json()["id"]
    assert created.json()["regions"] == ["eu"]
    assert created.json()["certifications"] == ["soc2"]

    read = api.get(f"{API}/providers/{provider_id}/")
    assert read.json()["name"] == "Acme"
    assert read.json()["status"] == "active"

    updated = api.patch(
        f"{API}/providers/{provider_id}/", {"regions": ["eu", "us"], "status": "degraded"}, format="json"
    )
    assert updated.status_code == 200, updated.json()
    assert updated.json()["regions"] == ["eu", "us"]
    assert Provider.objects.get(pk=provider_id).status == Provider.Status.DEGRADED

    deleted = api.delete(f"{API}/providers/{provider_id}/")
    assert deleted.status_code == 204
    assert not Provider.objects.filter(pk=provider_id).exists()


def test_provider_credentials_must_be_an_environment_variable_name(api: APIClient) -> None:
    response = api.post(
        f"{API}/providers/",
        {"name": "Acme", "slug": "acme", "kind": "anthropic", "credentials_env": "sk-live-123"},
        format="json",
    )
    assert response.status_code == 400
    assert "credentials_env" in response.json()


def test_model_is_created_with_its_provider_and_capabilities_by_slug(api: APIClient) -> None:
    provider = make_provider(slug="acme", name="Acme")
    response = api.post(
        f"{API}/models/",
        {
            "provider": "acme",
            "name": "Large",
            "slug": "large",
            "tier": "frontier",
            "capabilities": ["code", "reasoning"],
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["provider"] == "acme"
    assert body["provider_name"] == "Acme"
    assert body["capabilities"] == ["code", "reasoning"]
    model = Model.objects.get(pk=body["id"])
    assert model.provider == provider

    renamed = api.patch(f"{API}/models/{model.pk}/", {"family": "large-2025"}, format="json")
    assert renamed.status_code == 200
    assert renamed.json()["family"] == "large-2025"
    assert api.delete(f"{API}/models/{model.pk}/").status_code == 204


def test_model_slug_twice_for_one_provider_is_refused(api: APIClient) -> None:
    model = make_model(slug="large")
    response = api.post(
        f"{API}/models/",
        {"provider": model.provider.slug, "name": "Other", "slug": "large", "tier": "economy"},
        format="json",
    )
    assert response.status_code == 400
    assert "already exists" in str(response.json())


def test_version_is_created_as_a_candidate_whatever_lifecycle_is_sent(api: APIClient) -> None:
    model = make_model()
    response = api.post(f"{API}/model-versions/", version_payload(model, lifecycle="approved"), format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["lifecycle"] == "candidate"
    assert response.json()["approved_at"] is None
    assert ModelVersion.objects.get(pk=response.json()["id"]).lifecycle == Lifecycle.CANDIDATE


def test_version_representation_names_related_objects_and_shows_costs_as_decimal_strings(api: APIClient) -> None:
    provider = make_provider(slug="acme")
    model = make_model(provider, name="Large")
    soon = timezone.localdate() + datetime.timedelta(days=20)
    version = make_version(model, lifecycle="approved", regions=("eu",), label="2025-01", retires_on=soon)

    body = api.get(f"{API}/model-versions/{version.pk}/").json()

    assert body["model"] == model.pk
    assert body["model_name"] == "Large"
    assert body["provider"] == "acme"
    assert body["input_cost_per_mtok"] == "1.5000"
    assert body["output_cost_per_mtok"] == "6.0000"
    assert body["regions"] == ["eu"]
    assert body["quality_scores"] == {"code": 70}
    assert body["lifecycle"] == "approved"
    assert body["approved_at"] is not None
    assert body["successor"] is None
    assert body["is_frozen"] is True
    assert body["lifecycle_warnings"] == [f"Retirement planned on {soon.isoformat()}"]
    assert body["url"] in (None, f"/registry/versions/{version.pk}/")


def test_candidate_version_technical_fields_can_be_edited(api: APIClient) -> None:
    version = make_version()
    response = api.patch(
        f"{API}/model-versions/{version.pk}/", {"input_cost_per_mtok": "2.25", "regions": ["us"]}, format="json"
    )
    assert response.status_code == 200, response.json()
    assert response.json()["input_cost_per_mtok"] == "2.2500"
    assert response.json()["regions"] == ["us"]


def test_version_is_deleted(api: APIClient) -> None:
    version = make_version()
    assert api.delete(f"{API}/model-versions/{version.pk}/").status_code == 204
    assert not ModelVersion.objects.filter(pk=version.pk).exists()


# Lifecycle


def test_transition_approves_a_candidate_and_returns_the_version(api: APIClient) -> None:
    version = make_version()
    response = api.post(
        f"{API}/model-versions/{version.pk}/transition/", {"to": "approved", "reason": "Evaluated"}, format="json"
    )
    assert response.status_code == 200, response.json()
    assert response.json()["id"] == version.pk
    assert response.json()["lifecycle"] == "approved"
    assert response.json()["approved_at"] is not None
    assert response.json()["is_frozen"] is True


def test_transition_that_skips_a_step_is_refused_naming_the_allowed_steps(api: APIClient) -> None:
    version = make_version()
    response = api.post(f"{API}/model-versions/{version.pk}/transition/", {"to": "deprecated"}, format="json")
    assert response.status_code == 400
    assert response.json() == {
        "lifecycle": ["A candidate version cannot become deprecated; allowed: approved, retired."]
    }
    version.refresh_from_db()
    assert version.lifecycle == Lifecycle.CANDIDATE


def test_transition_to_an_unknown_lifecycle_is_refused_naming_the_field(api: APIClient) -> None:
    version = make_version()
    response = api.post(f"{API}/model-versions/{version.pk}/transition/", {"to": "launched"}, format="json")
    assert response.status_code == 400
    assert "to" in response.json()


def test_lifecycle_sent_in_an_edit_is_ignored(api: APIClient) -> None:
    version = make_version()
    response = api.patch(f"{API}/model-versions/{version.pk}/", {"lifecycle": "approved"}, format="json")
    assert response.status_code == 200
    assert response.json()["lifecycle"] == "candidate"


def test_editing_an_approved_versions_cost_is_refused_naming_the_field(api: APIClient) -> None:
    version = make_version(lifecycle="approved")
    response = api.patch(f"{API}/model-versions/{version.pk}/", {"input_cost_per_mtok": "0.50"}, format="json")
    assert response.status_code == 400
    assert list(response.json()) == ["input_cost_per_mtok"]
    assert "create a new version" in response.json()["input_cost_per_mtok"][0]
    version.refresh_from_db()
    assert version.input_cost_per_mtok == Decimal("1.5")


def test_editing_an_approved_versions_notes_is_allowed(api: APIClient) -> None:
    version = make_version(lifecycle="approved")
    response = api.patch(f"{API}/model-versions/{version.pk}/", {"notes": "Preferred for code."}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["notes"] == "Preferred for code."


def test_resending_an_approved_version_unchanged_is_allowed(api: APIClient) -> None:
    version = make_version(lifecycle="approved")
    body = api.get(f"{API}/model-versions/{version.pk}/").json()
    response = api.put(f"{API}/model-versions/{version.pk}/", {**body, "notes": "Checked."}, format="json")
    assert response.status_code == 200, response.json()


# Shape and business rules


@pytest.mark.parametrize("field", ["input_cost_per_mtok", "output_cost_per_mtok"])
def test_negative_cost_is_refused_naming_the_field(api: APIClient, field: str) -> None:
    response = api.post(f"{API}/model-versions/", version_payload(make_model(), **{field: "-1"}), format="json")
    assert response.status_code == 400
    assert response.json() == {field: ["Ensure this value is greater than or equal to 0."]}


def test_unknown_region_is_refused_naming_regions(api: APIClient) -> None:
    response = api.post(f"{API}/model-versions/", version_payload(make_model(), regions=["eu", "mars"]), format="json")
    assert response.status_code == 400
    assert list(response.json()) == ["regions"]
    assert "mars" in response.json()["regions"][0]


def test_version_hosted_nowhere_is_refused(api: APIClient) -> None:
    response = api.post(f"{API}/model-versions/", version_payload(make_model(), regions=[]), format="json")
    assert response.status_code == 400
    assert response.json() == {"regions": ["Name at least one region the version is hosted in."]}


def test_duplicate_label_for_the_same_model_is_refused(api: APIClient) -> None:
    version = make_version(label="2025-01")
    response = api.post(f"{API}/model-versions/", version_payload(version.model, label="2025-01"), format="json")
    assert response.status_code == 400
    assert response.json() == {"non_field_errors": ["Model version with this Model and Version label already exists."]}


def test_same_label_for_another_model_is_allowed(api: APIClient) -> None:
    make_version(label="2025-01")
    response = api.post(f"{API}/model-versions/", version_payload(make_model(), label="2025-01"), format="json")
    assert response.status_code == 201, response.json()


def test_quality_score_for_an_unknown_capability_is_refused(api: APIClient) -> None:
    payload = version_payload(make_model(), quality_scores={"code": 80, "telepathy": 99})
    response = api.post(f"{API}/model-versions/", payload, format="json")
    assert response.status_code == 400
    assert list(response.json()) == ["quality_scores"]
    assert "Unknown capability 'telepathy'" in response.json()["quality_scores"][0]


def test_deleting_a_provider_still_used_by_a_model_is_refused_with_the_reason(api: APIClient) -> None:
    model = make_model(make_provider(name="Acme"), name="Large")
    response = api.delete(f"{API}/providers/{model.provider.pk}/")
    assert response.status_code == 400
    assert response.json() == {"non_field_errors": ["Acme is still used by: Acme Large. Remove those first."]}
    assert Provider.objects.filter(pk=model.provider.pk).exists()


# Lists: pagination, filters, queries


def test_lists_are_paginated_and_the_client_may_choose_the_page_size(api: APIClient) -> None:
    for _ in range(3):
        make_provider()
    first = api.get(f"{API}/providers/", {"page_size": 2}).json()
    assert first["count"] == 3
    assert len(first["results"]) == 2
    assert first["previous"] is None
    second = api.get(first["next"]).json()
    assert len(second["results"]) == 1
    assert second["next"] is None


@pytest.fixture
def two_versions(vocabulary: dict[str, Any]) -> None:
    """alpha: north's frontier model, approved, in eu; beta: south's economy model, candidate, in us."""
    north = make_model(make_provider(slug="north", name="North"), tier=Model.Tier.FRONTIER)
    north.capabilities.add(Capability.objects.get(slug="reasoning"))
    make_version(north, label="alpha", lifecycle="approved", regions=("eu",))
    south = make_model(make_provider(slug="south", name="South"), tier=Model.Tier.ECONOMY)
    make_version(south, label="beta", regions=("us",))


@pytest.mark.parametrize(
    ("query", "labels"),
    [
        ({"provider": "north"}, ["alpha"]),
        ({"tier": "economy"}, ["beta"]),
        ({"lifecycle": "approved"}, ["alpha"]),
        ({"region": "us"}, ["beta"]),
        ({"capability": "reasoning"}, ["alpha"]),
        ({"q": "south"}, ["beta"]),
        ({"ordering": "label"}, ["alpha", "beta"]),
        ({"ordering": "-label"}, ["beta", "alpha"]),
    ],
)
def test_versions_are_filtered_by_slug(
    api: APIClient, two_versions: None, query: dict[str, str], labels: list[str]
) -> None:
    response = api.get(f"{API}/model-versions/", query)
    assert response.status_code == 200
    assert [row["label"] for row in response.json()["results"]] == labels


def test_filtering_by_an_unknown_provider_is_refused_naming_the_filter(api: APIClient, two_versions: None) -> None:
    response = api.get(f"{API}/model-versions/", {"provider": "nobody"})
    assert response.status_code == 400
    assert "provider" in response.json()


def test_version_list_queries_do_not_grow_with_the_rows(
    api: APIClient, django_assert_max_num_queries: Any, two_versions: None
) -> None:
    with django_assert_max_num_queries(10) as few:
        api.get(f"{API}/model-versions/")
    for _ in range(5):
        make_version()
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = api.get(f"{API}/model-versions/")
    assert response.json()["count"] == 7


# Compliance


def decide(version: ModelVersion, classification: str, decision: str = "approved", **extra: Any) -> ComplianceCell:
    return services.set_compliance(
        model_version=version,
        classification=DataClassification.objects.get(slug=classification),
        decision=decision,
        reason="Reviewed the DPA.",
        evidence="DPA signed",
        **extra,
    )


def test_compliance_cells_are_filtered_by_version_and_classification_slug(api: APIClient) -> None:
    first, second = make_version(), make_version()
    decide(first, "internal")
    decide(first, "pii", "denied")
    decide(second, "internal")

    by_version = api.get(f"{API}/compliance/", {"model_version": first.pk}).json()["results"]
    assert sorted(cell["classification"] for cell in by_version) == ["internal", "pii"]

    both = api.get(f"{API}/compliance/", {"model_version": str(first.pk), "classification": "pii"}).json()["results"]
    assert [(cell["model_version"], cell["decision"]) for cell in both] == [(first.pk, "denied")]

    by_decision = api.get(f"{API}/compliance/", {"decision": "approved"}).json()["results"]
    assert sorted(cell["model_version"] for cell in by_decision) == [first.pk, second.pk]


def test_an_expired_approval_is_effectively_denied(api: APIClient) -> None:
    version = make_version(regions=("eu", "us"))
    today = timezone.localdate()
    decide(
        version,
        "confidential",
        regions=version.regions.filter(slug="eu"),
        expires_on=today - datetime.timedelta(days=1),
        decided_at=timezone.now() - datetime.timedelta(days=60),
    )

    [cell] = api.get(f"{API}/compliance/", {"model_version": version.pk}).json()["results"]

    assert cell["decision"] == "approved"
    assert cell["effective_decision"] == "denied"
    assert cell["expired"] is True
    assert cell["regions"] == ["eu"]
    assert cell["model_version_name"] == str(version)
    assert cell["decided_by"] == "system"
    assert cell["evidence"] == "DPA signed"


def test_compliance_list_carries_the_matrix_revision(api: APIClient) -> None:
    version = make_version()
    decide(version, "public")
    cell = decide(version, "internal")
    response = api.get(f"{API}/compliance/")
    assert response["X-Compliance-Revision"] == str(cell.revision)
    assert response["X-Compliance-Revision"] == "2"


def test_compliance_cannot_be_written_through_the_api(api: APIClient) -> None:
    cell = decide(make_version(), "public")
    assert api.post(f"{API}/compliance/", {}, format="json").status_code == 405
    assert api.patch(f"{API}/compliance/{cell.pk}/", {"decision": "denied"}, format="json").status_code == 405
    assert api.delete(f"{API}/compliance/{cell.pk}/").status_code == 405


# Authentication and audit


def test_a_token_authenticates_api_calls(administrator: User) -> None:
    token = Token.objects.create(user=administrator)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    response = client.post(f"{API}/regions/", {"slug": "apac", "name": "Asia-Pacific"}, format="json")
    assert response.status_code == 201
    assert AuditEvent.objects.get(kind="region.created").actor_name == administrator.username


def test_a_wrong_token_is_refused(db: Any) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-key")
    assert client.get(f"{API}/providers/").status_code == 401


@pytest.mark.parametrize("path", ["", "providers/", "model-versions/", "compliance/"])
def test_anonymous_callers_get_401(db: Any, path: str) -> None:
    response = APIClient().get(f"{API}/{path}")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Token")


def test_every_api_write_records_an_audit_event_by_the_api_user(api: APIClient, administrator: User) -> None:
    provider = api.post(f"{API}/providers/", {"name": "Acme", "slug": "acme", "kind": "anthropic"}, format="json")
    model = api.post(
        f"{API}/models/", {"provider": "acme", "name": "Large", "slug": "large", "tier": "frontier"}, format="json"
    )
    version = api.post(
        f"{API}/model-versions/", version_payload(Model.objects.get(pk=model.json()["id"])), format="json"
    )
    version_url = f"{API}/model-versions/{version.json()['id']}/"
    api.patch(version_url, {"notes": "Fast."}, format="json")
    api.delete(version_url)
    api.delete(f"{API}/models/{model.json()['id']}/")
    api.patch(f"{API}/providers/{provider.json()['id']}/", {"status": "disabled"}, format="json")
    api.delete(f"{API}/providers/{provider.json()['id']}/")
    other = make_version()
    api.post(f"{API}/model-versions/{other.pk}/transition/", {"to": "retired", "reason": "Withdrawn."}, format="json")

    events = AuditEvent.objects.filter(actor_name=administrator.username).order_by("id")
    assert [event.kind for event in events] == [
        "provider.created",
        "model.created",
        "modelversion.created",
        "modelversion.updated",
        "modelversion.deleted",
        "model.deleted",
        "provider.updated",
        "provider.deleted",
        "modelversion.lifecycle",
    ]
    assert events.get(kind="modelversion.lifecycle").reason == "Withdrawn."


def test_only_candidate_versions_can_be_deleted(api: APIClient) -> None:
    version = make_version(lifecycle="approved")
    response = api.delete(f"{API}/model-versions/{version.pk}/")
    assert response.status_code == 400
    assert "only candidates can be deleted" in response.json()["non_field_errors"][0]
    assert ModelVersion.objects.filter(pk=version.pk).exists()


def test_an_edit_that_changes_nothing_records_no_event(api: APIClient) -> None:
    provider = make_provider()
    api.patch(f"{API}/providers/{provider.pk}/", {"name": provider.name}, format="json")
    assert not AuditEvent.objects.filter(kind="provider.updated").exists()


def test_a_refused_write_records_no_event(api: APIClient) -> None:
    version = make_version(lifecycle="approved")
    before = AuditEvent.objects.count()
    api.patch(f"{API}/model-versions/{version.pk}/", {"context_window": 1}, format="json")
    assert AuditEvent.objects.count() == before


# Schema and documentation


def test_schema_is_served_to_a_signed_in_user(auditor: User) -> None:
    client = Client()
    client.force_login(auditor)
    response = client.get("/api/schema/")
    assert response.status_code == 200
    assert b"/api/v1/model-versions/{id}/transition/" in response.content


def test_api_docs_load_their_assets_from_our_own_static_files(auditor: User) -> None:
    client = Client()
    client.force_login(auditor)
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assets = re.findall(r'<(?:script|link)[^>]+(?:src|href)="([^"]+)"', html)
    assert assets
    assert all(asset.startswith("/static/") for asset in assets), assets
    assert "cdn" not in html.lower()
