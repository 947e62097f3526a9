"""Business rules of the registry and the compliance matrix, through the services."""

import datetime
import threading
from decimal import Decimal
from typing import Any

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.db import connection, connections, transaction
from django.utils import timezone

from audit.models import AuditEvent
from registry import services
from registry.models import (
    LIFECYCLE_TRANSITIONS,
    ComplianceCell,
    Counter,
    DataClassification,
    Lifecycle,
    ModelVersion,
    Provider,
    Region,
)
from registry.tests.factories import approve, make_model, make_provider, make_version

pytestmark = pytest.mark.django_db


def classification(slug: str) -> DataClassification:
    return DataClassification.objects.get(slug=slug)


class TestLifecycle:
    @pytest.mark.parametrize(
        ("start", "to"),
        [
            ("candidate", "deprecated"),
            ("approved", "candidate"),
            ("approved", "approved"),
            ("deprecated", "approved"),
            ("retired", "approved"),
            ("retired", "deprecated"),
            ("approved", "nonsense"),
        ],
    )
    def test_disallowed_transitions_are_refused(self, vocabulary: Any, start: str, to: str) -> None:
        version = make_version(lifecycle=start)
        events = AuditEvent.objects.count()
        with pytest.raises(ValidationError) as excinfo:
            services.transition_version(version, to=to)
        assert "lifecycle" in excinfo.value.message_dict
        version.refresh_from_db()
        assert version.lifecycle == start
        assert AuditEvent.objects.count() == events

    def test_each_step_is_dated_and_audited(self, vocabulary: Any) -> None:
        version = make_version()
        moments = {}
        for step in ("approved", "deprecated", "retired"):
            moments[step] = timezone.now()
            version = services.transition_version(version, to=step, reason=f"to {step}", when=moments[step])
        assert (version.approved_at, version.deprecated_at, version.retired_at) == (
            moments["approved"],
            moments["deprecated"],
            moments["retired"],
        )
        events = AuditEvent.objects.filter(kind="modelversion.lifecycle").order_by("id")
        assert [(e.before["lifecycle"], e.after["lifecycle"]) for e in events] == [
            ("candidate", "approved"),
            ("approved", "deprecated"),
            ("deprecated", "retired"),
        ]

    def test_candidate_may_be_withdrawn_straight_to_retired(self, vocabulary: Any) -> None:
        version = services.transition_version(make_version(), to="retired")
        assert version.lifecycle == "retired"

    def test_create_always_starts_as_candidate(self, vocabulary: Any) -> None:
        assert make_version(lifecycle="candidate", notes="x").lifecycle == "candidate"
        version = services.create_version(
            data={
                "model": make_model(),
                "label": "sneaky",
                "api_model_id": "m",
                "context_window": 1000,
                "input_cost_per_mtok": Decimal(1),
                "output_cost_per_mtok": Decimal(1),
                "typical_latency_ms": 10,
                "lifecycle": "approved",
            },
            regions=Region.objects.all(),
        )
        assert version.lifecycle == "candidate"

    def test_lifecycle_cannot_be_changed_by_an_edit(self, vocabulary: Any) -> None:
        version = make_version()
        with pytest.raises(ValidationError, match="transition"):
            services.update_version(version, data={"lifecycle": "approved"})

    def test_planned_dates_are_applied_when_due(self, vocabulary: Any) -> None:
        today = timezone.localdate()
        deprecating = make_version(lifecycle="approved", deprecates_on=today)
        retiring = make_version(lifecycle="approved", retires_on=today)
        later = make_version(lifecycle="approved", deprecates_on=today + datetime.timedelta(days=1))
        changed = services.apply_scheduled_lifecycle(today)
        assert {v.pk for v in changed} == {deprecating.pk, retiring.pk}
        for version, expected in ((deprecating, "deprecated"), (retiring, "retired"), (later, "approved")):
            version.refresh_from_db()
            assert version.lifecycle == expected
        planned = AuditEvent.objects.filter(kind="modelversion.lifecycle", reason__startswith="Planned")
        assert planned.count() == 3
        assert {event.actor_name for event in planned} == {"system"}
        assert services.apply_scheduled_lifecycle(today) == []

    def test_future_dates_are_warnings(self, vocabulary: Any) -> None:
        today = datetime.date(2026, 11, 24)
        version = make_version(
            lifecycle="approved", deprecates_on=datetime.date(2026, 12, 1), retires_on=datetime.date(2027, 3, 1)
        )
        assert version.lifecycle_warnings(today) == [
            "Deprecation planned on 2026-12-01",
            "Retirement planned on 2027-03-01",
        ]
        assert version.lifecycle_warnings(datetime.date(2027, 4, 1)) == []

    def test_retirement_cannot_be_planned_before_deprecation(self, vocabulary: Any) -> None:
        version = make_version(lifecycle="approved")
        with pytest.raises(ValidationError):
            services.update_version(
                version, data={"deprecates_on": datetime.date(2027, 2, 1), "retires_on": datetime.date(2027, 1, 1)}
            )


