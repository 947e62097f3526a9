"""Roles are groups whose permissions follow the design: admins edit, the others only read."""

from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client

from console.roles import ADMINISTRATOR, AUDITOR, REVIEWER, ROLES, sync_roles

pytestmark = pytest.mark.django_db


def perms(role: str) -> set[str]:
    group = Group.objects.get(name=role)
    return {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.select_related("content_type")}


def test_roles_exist_after_migrate() -> None:
    assert set(Group.objects.values_list("name", flat=True)) >= set(ROLES)


def test_administrator_edits_the_registry_but_not_the_audit_log() -> None:
    granted = perms(ADMINISTRATOR)
    assert {"registry.add_modelversion", "registry.change_compliancecell", "registry.delete_provider"} <= granted
    assert "audit.view_auditevent" in granted
    assert {p for p in granted if p.startswith("audit.") and not p.startswith("audit.view_")} == {
        "audit.export_auditevent"
    }


@pytest.mark.parametrize(
    ("role", "beyond_reading"),
    [
        (REVIEWER, {"policies.review_policyversion", "policies.review_compliancerequest"}),
        (AUDITOR, {"audit.export_auditevent"}),
    ],
)
def test_reviewers_and_auditors_read_and_reviewers_also_review(role: str, beyond_reading: set[str]) -> None:
    granted = perms(role)
    assert "registry.view_modelversion" in granted and "audit.view_auditevent" in granted
    assert {p for p in granted if ".view_" not in p} == beyond_reading


def test_sync_is_idempotent_and_repairs_drift() -> None:
    auditors = Group.objects.get(name=AUDITOR)
    auditors.permissions.clear()
    sync_roles()
    sync_roles()
    assert {p for p in perms(AUDITOR) if ".view_" not in p} == {"audit.export_auditevent"}
    assert "registry.view_compliancecell" in perms(AUDITOR)


def test_request_id_is_echoed_and_recorded(administrator: User, vocabulary: Any) -> None:
    from audit.models import AuditEvent

    client = Client(HTTP_USER_AGENT="pytest-browser")
    client.force_login(administrator)
    response = client.post(
        "/registry/providers/new/",
        {"name": "Acme", "slug": "acme", "kind": "anthropic", "status": "active"},
        HTTP_X_REQUEST_ID="req-123",
    )
    assert response.status_code == 302
    assert response["X-Request-ID"] == "req-123"
    event = AuditEvent.objects.get(kind="provider.created")
    assert (event.request_id, event.actor_name, event.actor_ip, event.user_agent) == (
        "req-123",
        "alice",
        "127.0.0.1",
        "pytest-browser",
    )


def test_malformed_request_id_is_replaced() -> None:
    response = Client().get("/accounts/login/", HTTP_X_REQUEST_ID="bad id with spaces")
    assert response.status_code == 200
    assert len(response["X-Request-ID"]) == 32


def test_only_reviewers_review() -> None:
    review_perms = {"policies.review_policyversion", "policies.review_compliancerequest"}
    assert review_perms <= perms(REVIEWER)
    assert not review_perms & perms(ADMINISTRATOR)
    assert not review_perms & perms(AUDITOR)
