"""The demo seed: a portfolio rich enough to show every page, idempotent, and fully audited."""

import datetime
import io
from typing import Any

import pytest
from django.apps import apps
from django.contrib.auth import authenticate
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from audit.models import AuditEvent
from console.roles import roles_of
from policies.models import Application
from registry import demo, services
from registry.models import ComplianceCell, DataClassification, Lifecycle, Model, ModelVersion, Provider

pytestmark = pytest.mark.django_db

DEMO_USERS = {"admin": "administrator", "reviewer": "reviewer", "reviewer2": "reviewer", "auditor": "auditor"}


def seed() -> str:
    out = io.StringIO()
    call_command("seed_demo", "--allow-production", stdout=out)
    return out.getvalue()


def row_counts() -> dict[str, int]:
    """Rows in every table the seed writes to, so a second run can be compared with the first."""
    counted = [*apps.get_app_config("registry").get_models(), *apps.get_app_config("policies").get_models()]
    counts = {model._meta.label: model._default_manager.count() for model in counted}
    counts["users"] = User.objects.count()
    counts["audit events"] = AuditEvent.objects.count()
    return counts


@pytest.fixture
def seeded(db: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.delenv("DEMO_PASSWORD", raising=False)
    # These tests read the portfolio, the matrix and the people; two days of traffic say as much
    # here as a month, which policies/tests/test_demo.py seeds in full (20 s a seed on PostgreSQL).
    monkeypatch.setattr("policies.demo.TRAFFIC_DAYS", 2)
    return seed()


def test_portfolio_has_enough_providers_models_and_versions(seeded: str) -> None:
    assert Provider.objects.count() >= 4
    self_hosted = Provider.objects.filter(kind=Provider.Kind.SELF_HOSTED)
    assert any(sorted(p.regions.values_list("slug", flat=True)) == ["eu"] for p in self_hosted)
    assert all(p.credentials_env for p in Provider.objects.all())
    assert Model.objects.count() >= 10
    assert set(Model.objects.values_list("tier", flat=True)) == set(Model.Tier.values)
    assert ModelVersion.objects.count() >= 15


def test_versions_cover_the_whole_lifecycle(seeded: str) -> None:
    today = timezone.localdate()
    versions = ModelVersion.objects.all()
    assert versions.filter(lifecycle=Lifecycle.CANDIDATE).count() >= 2
    assert versions.filter(lifecycle=Lifecycle.DEPRECATED).count() >= 2
    assert versions.filter(lifecycle=Lifecycle.RETIRED).count() >= 2
    assert versions.filter(lifecycle=Lifecycle.APPROVED).count() > versions.count() / 2
    assert versions.filter(lifecycle=Lifecycle.DEPRECATED, retires_on__gt=today).exists()
    assert versions.filter(lifecycle=Lifecycle.APPROVED, deprecates_on__gt=today).exists()
    assert versions.filter(lifecycle=Lifecycle.RETIRED, successor__isnull=False).exists()


def test_every_version_past_candidate_has_its_approval_date(seeded: str) -> None:
    past_candidate = ModelVersion.objects.exclude(lifecycle=Lifecycle.CANDIDATE)
    assert past_candidate.exists()
    assert not past_candidate.filter(approved_at__isnull=True).exists()
    assert all(v.approved_at <= timezone.now() for v in past_candidate)


def test_classifications_are_exactly_the_five_in_sensitivity_order(seeded: str) -> None:
    assert list(DataClassification.objects.values_list("slug", flat=True)) == [
        "public",
        "internal",
        "confidential",
        "pii",
        "phi",
    ]


def test_phi_is_approved_for_only_a_few_versions_and_rests_on_a_baa(seeded: str) -> None:
    cells = ComplianceCell.objects.filter(classification__slug="phi")
    approved = [cell for cell in cells if cell.effective_decision() == ComplianceCell.Decision.APPROVED]
    assert 1 <= len(approved) <= 3
    assert all("BAA" in cell.evidence for cell in approved)
    assert cells.filter(decision=ComplianceCell.Decision.DENIED).exists()


def test_exactly_one_approval_has_expired(seeded: str) -> None:
    expired = [cell for cell in ComplianceCell.objects.all() if cell.is_expired()]
    assert len(expired) == 1
    assert expired[0].decision == ComplianceCell.Decision.APPROVED


def test_one_approval_expires_within_thirty_days(seeded: str) -> None:
    today = timezone.localdate()
    soon = ComplianceCell.objects.filter(
        decision=ComplianceCell.Decision.APPROVED,
        expires_on__gte=today,
        expires_on__lte=today + datetime.timedelta(days=30),
    )
    assert soon.exists()


def test_matrix_has_region_limits_and_reasoned_denials(seeded: str) -> None:
    pii_eu_only = [
        cell
        for cell in ComplianceCell.objects.filter(classification__slug="pii", decision="approved")
        if cell.region_slugs() == ["eu"]
    ]
    assert pii_eu_only
    denials = AuditEvent.objects.filter(kind="compliance.changed", after__decision="denied")
    assert denials.exists()
    assert all(event.reason for event in denials)


def test_public_and_internal_are_approved_for_every_live_approved_version(seeded: str) -> None:
    for version in ModelVersion.objects.filter(lifecycle__in=[Lifecycle.APPROVED, Lifecycle.DEPRECATED]):
        decisions = {cell.classification.slug: cell.decision for cell in version.compliance.all()}
        assert decisions.get("public") == "approved", version
        assert decisions.get("internal") == "approved", version


def test_applications_belong_to_teams_with_their_classifications(seeded: str) -> None:
    trial = Application.objects.get(slug="trial-summarizer")
    assert trial.team.slug == "clinical-research"
    assert "phi" in trial.allowed_classifications.values_list("slug", flat=True)
    assert Application.objects.count() == 3


def test_demo_users_sign_in_with_the_default_password_in_their_roles(seeded: str) -> None:
    for username, role in DEMO_USERS.items():
        user = authenticate(username=username, password=demo.DEFAULT_PASSWORD)
        assert user is not None, username
        assert roles_of(user) == [role]
    admin = User.objects.get(username="admin")
    assert admin.is_staff and admin.is_superuser
    assert not User.objects.filter(username="reviewer", is_staff=True).exists()


def test_output_lists_the_logins_and_the_url(seeded: str) -> None:
    assert "Demo logins (password: switchboard-demo)" in seeded
    for username, role in DEMO_USERS.items():
        assert f"{username} " in seeded and role in seeded
    assert "http://127.0.0.1:8000" in seeded
    assert "model versions: 20" in seeded


def test_seed_events_are_attributed_to_who_would_have_acted(seeded: str) -> None:
    """The registry is loaded by the system; policies are written by the administrator and
    approved by reviewers, as people would; routing decisions are the applications'."""
    registry = AuditEvent.objects.filter(object_type__startswith="registry.")
    assert registry.exists()
    assert set(registry.values_list("actor_name", flat=True)) == {"system"}
    workflow = AuditEvent.objects.filter(object_type="policies.policyversion")
    assert set(workflow.values_list("actor_name", flat=True)) == {"admin", "reviewer", "reviewer2"}
    routing = AuditEvent.objects.filter(kind__startswith="routing.")
    assert {name.split(":")[0] for name in routing.values_list("actor_name", flat=True)} == {"app"}


def test_second_run_creates_no_rows_users_or_audit_events(seeded: str) -> None:
    before = row_counts()
    output = seed()
    assert row_counts() == before
    assert "nothing created" in output
    assert "Demo logins" in output


def test_second_run_respects_what_an_administrator_changed(seeded: str) -> None:
    version = ModelVersion.objects.get(model__slug="gpt-standard", label="4.1")
    services.transition_version(version, to=Lifecycle.DEPRECATED)
    services.update_object(Provider.objects.get(slug="openai"), data={"name": "OpenAI (enterprise)"})
    events = AuditEvent.objects.count()
    seed()
    version.refresh_from_db()
    assert version.lifecycle == Lifecycle.DEPRECATED
    assert Provider.objects.filter(name="OpenAI (enterprise)").exists()
    assert AuditEvent.objects.count() == events


def test_second_run_finds_a_provider_whose_slug_was_changed(seeded: str) -> None:
    services.update_object(Provider.objects.get(slug="anthropic"), data={"slug": "anthropic-enterprise"})
    counts = row_counts()
    seed()
    assert not Provider.objects.filter(slug="anthropic").exists()
    assert row_counts() == counts


def test_clash_with_existing_data_is_reported_and_nothing_is_created(db: Any) -> None:
    DataClassification.objects.create(slug="secret", name="Secret", sensitivity=50)
    with pytest.raises(CommandError, match="clashes with existing data"):
        seed()
    assert not Provider.objects.exists()
    assert not AuditEvent.objects.exists()


def test_second_run_creates_only_what_was_deleted(seeded: str) -> None:
    Application.objects.get(slug="ticket-triage").delete()
    counts = row_counts()
    output = seed()
    assert Application.objects.filter(slug="ticket-triage").exists()
    assert "applications: 1" in output
    assert row_counts()["policies.Application"] == counts["policies.Application"] + 1


def test_demo_password_sets_the_password_of_new_users(db: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEMO_PASSWORD", "another-long-secret")
    output = seed()
    assert authenticate(username="reviewer2", password="another-long-secret") is not None
    assert authenticate(username="reviewer2", password=demo.DEFAULT_PASSWORD) is None
    assert "another-long-secret" not in output


def test_existing_users_keep_their_password_unless_demo_password_is_set(
    db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DEMO_PASSWORD", raising=False)
    User.objects.create_user(username="auditor", password="chosen-by-audrey")
    seed()
    assert authenticate(username="auditor", password="chosen-by-audrey") is not None
    monkeypatch.setenv("DEMO_PASSWORD", "reset-for-the-demo")
    output = seed()
    assert "auditor    auditor (existing account, password reset)" in output
    assert authenticate(username="auditor", password="reset-for-the-demo") is not None


def test_empty_demo_password_is_refused(db: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEMO_PASSWORD", " ")
    with pytest.raises(CommandError, match="DEMO_PASSWORD"):
        seed()
    assert not Provider.objects.exists()


def test_a_failure_part_way_leaves_nothing_behind(db: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(demo, "_create_user", broken)
    with pytest.raises(RuntimeError):
        seed()
    assert not Provider.objects.exists()
    assert not AuditEvent.objects.exists()
    assert not User.objects.exists()


def test_refuses_to_seed_a_production_installation_unless_told_to(db: Any) -> None:
    with pytest.raises(CommandError, match="Refusing to seed demo data with DEBUG=false"):
        call_command("seed_demo", stdout=io.StringIO())
    assert not User.objects.exists()
