"""Widening the compliance matrix through the pages: the matrix edit sends it to review, a reviewer
decides on the request's page; narrowing still applies at once."""

import datetime
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from policies import services
from policies.models import ComplianceRequest
from registry import services as registry_services
from registry.models import ComplianceCell, Counter, DataClassification, ModelVersion, Region
from registry.tests.factories import make_version

pytestmark = pytest.mark.django_db
APPLIED, PENDING, REJECTED = (
    ComplianceRequest.State.APPLIED,
    ComplianceRequest.State.PENDING,
    ComplianceRequest.State.REJECTED,
)


@pytest.fixture
def version(vocabulary: dict[str, Any]) -> ModelVersion:
    return make_version(lifecycle="approved")


@pytest.fixture
def pii(vocabulary: dict[str, Any]) -> DataClassification:
    return DataClassification.objects.get(slug="pii")


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def cell_url(version: ModelVersion) -> str:
    return reverse("registry:compliance-cell", args=[version.pk, "pii"])


def request_url(change: ComplianceRequest) -> str:
    return reverse("policies:compliance-request", args=[change.pk])


def approve_in_eu(version: ModelVersion, pii: DataClassification) -> ComplianceCell:
    """A cell approved for the EU only, set directly: the starting point for narrowing and widening."""
    return registry_services.set_compliance(
        model_version=version,
        classification=pii,
        decision="approved",
        reason="DPA for the EU",
        evidence="DPA 2026",
        regions=Region.objects.filter(slug="eu"),
    )


def request_widening(version: ModelVersion, pii: DataClassification, actor: User) -> ComplianceRequest:
    change = services.change_compliance(
        model_version=version,
        classification=pii,
        decision="approved",
        reason="Legal approved PII processing",
        evidence="DPA signed 2026-01",
        actor=actor,
    )
    assert isinstance(change, ComplianceRequest)
    return change


def test_widening_on_the_matrix_page_creates_a_request_and_leaves_the_cell(
    administrator: User, version: ModelVersion
) -> None:
    client = client_for(administrator)
    data = {"decision": "approved", "evidence": "DPA signed 2026-01", "reason": "Legal review"}
    revision = registry_services.current(Counter.COMPLIANCE_REVISION)

    confirm = client.post(cell_url(version), data)
    assert confirm.status_code == 200
    html = confirm.content.decode()
    assert "Goes to review." in html and "Send for review" in html and "Takes effect at once" not in html

    done = client.post(cell_url(version), {**data, "confirm": "yes"}, follow=True)

    change = ComplianceRequest.objects.get()
    assert done.redirect_chain == [(request_url(change), 302)]
    assert (change.state, change.decision, change.requested_by, change.reason) == (
        PENDING,
        "approved",
        administrator,
        "Legal review",
    )
    assert not ComplianceCell.objects.exists()
    assert registry_services.current(Counter.COMPLIANCE_REVISION) == revision
    page = done.content.decode()
    assert "Sent for review:" in page and "needs approval by a reviewer" in page
    assert "Pending review" in page and "Record verdict" not in page
    event = AuditEvent.objects.get(kind="compliance.requested")
    assert (event.actor_name, event.object_id, event.reason) == ("alice", str(change.pk), "Legal review")


def test_narrowing_on_the_matrix_page_applies_at_once(
    administrator: User, version: ModelVersion, pii: DataClassification
) -> None:
    cell = approve_in_eu(version, pii)
    client = client_for(administrator)
    data = {"decision": "denied", "reason": "DPA withdrawn"}

    confirm = client.post(cell_url(version), data).content.decode()
    assert "Takes effect at once." in confirm and "Confirm change" in confirm and "Goes to review" not in confirm

    done = client.post(cell_url(version), {**data, "confirm": "yes"})

    assert done.status_code == 302 and done["Location"].startswith(reverse("registry:compliance"))
    changed = ComplianceCell.objects.get()
    assert changed.decision == "denied" and changed.revision == cell.revision + 1
    assert not ComplianceRequest.objects.exists()
    assert AuditEvent.objects.filter(kind="compliance.changed", actor_name="alice").count() == 1


