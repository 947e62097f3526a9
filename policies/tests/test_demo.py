"""The demo's routing part: policies reviewed into force, keys, a change waiting, real traffic."""

import io
import re
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client

from audit.models import AuditEvent
from policies import budgets
from policies.models import Application, BudgetAlert, PolicyVersion
from registry.tests.test_tasks import wait_for

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


def test_seed_demo_sets_quotas_and_leaves_one_application_near_its_budget(
    task_runner: str, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        call_command("seed_demo", "--allow-production", stdout=io.StringIO())
    quotas = dict(Application.objects.values_list("slug", "requests_per_minute"))
    assert quotas == {"support-assistant": 600, "ticket-triage": 1200, "trial-summarizer": 120}
    triage = Application.objects.get(slug="ticket-triage")
    spent = budgets.Spend.of("application", triage.pk, triage.monthly_budget_usd)
    assert spent.percent is not None and 80 <= spent.percent < 90
    assert wait_for(lambda: BudgetAlert.objects.exists()), task_runner  # alerts are raised by a task
    alert = BudgetAlert.objects.get()
    assert (alert.application, alert.threshold) == (triage, 80)
    assert [a.pk for a in budgets.active_alerts()] == [alert.pk]
    # Demo traffic stays inside every budget and quota: nothing was refused for them.
    assert not AuditEvent.objects.filter(kind="routing.refused", data__status=429).exists()
