"""End to end in a real browser: an administrator governs, an auditor can only look."""

import re
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User

from audit.models import AuditEvent
from conftest import sign_in
from registry.models import ComplianceCell, ModelVersion
from registry.tests.factories import make_model, make_provider, make_version

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"


def test_administrator_creates_a_version_and_approves_a_compliance_cell(
    page: Any, administrator: User, reviewer: User, vocabulary: dict[str, Any]
) -> None:
    make_model(make_provider(name="Acme AI", slug="acme"), name="Acme Large", tier="frontier")
    sign_in(page, "alice")

    page.get_by_role("link", name="Registry").click()
    page.get_by_role("link", name="New model version").click()
    page.get_by_label("Model:", exact=True).select_option(label="Acme AI Acme Large")
    page.get_by_label("Version label").fill("2026-11")
    page.get_by_label("API model id").fill("acme-large-2026-11")
    page.get_by_label("Context window").fill("200000")
    page.get_by_label("Input cost per million tokens (USD)").fill("-3")
    page.get_by_label("Output cost per million tokens (USD)").fill("15")
    page.get_by_label("Typical latency (ms)").fill("850")
    page.get_by_label("eu", exact=True).check()
    page.get_by_role("button", name="Save").click()
    assert page.get_by_text("Ensure this value is greater than or equal to 0").is_visible()

    page.get_by_label("Input cost per million tokens (USD)").fill("3")
    page.get_by_role("button", name="Save").click()
    page.wait_for_url(re.compile(r"/registry/versions/\d+/$"))
    assert page.get_by_role("heading", name=re.compile("Acme Large 2026-11")).is_visible()

    page.get_by_role("link", name="Mark approved").click()
    page.get_by_role("button", name="Yes, mark approved").click()
    page.wait_for_url(re.compile(r"/registry/versions/\d+/$"))
    version = ModelVersion.objects.get(api_model_id="acme-large-2026-11")
    assert version.lifecycle == "approved"

    page.get_by_role("link", name="Compliance").click()
    page.get_by_role("link", name=f"Change {version} × pii").click()
    page.get_by_label("Approved").check()
    page.get_by_label("Evidence:", exact=True).fill("DPA signed 2026-10-01, clause 4")
    page.get_by_label("Reason").fill("Legal approved EU processing of PII")
    page.get_by_role("button", name="Review change").click()
    assert page.get_by_role("heading", name="Confirm the change").is_visible()
    assert page.get_by_text("Goes to review.").is_visible()
    assert not ComplianceCell.objects.exists()
    page.get_by_role("button", name="Send for review").click()
    page.wait_for_url(re.compile(r"/reviews/compliance/\d+/$"))
    assert page.get_by_text("Sent for review:").is_visible()
    assert not ComplianceCell.objects.exists()
    assert AuditEvent.objects.filter(kind="compliance.requested", actor_name="alice").count() == 1

    # Four eyes: the administrator's approval waits for a reviewer.
    page.get_by_role("button", name="Sign out").click()
    sign_in(page, "rob")
    page.get_by_role("link", name="Reviews").click()
    page.get_by_role("link", name=f"Review {version} × pii").click()
    page.get_by_label("Approve").check()
    page.get_by_label("Comment").fill("DPA clause 4 covers EU processing")
    page.get_by_role("button", name="Record verdict").click()
    page.wait_for_url(re.compile(r"/reviews/compliance/\d+/$"))
    assert page.get_by_text(f"Approved: {version} × pii is now approved.").is_visible()
    page.get_by_role("link", name="Compliance", exact=True).click()
    page.wait_for_url(re.compile(r"/registry/compliance/"))

    cell = ComplianceCell.objects.get(model_version=version, classification__slug="pii")
    assert (cell.decision, cell.decided_by_name, cell.evidence) == (
        "approved",
        "rob",
        "DPA signed 2026-10-01, clause 4",
    )
    row = page.locator(f"#version-{version.pk}")
    assert row.locator(".cell.approved").count() == 1
    assert row.locator(".cell.approved").first.inner_text().startswith("Approved")
    assert AuditEvent.objects.filter(kind="compliance.changed", actor_name="rob").count() == 1
    assert AuditEvent.objects.filter(kind="compliance.request.applied", actor_name="rob").count() == 1
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "compliance-matrix.png"), full_page=True)


def test_auditor_finds_no_way_to_change_anything(page: Any, auditor: User, vocabulary: dict[str, Any]) -> None:
    version = make_version(lifecycle="approved")
    sign_in(page, "audrey")
    visited = ["/", "/registry/", version.get_absolute_url(), "/registry/providers/", "/registry/compliance/"]
    visited += [version.model.get_absolute_url(), version.model.provider.get_absolute_url()]
    for url in visited:
        page.goto(url)
        assert page.locator("main").is_visible(), url
        # The only form that posts is signing out; no edit, create or lifecycle control is offered.
        assert page.locator("main form[method=post]").count() == 0, url
        hrefs = page.locator("main a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
        assert not [h for h in hrefs if re.search(r"/(edit|new|transition)/|/compliance/\d+/", h or "")], url
        assert page.get_by_role("link", name="Admin").count() == 0
    events = AuditEvent.objects.count()
    for url in (f"/registry/versions/{version.pk}/edit/", f"/registry/compliance/{version.pk}/pii/"):
        response = page.goto(url)
        assert response is not None and response.status == 403, url
    assert AuditEvent.objects.count() == events
