"""The four-eyes workflow of policy versions and of widening the compliance matrix."""

import threading
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, connections, transaction

from audit.models import AuditEvent
from policies import services
from policies.impact import preview
from policies.models import ComplianceRequest, Policy, PolicyVersion
from policies.tests.factories import activate, make_active_policy, make_app, pinned_rule, rules_document
from registry import services as registry_services
from registry.models import ComplianceCell, Counter, DataClassification, ModelVersion, Region
from registry.tests.factories import approve, make_version

pytestmark = pytest.mark.django_db
State = PolicyVersion.State


@pytest.fixture
def versions(vocabulary: Any) -> list[ModelVersion]:
    made = [make_version(lifecycle="approved") for _ in range(3)]
    for version in made:
        approve(version)
    return made


@pytest.fixture
def reviewer2(db: Any) -> User:
    user = User.objects.create_user("rita", password="x")
    user.groups.add(Group.objects.get(name="reviewer"))
    return user


def document(version: ModelVersion) -> dict[str, Any]:
    return rules_document(pinned_rule(services.version_ref(version)))


def draft(versions: list[ModelVersion], author: User, **fields: Any) -> PolicyVersion:
    return services.create_policy(name="Main", slug="main", document=document(versions[0]), actor=author, **fields)


def test_a_version_goes_draft_submitted_active_and_supersedes_the_old_one(
    versions: list[ModelVersion], administrator: User, reviewer: User
) -> None:
    first = activate(draft(versions, administrator), reviewer)
    assert first.state == State.ACTIVE and first.activated_at is not None
    second = services.new_draft(first.policy, actor=administrator)
    second = services.edit_version(second, document=document(versions[1]), actor=administrator)
    generation = registry_services.current(Counter.ROUTING_GENERATION)
    activate(second, reviewer)
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.state, second.state) == (State.SUPERSEDED, State.ACTIVE)
    assert registry_services.current(Counter.ROUTING_GENERATION) > generation
    kinds = list(
        AuditEvent.objects.filter(object_type="policies.policyversion", object_id=str(second.pk))
        .order_by("id")
        .values_list("kind", flat=True)
    )
    assert kinds == [
        "policyversion.created",
        "policyversion.edited",
        "policyversion.submitted",
        "policyversion.review.approve",
        "policyversion.approved",
        "policyversion.active",
    ]


def test_reviewer_cannot_approve_own_change(versions: list[ModelVersion], reviewer: User) -> None:
    version = services.submit(draft(versions, reviewer), actor=reviewer)
    with pytest.raises(ValidationError, match="someone else must review it"):
        services.review(version, reviewer=reviewer, verdict="approve")
    version.refresh_from_db()
    assert version.state == State.SUBMITTED and not version.reviews.exists()


def test_an_editor_cannot_approve_the_version_they_edited(
    versions: list[ModelVersion], administrator: User, reviewer: User
) -> None:
    version = draft(versions, administrator)
    version = services.edit_version(version, document=document(versions[1]), actor=reviewer)
    version = services.submit(version, actor=administrator)
    with pytest.raises(ValidationError, match="wrote or edited"):
        services.review(version, reviewer=reviewer, verdict="approve")


def test_submitted_versions_are_immutable_and_an_edit_voids_earlier_approvals(
    versions: list[ModelVersion], administrator: User, reviewer: User, reviewer2: User
) -> None:
    version = services.submit(draft(versions, administrator, required_approvals=2), actor=administrator)
    services.review(version, reviewer=reviewer, verdict="approve")
    edited = services.edit_version(version, document=document(versions[2]), actor=administrator)
    version.refresh_from_db()
    assert version.state == State.WITHDRAWN
    assert version.document == document(versions[0])
    assert (edited.state, edited.number, edited.based_on) == (State.DRAFT, 2, version)
    edited = services.submit(edited, actor=administrator)
    edited = services.review(edited, reviewer=reviewer2, verdict="approve")
    assert edited.state == State.SUBMITTED  # rob's approval was of the withdrawn version: void
    with pytest.raises(ValidationError, match="not waiting for review"):
        services.review(version, reviewer=reviewer2, verdict="approve")


def test_a_policy_needing_two_approvals_waits_for_the_second(
    versions: list[ModelVersion], administrator: User, reviewer: User, reviewer2: User
) -> None:
    version = services.submit(draft(versions, administrator, required_approvals=2), actor=administrator)
    assert services.review(version, reviewer=reviewer, verdict="approve").state == State.SUBMITTED
    with pytest.raises(ValidationError, match="already reviewed"):
        services.review(version, reviewer=reviewer, verdict="approve")
    assert services.review(version, reviewer=reviewer2, verdict="approve").state == State.ACTIVE


def test_rejection_needs_a_comment_and_ends_the_version(
    versions: list[ModelVersion], administrator: User, reviewer: User
) -> None:
    version = services.submit(draft(versions, administrator), actor=administrator)
    with pytest.raises(ValidationError, match="Say why"):
        services.review(version, reviewer=reviewer, verdict="reject")
    version = services.review(version, reviewer=reviewer, verdict="reject", comment="Pins a model we retire soon.")
    assert version.state == State.REJECTED
    with pytest.raises(ValidationError, match="Only a draft"):
        services.submit(version, actor=administrator)