class TestImmutability:
    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("input_cost_per_mtok", Decimal("0.1")),
            ("output_cost_per_mtok", Decimal("0.1")),
            ("api_model_id", "other-id"),
            ("context_window", 5),
            ("label", "renamed"),
            ("quality_scores", {"code": 1}),
            ("typical_latency_ms", 1),
        ],
    )
    def test_approved_version_technical_fields_cannot_change(self, vocabulary: Any, field: str, value: Any) -> None:
        version = make_version(lifecycle="approved")
        original = getattr(version, field)
        with pytest.raises(ValidationError) as excinfo:
            services.update_version(version, data={field: value})
        assert field in excinfo.value.message_dict
        assert "new version" in excinfo.value.message_dict[field][0]
        assert getattr(ModelVersion.objects.get(pk=version.pk), field) == original

    def test_approved_version_regions_and_model_cannot_change(self, vocabulary: Any) -> None:
        version = make_version(lifecycle="deprecated", regions=("eu", "us"))
        with pytest.raises(ValidationError) as excinfo:
            services.update_version(version, data={}, regions=Region.objects.filter(slug="eu"))
        assert "regions" in excinfo.value.message_dict
        with pytest.raises(ValidationError) as excinfo:
            services.update_version(version, data={"model": make_model()})
        assert "model" in excinfo.value.message_dict
        assert sorted(r.slug for r in ModelVersion.objects.get(pk=version.pk).regions.all()) == ["eu", "us"]

    def test_approved_version_notes_successor_and_dates_may_change(self, vocabulary: Any) -> None:
        version = make_version(lifecycle="approved")
        successor = make_version(version.model)
        services.update_version(
            version,
            data={"notes": "Use the successor", "successor": successor, "retires_on": datetime.date(2030, 1, 1)},
        )
        version.refresh_from_db()
        assert (version.notes, version.successor, version.retires_on) == (
            "Use the successor",
            successor,
            datetime.date(2030, 1, 1),
        )
        event = AuditEvent.objects.filter(kind="modelversion.updated").latest("id")
        assert event.changed_fields() == ["notes", "retires_on", "successor_id"]

    def test_candidate_may_change_freely(self, vocabulary: Any) -> None:
        version = make_version()
        services.update_version(
            version, data={"input_cost_per_mtok": Decimal("9.99")}, regions=Region.objects.filter(slug="us")
        )
        version.refresh_from_db()
        assert version.input_cost_per_mtok == Decimal("9.99")
        assert [r.slug for r in version.regions.all()] == ["us"]

    def test_new_version_initial_copies_technical_fields(self, vocabulary: Any) -> None:
        version = make_version(lifecycle="approved", context_window=32_000)
        initial = services.new_version_initial(version)
        assert initial["context_window"] == 32_000
        assert initial["label"] == ""
        assert initial["model"] == version.model_id
        assert {r.slug for r in initial["regions"]} == {"eu", "us"}


class TestValidation:
    def test_negative_cost_is_refused(self, vocabulary: Any) -> None:
        with pytest.raises(ValidationError) as excinfo:
            make_version(input_cost_per_mtok=Decimal("-0.01"))
        assert "input_cost_per_mtok" in excinfo.value.message_dict

    def test_duplicate_label_is_refused(self, vocabulary: Any) -> None:
        version = make_version(label="2025-01")
        with pytest.raises(ValidationError, match="already exists"):
            make_version(version.model, label="2025-01")

    def test_unknown_quality_capability_and_out_of_range_scores_are_refused(self, vocabulary: Any) -> None:
        with pytest.raises(ValidationError, match="Unknown capability 'telepathy'"):
            make_version(quality_scores={"telepathy": 3})
        with pytest.raises(ValidationError, match="from 0 to 100"):
            make_version(quality_scores={"code": -1})

    def test_version_needs_a_region(self, vocabulary: Any) -> None:
        with pytest.raises(ValidationError) as excinfo:
            make_version(regions=())
        assert "regions" in excinfo.value.message_dict

    def test_credentials_are_an_environment_variable_name(self, vocabulary: Any) -> None:
        with pytest.raises(ValidationError) as excinfo:
            services.create_object(
                Provider, data={"name": "Leaky", "slug": "leaky", "kind": "anthropic", "credentials_env": "sk-ant-123"}
            )
        assert "credentials_env" in excinfo.value.message_dict

    def test_deleting_a_provider_in_use_explains_why_not(self, vocabulary: Any) -> None:
        model = make_model(make_provider(name="Busy"))
        events = AuditEvent.objects.count()
        with pytest.raises(ValidationError, match="still used by"):
            services.delete_object(model.provider)
        assert Provider.objects.filter(name="Busy").exists()
        assert AuditEvent.objects.count() == events


