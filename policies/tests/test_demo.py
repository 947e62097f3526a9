"""The demo's routing part: policies reviewed into force, keys, a change waiting, real traffic."""

import io
import re

import pytest
from django.core.management import call_command
from django.test import Client

from audit.models import AuditEvent
from policies.models import Application, PolicyVersion

pytestmark = pytest.mark.django_db


def test_seed_demo_routes_for_real() -> None:
    out = io.StringIO()
    call_command("seed_demo", "--allow-production", stdout=out)
    states = set(PolicyVersion.objects.values_list("policy__slug", "number", "state"))
    assert states == {("customer-care", 1, "active"), ("customer-care", 2, "submitted"), ("clinical", 1, "active")}
    clinical = PolicyVersion.objects.get(policy__slug="clinical", number=1)
    assert clinical.reviews.filter(verdict="approve").count() == 2
    assert not Application.objects.filter(policy__isnull=True).exists()
    assert AuditEvent.objects.filter(kind="routing.decision").count() > 300
    keys = dict(re.findall(r"^  ([a-z-]+): (sb_\S+)$", out.getvalue(), re.MULTILINE))
    assert set(keys) == {"support-assistant", "ticket-triage", "trial-summarizer"}

    answer = Client(HTTP_AUTHORIZATION=f"Bearer {keys['support-assistant']}").post(
        "/api/v1/route",
        {"task_type": "summarization", "data_classification": "pii", "region": "eu"},
        content_type="application/json",
    )
    assert answer.status_code == 200
    assert answer.json()["rule"] == "customer-pii"
    assert answer.json()["model"]["model"] == "Claude Quill"

    again = io.StringIO()
    call_command("seed_demo", "--allow-production", stdout=again)
    assert "sb_" not in again.getvalue()
    assert PolicyVersion.objects.count() == 3