def test_rollback_is_a_new_version_that_goes_through_review(
    versions: list[ModelVersion], administrator: User, reviewer: User
) -> None:
    first = activate(draft(versions, administrator), reviewer)
    second = activate(
        services.edit_version(
            services.new_draft(first.policy, actor=administrator), document=document(versions[1]), actor=administrator
        ),
        reviewer,
    )
    back = services.rollback(first.policy, to=first, actor=administrator)
    assert (back.number, back.state, back.document, back.based_on) == (3, State.SUBMITTED, first.document, first)
    second.refresh_from_db()
    assert second.state == State.ACTIVE
    activate(back, reviewer)
    second.refresh_from_db()
    assert second.state == State.SUPERSEDED


def test_invalid_documents_are_refused_with_their_paths(versions: list[ModelVersion], administrator: User) -> None:
    bad = {
        "rules": [
            {
                "name": "r",
                "action": {
                    "split": [
                        {"model_version": services.version_ref(versions[0]), "weight": 60},
                        {"model_version": "nobody/none/1", "weight": 30},
                    ]
                },
            }
        ]
    }
    with pytest.raises(ValidationError) as excinfo:
        services.create_policy(name="Bad", slug="bad", document=bad, actor=administrator)
    messages = excinfo.value.message_dict["document"]
    assert any(m.startswith("rules[0].action.split[1].model_version: Unknown model version") for m in messages)
    assert not Policy.objects.filter(slug="bad").exists()


def test_the_database_allows_one_active_version_per_policy(
    versions: list[ModelVersion], administrator: User, reviewer: User
) -> None:
    active = activate(draft(versions, administrator), reviewer)
    other = services.new_draft(active.policy, actor=administrator)
    with pytest.raises(IntegrityError), transaction.atomic():
        PolicyVersion.objects.filter(pk=other.pk).update(state=State.ACTIVE)


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_racing_approvals_leave_exactly_one_active_version(vocabulary: Any, administrator: User) -> None:
    """Two versions of one policy approved at the same moment by two reviewers: one wins."""
    assert connection.vendor == "postgresql"
    version = make_version(lifecycle="approved")
    reviewers = []
    for name in ("r1", "r2"):
        user = User.objects.create_user(name, password="x")
        user.groups.add(Group.objects.get(name="reviewer"))
        reviewers.append(user)
    first = services.submit(
        services.create_policy(name="Race", slug="race", document=document(version), actor=administrator),
        actor=administrator,
    )
    second = services.submit(services.new_draft(first.policy, based_on=first, actor=administrator), actor=administrator)
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def approve(candidate: PolicyVersion, reviewer: User) -> None:
        try:
            barrier.wait()
            services.review(candidate, reviewer=reviewer, verdict="approve")
        except BaseException as exc:  # reported by the assertions below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=approve, args=pair) for pair in ((first, reviewers[0]), (second, reviewers[1]))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    states = dict(PolicyVersion.objects.filter(policy=first.policy).values_list("number", "state"))
    assert sorted(states.values()) == [State.ACTIVE, State.SUPERSEDED]
    assert PolicyVersion.objects.filter(policy=first.policy, state=State.ACTIVE).count() == 1