class TestComplianceMatrix:
    def test_missing_cell_is_denied_and_approval_is_approved(self, vocabulary: Any) -> None:
        version = make_version(lifecycle="approved")
        cell = approve(version, "pii")
        assert cell.effective_decision() == "approved"
        assert not ComplianceCell.objects.filter(model_version=version, classification__slug="phi").exists()

    def test_approval_counts_as_denied_from_the_day_after_expiry(self, vocabulary: Any) -> None:
        version = make_version(lifecycle="approved")
        cell = approve(version, "phi", expires_on=datetime.date(2026, 12, 31))
        assert cell.effective_decision(datetime.date(2026, 12, 31)) == "approved"
        assert cell.effective_decision(datetime.date(2027, 1, 1)) == "denied"
        with time_machine.travel(datetime.datetime(2027, 1, 1, 12, tzinfo=datetime.UTC)):
            assert cell.is_expired()
            assert cell.effective_decision() == "denied"

    def test_every_change_bumps_the_revision_and_is_audited(self, vocabulary: Any, administrator: Any) -> None:
        version = make_version(lifecycle="approved")
        start = services.current(Counter.COMPLIANCE_REVISION)
        approve(version, "pii", actor=administrator, regions=("eu",))
        cell = services.set_compliance(
            model_version=version,
            classification=classification("pii"),
            decision="denied",
            reason="Vendor breach",
            actor=administrator,
        )
        assert services.current(Counter.COMPLIANCE_REVISION) == start + 2
        assert cell.revision == start + 2
        assert cell.decided_by_name == "alice"
        first, second = AuditEvent.objects.filter(kind="compliance.changed").order_by("id")
        assert first.before is None
        assert first.after["decision"] == "approved" and first.after["regions"] == ["eu"]
        assert second.before["decision"] == "approved"
        assert second.after == {**second.after, "decision": "denied", "revision": start + 2}
        assert second.reason == "Vendor breach"
        assert second.actor_name == "alice"

    @pytest.mark.parametrize(
        ("kwargs", "field"),
        [
            ({"reason": "  "}, "reason"),
            ({"evidence": ""}, "evidence"),
            ({"expires_on": datetime.date(2000, 1, 1)}, "expires_on"),
        ],
    )
    def test_bad_approvals_are_refused_and_change_nothing(self, vocabulary: Any, kwargs: Any, field: str) -> None:
        version = make_version(lifecycle="approved")
        start = services.current(Counter.COMPLIANCE_REVISION)
        with pytest.raises(ValidationError) as excinfo:
            approve(version, "pii", **kwargs)
        assert field in excinfo.value.message_dict
        assert services.current(Counter.COMPLIANCE_REVISION) == start
        assert not ComplianceCell.objects.exists()

    def test_region_limit_must_be_a_hosting_region(self, vocabulary: Any) -> None:
        version = make_version(lifecycle="approved", regions=("eu",))
        with pytest.raises(ValidationError, match="us not among the version's regions"):
            approve(version, "pii", regions=("us",))

    def test_retired_version_cannot_be_approved(self, vocabulary: Any) -> None:
        with pytest.raises(ValidationError, match="retired"):
            approve(make_version(lifecycle="retired"), "public")

    def test_imported_historical_approval_may_already_be_expired(self, vocabulary: Any) -> None:
        version = make_version(lifecycle="approved")
        cell = approve(
            version,
            "phi",
            decided_at=timezone.now() - datetime.timedelta(days=400),
            expires_on=timezone.localdate() - datetime.timedelta(days=10),
        )
        assert cell.is_expired()
        assert cell.effective_decision() == "denied"

    def test_a_failed_change_rolls_back_the_event_and_the_revision(self, vocabulary: Any) -> None:
        version = make_version(lifecycle="approved")
        start = services.current(Counter.COMPLIANCE_REVISION)
        events = AuditEvent.objects.count()
        with pytest.raises(RuntimeError), transaction.atomic():
            approve(version, "pii")
            raise RuntimeError("the caller's transaction fails afterwards")
        assert services.current(Counter.COMPLIANCE_REVISION) == start
        assert AuditEvent.objects.count() == events
        assert not ComplianceCell.objects.exists()