def test_reviewer_approves_the_request_and_the_cell_is_approved_with_a_new_revision(
    administrator: User, reviewer: User, version: ModelVersion, pii: DataClassification
) -> None:
    change = request_widening(version, pii, administrator)
    revision = registry_services.current(Counter.COMPLIANCE_REVISION)
    client = client_for(reviewer)

    page = client.get(request_url(change)).content.decode()
    for text in ("Legal approved PII processing", "DPA signed 2026-01", "alice", "Record verdict", "no decision"):
        assert text in page, text

    response = client.post(request_url(change), {"verdict": "approve", "comment": "Checked the DPA"}, follow=True)

    assert response.redirect_chain == [(request_url(change), 302)]
    change.refresh_from_db()
    assert change.state == APPLIED and change.decided_at is not None
    cell = ComplianceCell.objects.get(model_version=version, classification=pii)
    assert (cell.decision, cell.evidence, cell.decided_by_name) == ("approved", "DPA signed 2026-01", "rob")
    assert cell.revision == revision + 1 == registry_services.current(Counter.COMPLIANCE_REVISION)
    html = response.content.decode()
    assert f"Approved: {version} × pii is now approved." in html
    assert "Checked the DPA" in html and "Record verdict" not in html
    applied = AuditEvent.objects.get(kind="compliance.request.applied")
    assert (applied.actor_name, applied.reason, applied.after["state"]) == ("rob", "Checked the DPA", APPLIED)
    changed = AuditEvent.objects.get(kind="compliance.changed", actor_name="rob")
    assert "requested by alice, approved by rob" in changed.reason


def test_the_requester_cannot_approve_their_own_request(
    reviewer: User, version: ModelVersion, pii: DataClassification
) -> None:
    reviewer.groups.add(Group.objects.get(name="administrator"))  # may both edit the matrix and review
    client = client_for(reviewer)
    client.post(cell_url(version), {"decision": "approved", "evidence": "DPA", "reason": "Mine", "confirm": "yes"})
    change = ComplianceRequest.objects.get()
    message = "You asked for this change; someone else must review it."

    page = client.get(request_url(change)).content.decode()
    assert message in page and "Record verdict" not in page

    response = client.post(request_url(change), {"verdict": "approve", "comment": "Looks right"})

    assert response.status_code == 400
    assert response.content.decode().count(message) == 1
    change.refresh_from_db()
    assert change.state == PENDING and not change.reviews.exists()
    assert not ComplianceCell.objects.exists()
    assert not AuditEvent.objects.filter(kind__startswith="compliance.request.").exists()


def test_rejecting_needs_a_comment_and_leaves_the_cell_unchanged(
    administrator: User, reviewer: User, version: ModelVersion, pii: DataClassification
) -> None:
    cell = approve_in_eu(version, pii)
    change = request_widening(version, pii, administrator)  # every region instead of the EU only
    assert change.region_slugs == []
    client = client_for(reviewer)

    bare = client.post(request_url(change), {"verdict": "reject"})
    assert bare.status_code == 400
    assert "Say why you reject it." in bare.content.decode()

    done = client.post(request_url(change), {"verdict": "reject", "comment": "No DPA for the US yet"}, follow=True)

    change.refresh_from_db()
    assert change.state == REJECTED
    unchanged = ComplianceCell.objects.get()
    assert (unchanged.revision, unchanged.region_slugs(), unchanged.decided_by_name) == (
        cell.revision,
        ["eu"],
        cell.decided_by_name,
    )
    assert f"Rejected: {version} × pii stays as it was." in done.content.decode()
    rejected = AuditEvent.objects.get(kind="compliance.request.rejected")
    assert (rejected.actor_name, rejected.reason) == ("rob", "No DPA for the US yet")
    assert "This request is already rejected." in done.content.decode()


def test_extending_an_expiry_goes_to_review(
    administrator: User, version: ModelVersion, pii: DataClassification
) -> None:
    soon = timezone.localdate() + datetime.timedelta(days=10)
    registry_services.set_compliance(
        model_version=version, classification=pii, decision="approved", reason="r", evidence="e", expires_on=soon
    )
    later = (soon + datetime.timedelta(days=365)).isoformat()
    data = {"decision": "approved", "evidence": "renewed", "reason": "Renewal", "expires_on": later}
    client = client_for(administrator)
    assert "Goes to review." in client.post(cell_url(version), data).content.decode()
    client.post(cell_url(version), {**data, "confirm": "yes"})
    assert ComplianceRequest.objects.get().expires_on.isoformat() == later
    assert ComplianceCell.objects.get().expires_on == soon


def test_a_missing_request_is_404(reviewer: User, db: Any) -> None:
    assert client_for(reviewer).get(reverse("policies:compliance-request", args=[999])).status_code == 404