class TestComplianceReview:
    def cell(self, version: ModelVersion, slug: str = "pii") -> ComplianceCell | None:
        return ComplianceCell.objects.filter(model_version=version, classification__slug=slug).first()

    def change(self, version: ModelVersion, actor: User, **kwargs: Any) -> Any:
        kwargs.setdefault("decision", "approved")
        kwargs.setdefault("evidence", "DPA")
        return services.change_compliance(
            model_version=version,
            classification=DataClassification.objects.get(slug="pii"),
            reason="why",
            actor=actor,
            **kwargs,
        )

    def test_approving_a_cell_waits_for_a_reviewer(
        self, versions: list[ModelVersion], administrator: User, reviewer: User
    ) -> None:
        request = self.change(versions[0], administrator)
        assert isinstance(request, ComplianceRequest) and request.state == "pending"
        assert self.cell(versions[0]) is None
        revision = registry_services.current(Counter.COMPLIANCE_REVISION)
        services.review_compliance(request, reviewer=reviewer, verdict="approve")
        cell = self.cell(versions[0])
        assert cell is not None and cell.decision == "approved" and cell.revision == revision + 1
        request.refresh_from_db()
        assert request.state == "applied"
        assert AuditEvent.objects.filter(kind="compliance.request.applied", actor_name=reviewer.username).exists()

    def test_nobody_approves_their_own_widening(self, versions: list[ModelVersion], reviewer: User) -> None:
        request = self.change(versions[0], reviewer)
        with pytest.raises(ValidationError, match="someone else must review it"):
            services.review_compliance(request, reviewer=reviewer, verdict="approve")
        assert self.cell(versions[0]) is None

    def test_narrowing_takes_effect_at_once(
        self, versions: list[ModelVersion], administrator: User, reviewer: User
    ) -> None:
        services.review_compliance(self.change(versions[0], administrator), reviewer=reviewer, verdict="approve")
        denied = self.change(versions[0], administrator, decision="denied", evidence="")
        assert isinstance(denied, ComplianceCell) and denied.decision == "denied"

    def test_one_pending_widening_per_cell(self, versions: list[ModelVersion], administrator: User) -> None:
        self.change(versions[0], administrator)
        with pytest.raises(ValidationError, match="already waiting for review"):
            self.change(versions[0], administrator)

    def test_a_stale_request_cannot_overwrite_a_newer_decision(
        self, versions: list[ModelVersion], administrator: User, reviewer: User
    ) -> None:
        services.review_compliance(self.change(versions[0], administrator), reviewer=reviewer, verdict="approve")
        widening = self.change(versions[0], administrator, regions=[], expires_on=None, evidence="renewed DPA")
        assert isinstance(widening, ComplianceCell)  # same approval, nothing wider: applied at once
        limited = self.change(
            versions[0], administrator, decision="approved", regions=list(Region.objects.filter(slug="eu"))
        )
        assert isinstance(limited, ComplianceCell)  # narrowing: at once
        request = self.change(versions[0], administrator, regions=[])  # widening back to all regions
        self.change(versions[0], administrator, decision="denied", evidence="")  # an incident meanwhile
        with pytest.raises(ValidationError, match="has changed since this was requested"):
            services.review_compliance(request, reviewer=reviewer, verdict="approve")
        assert self.cell(versions[0]).decision == "denied"

    def test_a_verdict_must_be_approve_or_reject(
        self, versions: list[ModelVersion], administrator: User, reviewer: User
    ) -> None:
        request = self.change(versions[0], administrator)
        with pytest.raises(ValidationError):
            services.review_compliance(request, reviewer=reviewer, verdict="maybe")
        request.refresh_from_db()
        assert request.state == "pending" and not request.reviews.exists()

    @pytest.mark.parametrize(
        ("now", "proposed", "widens"),
        [
            ({"regions": ("eu",)}, {"regions": ("eu", "us")}, True),
            ({"regions": ("eu",)}, {"regions": ()}, True),
            ({"regions": ()}, {"regions": ("eu",)}, False),
            ({"expires_in": 10}, {"expires_in": 20}, True),
            ({"expires_in": 10}, {"expires_in": None}, True),
            ({"expires_in": 20}, {"expires_in": 10}, False),
            ({}, {"decision": "denied"}, False),
        ],
    )
    def test_what_counts_as_widening(
        self, versions: list[ModelVersion], now: dict[str, Any], proposed: dict[str, Any], widens: bool
    ) -> None:
        import datetime

        from django.utils import timezone

        def days(n: int | None) -> datetime.date | None:
            return None if n is None else timezone.localdate() + datetime.timedelta(days=n)

        cell = registry_services.set_compliance(
            model_version=versions[0],
            classification=DataClassification.objects.get(slug="pii"),
            decision="approved",
            reason="x",
            evidence="y",
            regions=Region.objects.filter(slug__in=now.get("regions", ())),
            expires_on=days(now.get("expires_in")),
        )
        assert (
            services.widens(
                cell,
                decision=proposed.get("decision", "approved"),
                regions=list(Region.objects.filter(slug__in=proposed.get("regions", ()))),
                expires_on=days(proposed.get("expires_in")),
            )
            is widens
        )


def test_impact_preview_replays_recent_requests_against_the_proposal(
    versions: list[ModelVersion], administrator: User, reviewer: User
) -> None:
    from django.test import Client

    policy = make_active_policy(document(versions[0]), author=administrator, reviewer=reviewer, slug="live")
    app = make_app(policy=policy)
    _, key = services.generate_key(app, name="k")
    client = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
    for i in range(5):
        payload = {"task_type": "code", "data_classification": "internal", "request_id": f"r{i}"}
        assert client.post("/api/v1/route", payload, content_type="application/json").status_code == 200
    proposal = services.submit(
        services.edit_version(
            services.new_draft(policy, actor=administrator), document=document(versions[1]), actor=administrator
        )
    )
    impact = preview(proposal)
    assert impact.replayed == 5 and impact.changed == 5
    assert impact.active_mix == {services.version_ref(versions[0]): 5}
    assert impact.proposed_mix == {services.version_ref(versions[1]): 5}
    assert impact.changes[0].active == services.version_ref(versions[0])


def test_a_draft_cannot_be_based_on_another_policys_version(versions: list[ModelVersion], administrator: User) -> None:
    mine = draft(versions, administrator)
    theirs = services.create_policy(name="Other", slug="other", document=document(versions[1]), actor=administrator)
    with pytest.raises(ValidationError, match="another policy"):
        services.new_draft(mine.policy, based_on=theirs, actor=administrator)