class TestAuditEvents:
    def test_create_update_and_delete_are_audited_with_before_and_after(
        self, vocabulary: Any, administrator: Any
    ) -> None:
        region = services.create_object(Region, data={"slug": "apac", "name": "Asia Pacific"}, actor=administrator)
        region_id = region.pk
        services.update_object(region, data={"name": "APAC"}, actor=administrator)
        services.update_object(region, data={"name": "APAC"}, actor=administrator)  # no change, no event
        services.delete_object(region, actor=administrator)
        events = list(AuditEvent.objects.filter(object_type="registry.region").order_by("id"))
        assert [e.kind for e in events] == ["region.created", "region.updated", "region.deleted"]
        assert events[1].before["name"] == "Asia Pacific" and events[1].after["name"] == "APAC"
        assert events[2].before["slug"] == "apac" and events[2].after is None
        assert {e.actor_name for e in events} == {"alice"}
        assert events[2].object_repr == "apac"
        assert {e.object_id for e in events} == {str(region_id)}

    def test_registry_changes_bump_the_routing_generation(self, vocabulary: Any) -> None:
        start = services.current(Counter.ROUTING_GENERATION)
        version = make_version(lifecycle="approved")
        approve(version, "public")
        assert services.current(Counter.ROUTING_GENERATION) == start + 3


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_concurrent_matrix_changes_get_distinct_revisions(vocabulary: Any) -> None:
    """Two administrators deciding at once must not share a revision number."""
    assert connection.vendor == "postgresql"
    versions = [make_version(lifecycle="approved") for _ in range(8)]
    start = services.current(Counter.COMPLIANCE_REVISION)
    barrier = threading.Barrier(len(versions))
    errors: list[BaseException] = []

    def decide(version: ModelVersion) -> None:
        try:
            barrier.wait()
            approve(version, "internal")
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=decide, args=(v,)) for v in versions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    revisions = sorted(ComplianceCell.objects.values_list("revision", flat=True))
    assert revisions == list(range(start + 1, start + len(versions) + 1))
    assert services.current(Counter.COMPLIANCE_REVISION) == start + len(versions)


def test_lifecycle_choices_match_transitions() -> None:
    assert set(LIFECYCLE_TRANSITIONS) == set(Lifecycle.values)


class TestDeletion:
    def test_only_candidates_can_be_deleted(self, vocabulary: Any) -> None:
        for lifecycle in ("approved", "deprecated", "retired"):
            version = make_version(lifecycle=lifecycle)
            with pytest.raises(ValidationError, match="only candidates can be deleted"):
                services.delete_version(version)
            assert ModelVersion.objects.filter(pk=version.pk).exists()

    def test_deleting_a_candidate_records_its_compliance_cells_going(self, vocabulary: Any) -> None:
        version = make_version()
        approve(version, "internal")
        start = services.current(Counter.COMPLIANCE_REVISION)
        services.delete_version(version)
        assert not ModelVersion.objects.filter(pk=version.pk).exists()
        assert not ComplianceCell.objects.exists()
        assert services.current(Counter.COMPLIANCE_REVISION) == start + 1
        gone = AuditEvent.objects.filter(kind="compliance.changed").latest("id")
        assert gone.before["decision"] == "approved"
        assert gone.after == {"decision": None, "revision": start + 1}
        assert AuditEvent.objects.filter(kind="modelversion.deleted", object_id=str(version.pk)).exists()

    def test_constraint_errors_name_the_field(self, vocabulary: Any) -> None:
        version = make_version(lifecycle="approved")
        with pytest.raises(ValidationError) as excinfo:
            services.update_version(version, data={"successor": version})
        assert excinfo.value.message_dict["successor"] == ["A version cannot be its own successor."]
        with pytest.raises(ValidationError) as excinfo:
            services.update_version(
                version, data={"deprecates_on": datetime.date(2027, 2, 1), "retires_on": datetime.date(2027, 1, 1)}
            )
        assert "Planned retirement cannot come before" in excinfo.value.message_dict["retires_on"][0]


class TestHistoricalDates:
    def test_a_step_cannot_be_dated_before_the_previous_one(self, vocabulary: Any) -> None:
        version = make_version(lifecycle="approved")
        with pytest.raises(ValidationError, match="before the version's previous step"):
            services.transition_version(version, to="deprecated", when=version.approved_at - datetime.timedelta(days=1))

    def test_a_retired_version_cannot_be_a_successor(self, vocabulary: Any) -> None:
        version = make_version(lifecycle="approved")
        retired = make_version(version.model, lifecycle="retired")
        with pytest.raises(ValidationError) as excinfo:
            services.update_version(version, data={"successor": retired})
        assert "retired" in excinfo.value.message_dict["successor"][0]

    def test_a_decision_cannot_be_dated_in_the_future(self, vocabulary: Any) -> None:
        version = make_version(lifecycle="approved")
        with pytest.raises(ValidationError) as excinfo:
            approve(version, "public", decided_at=timezone.now() + datetime.timedelta(days=1))
        assert "decided_at" in excinfo.value.message_dict
