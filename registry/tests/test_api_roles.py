"""Who may do what on each registry endpoint: role by endpoint by method, as one table.

Administrators write everything; reviewers and auditors only read; a user without a role gets 403
and an anonymous caller 401. The compliance matrix is read-only here (decisions need a reason and
evidence, taken on the matrix page), so writing it is 405 for anyone who may read it.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.db import models
from rest_framework.test import APIClient

from registry.models import Capability, Certification, DataClassification, Region
from registry.tests.factories import approve, make_model, make_provider, make_version

API = "/api/v1"


@dataclass(frozen=True)
class Endpoint:
    """How to exercise one endpoint: an object nothing depends on, and valid payloads."""

    target: Callable[[], models.Model]
    create: Callable[[], dict[str, Any]]
    change: dict[str, Any]
    writable: bool = True


def compliance_cell() -> models.Model:
    return approve(make_version())


ENDPOINTS: dict[str, Endpoint] = {
    "providers": Endpoint(
        target=make_provider,
        create=lambda: {"name": "Acme", "slug": "acme", "kind": "anthropic", "regions": ["eu"]},
        change={"status": "degraded"},
    ),
    "models": Endpoint(
        target=make_model,
        create=lambda: {"provider": make_provider().slug, "name": "Large", "slug": "large", "tier": "frontier"},
        change={"family": "large"},
    ),
    "model-versions": Endpoint(
        target=make_version,
        create=lambda: {
            "model": make_model().pk,
            "label": "2025-01",
            "api_model_id": "large-2025-01",
            "context_window": 8192,
            "input_cost_per_mtok": "1.00",
            "output_cost_per_mtok": "2.00",
            "typical_latency_ms": 400,
            "regions": ["eu"],
        },
        change={"notes": "Checked"},
    ),
    "classifications": Endpoint(
        target=lambda: DataClassification.objects.create(slug="secret", name="Secret", sensitivity=60),
        create=lambda: {"slug": "restricted", "name": "Restricted", "sensitivity": 70},
        change={"description": "Board papers"},
    ),
    "regions": Endpoint(
        target=lambda: Region.objects.create(slug="apac", name="APAC"),
        create=lambda: {"slug": "latam", "name": "Latin America"},
        change={"name": "Asia-Pacific"},
    ),
    "certifications": Endpoint(
        target=lambda: Certification.objects.create(slug="iso27001", name="ISO 27001"),
        create=lambda: {"slug": "pci-dss", "name": "PCI DSS"},
        change={"name": "ISO/IEC 27001"},
    ),
    "capabilities": Endpoint(
        target=lambda: Capability.objects.create(slug="vision", name="Vision"),
        create=lambda: {"slug": "translation", "name": "Translation"},
        change={"name": "Image understanding"},
    ),
    "compliance": Endpoint(target=compliance_cell, create=dict, change={"decision": "denied"}, writable=False),
}

METHODS = ("list", "create", "change", "delete")
WRITES_SUCCEED = {"list": 200, "create": 201, "change": 200, "delete": 204}
READ_ONLY = {"list": 200, "create": 403, "change": 403, "delete": 403}
NOT_OFFERED = {"list": 200, "create": 405, "change": 405, "delete": 405}


def expected_status(role: str, endpoint: Endpoint, method: str) -> int:
    if role == "none":
        return 403
    if not endpoint.writable:
        return NOT_OFFERED[method]
    return (WRITES_SUCCEED if role == "administrator" else READ_ONLY)[method]


def call(client: APIClient, name: str, method: str) -> int:
    endpoint = ENDPOINTS[name]
    if method == "list":
        return client.get(f"{API}/{name}/").status_code
    if method == "create":
        return client.post(f"{API}/{name}/", endpoint.create(), format="json").status_code
    target = endpoint.target()
    if method == "change":
        return client.patch(f"{API}/{name}/{target.pk}/", endpoint.change, format="json").status_code
    return client.delete(f"{API}/{name}/{target.pk}/").status_code


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", ENDPOINTS)
@pytest.mark.parametrize("role", ["administrator", "reviewer", "auditor", "none"])
def test_role_may_use_endpoint_method(
    personas: dict[str, User], vocabulary: dict[str, Any], role: str, name: str, method: str
) -> None:
    client = APIClient()
    client.force_authenticate(personas[role])
    assert call(client, name, method) == expected_status(role, ENDPOINTS[name], method)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", ENDPOINTS)
def test_anonymous_caller_gets_401(vocabulary: dict[str, Any], name: str, method: str) -> None:
    assert call(APIClient(), name, method) == 401


@pytest.mark.parametrize(("role", "status"), [("administrator", 200), ("reviewer", 403), ("auditor", 403)])
def test_transition_needs_the_change_permission(
    personas: dict[str, User], vocabulary: dict[str, Any], role: str, status: int
) -> None:
    version = make_version()
    client = APIClient()
    client.force_authenticate(personas[role])
    response = client.post(f"{API}/model-versions/{version.pk}/transition/", {"to": "approved"}, format="json")
    assert response.status_code == status


@pytest.mark.parametrize(("codename", "status"), [("change_modelversion", 200), ("add_modelversion", 403)])
def test_transition_is_granted_by_change_not_by_add(vocabulary: dict[str, Any], codename: str, status: int) -> None:
    """POST usually means "add"; a transition changes an existing version, so "change" decides."""
    user = User.objects.create_user("pat")
    user.user_permissions.add(*Permission.objects.filter(codename__in=["view_modelversion", codename]))
    client = APIClient()
    client.force_authenticate(user)
    response = client.post(f"{API}/model-versions/{make_version().pk}/transition/", {"to": "approved"}, format="json")
    assert response.status_code == status
