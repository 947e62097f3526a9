"""The reviewer's pages for policy versions: the queue, the diff and impact, the verdict, and who
may do what. The four-eyes rules are the services'; these tests check that the pages apply them
and say so in words, never with an error page."""

import datetime
import re
from dataclasses import dataclass
from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import Group, User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from policies import services
from policies.models import ComplianceRequest, Policy, PolicyVersion, Review
from policies.tests.factories import make_active_policy, make_app, pinned_rule, rules_document
from policies.views.reviews import CHANGE_ROWS
from registry.models import DataClassification, ModelVersion
from registry.tests.factories import approve, make_model, make_provider, make_version

pytestmark = pytest.mark.django_db
State = PolicyVersion.State
ROUTE = "/api/v1/route"


@dataclass
class World:
    large: ModelVersion
    small: ModelVersion
    policy: Policy
    key: str

    def route(self, times: int = 1) -> None:
        client = Client(HTTP_AUTHORIZATION=f"Bearer {self.key}")
        for _ in range(times):
            body = {"task_type": "code", "data_classification": "internal", "input_tokens": 2000}
            assert client.post(ROUTE, body, content_type="application/json").status_code == 200


@pytest.fixture
def reviewer2(db: Any) -> User:
    user = User.objects.create_user("rita", password="x")
    user.groups.add(Group.objects.get(name="reviewer"))
    return user


@pytest.fixture
def world(vocabulary: Any, administrator: User, reviewer: User) -> World:
    acme = make_provider(name="Acme", slug="acme")
    large = make_version(make_model(acme, name="Large", slug="large"), lifecycle="approved", label="1")
    small = make_version(
        make_model(acme, name="Small", slug="small"), lifecycle="approved", label="1", input_cost_per_mtok=0.5
    )
    for version in (large, small):
        approve(version)
    policy = make_active_policy(
        rules_document(pinned_rule(services.version_ref(large))),
        author=administrator,
        reviewer=reviewer,
        name="Main",
        slug="main",
    )
    app = make_app(slug="support", name="Support", policy=policy)
    _, key = services.generate_key(app, name="prod")
    return World(large=large, small=small, policy=policy, key=key)


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def propose(world: World, author: User, target: ModelVersion | None = None, summary: str = "Cheaper") -> PolicyVersion:
    """A new version pinned to ``target`` (the small model by default), submitted for review."""
    draft = services.new_draft(world.policy, actor=author)
    document = rules_document(pinned_rule(services.version_ref(target or world.small)))
    draft = services.edit_version(draft, document=document, summary=summary, actor=author)
    return services.submit(draft, actor=author)


def review_url(version: PolicyVersion) -> str:
    return reverse("policies:version-review", args=[version.policy.slug, version.number])


def kinds_of(version: PolicyVersion) -> list[str]:
    events = AuditEvent.objects.filter(object_type="policies.policyversion", object_id=str(version.pk))
    return list(events.order_by("id").values_list("kind", flat=True))


# --- The queue ------------------------------------------------------------------------------


def test_queue_lists_submitted_versions_and_pending_requests_oldest_first(
    world: World, administrator: User, reviewer: User
) -> None:
    start = timezone.now()
    with time_machine.travel(start - datetime.timedelta(days=3), tick=False):
        older = propose(world, administrator)
    with time_machine.travel(start - datetime.timedelta(days=5), tick=False):
        other = services.create_policy(
            name="Batch",
            slug="batch",
            required_approvals=2,
            document=rules_document(pinned_rule(services.version_ref(world.large))),
            actor=administrator,
        )
        oldest = services.submit(other, actor=administrator)
    pii = DataClassification.objects.get(slug="pii")
    with time_machine.travel(start - datetime.timedelta(days=1), tick=False):
        newer_request = services.change_compliance(
            model_version=world.large,
            classification=pii,
            decision="approved",
            reason="DPA",
            evidence="DPA",
            actor=administrator,
        )
    with time_machine.travel(start - datetime.timedelta(days=2), tick=False):
        older_request = services.change_compliance(
            model_version=world.small,
            classification=pii,
            decision="approved",
            reason="DPA",
            evidence="DPA",
            actor=administrator,
        )
    services.review(oldest, reviewer=reviewer, verdict="approve")

    response = client_for(reviewer).get(reverse("policies:review-queue"))

    assert response.status_code == 200
    assert list(response.context["versions"]) == [oldest, older]
    assert list(response.context["requests"]) == [older_request, newer_request]
    html = response.content.decode()
    assert html.index(review_url(oldest)) < html.index(review_url(older))
    first = reverse("policies:compliance-request", args=[older_request.pk])
    assert html.index(first) < html.index(reverse("policies:compliance-request", args=[newer_request.pk]))
    assert "1 of 2" in html and "0 of 1" in html
    assert "Cheaper" in html and "alice" in html and ">Review<" in html


def test_queue_leaves_out_drafts_and_decided_versions(world: World, administrator: User) -> None:
    services.new_draft(world.policy, actor=administrator)
    response = client_for(administrator).get(reverse("policies:review-queue"))
    assert list(response.context["versions"]) == []
    assert "No policy version is waiting for review." in response.content.decode()


def test_readers_without_the_review_permission_see_open_links_not_review(world: World, auditor: User) -> None:
    version = propose(world, User.objects.get(username="alice"))
    html = client_for(auditor).get(reverse("policies:review-queue")).content.decode()
    assert review_url(version) in html
    assert ">Review<" not in html and "only reviewers approve or reject" in html


# --- What the review page shows -------------------------------------------------------------


def test_review_page_shows_the_header_and_the_diff_against_the_active_version(
    world: World, administrator: User, reviewer: User
) -> None:
    version = propose(world, administrator, summary="Move code to the small model")
    response = client_for(reviewer).get(review_url(version))
    assert response.status_code == 200
    html = response.content.decode()
    for text in ("Review Main v2", "Move code to the small model", "alice", "Submitted", "0 of 1 required"):
        assert text in html
    assert "Compared with v1 (active)" in html
    lines = {(line.kind, line.text.strip()) for line in response.context["diff"]}
    assert ("removed", "pinned: acme/large/1") in lines
    assert ("added", "pinned: acme/small/1") in lines
    assert '<span class="diff-sign">−</span><del>    pinned: acme/large/1</del>' in html
    assert '<span class="diff-sign">+</span><ins>    pinned: acme/small/1</ins>' in html


def test_review_page_previews_the_impact_on_recent_traffic(world: World, administrator: User, reviewer: User) -> None:
    world.route(times=3)
    version = propose(world, administrator)

    response = client_for(reviewer).get(review_url(version))

    impact = response.context["impact"]
    assert (impact.replayed, impact.changed) == (3, 3)
    assert impact.active_mix == {"acme/large/1": 3} and impact.proposed_mix == {"acme/small/1": 3}
    html = response.content.decode()
    assert "<strong>3</strong> would change model" in html
    assert response.context["cost_delta"].startswith("−$")
    assert 'id="impact-chart"' in html and "Plotly.newPlot" in html
    mix = re.search(r'<table class="mix">.*?</table>', html, re.S)
    assert mix is not None
    assert "acme/large/1" in mix.group() and "acme/small/1" in mix.group()
    changes = re.search(r'<table class="changes">.*?</table>', html, re.S)
    assert changes is not None
    decision_ids = AuditEvent.objects.filter(kind="routing.decision").values_list("decision_id", flat=True)
    assert all(str(decision_id) in changes.group() for decision_id in decision_ids)
    assert "Support" in changes.group()
    assert f'src="{reverse("policies:plotly-js")}?v=' in html
    assert "cdn" not in html.lower()
    assert not re.search(r"<script[^>]+src=\"https?://", html)


def test_review_page_caps_the_changed_requests_and_counts_the_rest(
    world: World, administrator: User, reviewer: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("policies.views.reviews.CHANGE_ROWS", 2)
    world.route(times=3)
    response = client_for(reviewer).get(review_url(propose(world, administrator)))
    assert len(response.context["changes"]) == 2
    assert "…and 1 more request not shown." in response.content.decode()
    assert CHANGE_ROWS == 200


def test_without_traffic_the_page_says_there_is_nothing_to_replay(
    world: World, administrator: User, reviewer: User
) -> None:
    html = client_for(reviewer).get(review_url(propose(world, administrator))).content.decode()
    assert "No routing request under this policy to replay yet" in html
    assert "impact-chart" not in html and "plotly-js" not in html


def test_plotly_is_served_from_the_installed_package_with_a_long_cache(administrator: User) -> None:
    url = reverse("policies:plotly-js")
    plain = Client().get(url)
    assert plain.status_code == 200
    assert plain["Content-Type"].startswith("text/javascript")
    assert "max-age=31536000" in plain["Cache-Control"] and "immutable" in plain["Cache-Control"]
    assert b"plotly.js" in plain.content[:300]
    zipped = Client().get(url, HTTP_ACCEPT_ENCODING="gzip, br")
    assert zipped["Content-Encoding"] == "gzip"
    assert len(zipped.content) < len(plain.content) / 2


# --- Verdicts ---------------------------------------------------------------------------------


def test_approving_activates_the_version_and_supersedes_the_old_one(
    world: World, administrator: User, reviewer: User
) -> None:
    previous = services.active_version(world.policy)
    version = propose(world, administrator)

    client = client_for(reviewer)
    response = client.post(review_url(version), {"verdict": "approve", "comment": "Cheaper, same quality"})

    assert response.status_code == 302 and response["Location"] == review_url(version)
    version.refresh_from_db()
    previous.refresh_from_db()
    assert (version.state, previous.state) == (State.ACTIVE, State.SUPERSEDED)
    assert kinds_of(version)[-3:] == ["policyversion.review.approve", "policyversion.approved", "policyversion.active"]
    assert kinds_of(previous)[-1] == "policyversion.superseded"
    approval = AuditEvent.objects.get(kind="policyversion.review.approve", object_id=str(version.pk))
    assert (approval.actor_name, approval.reason) == ("rob", "Cheaper, same quality")
    page = client.get(review_url(version)).content.decode()
    assert "Approved main v2: it is now the active version of Main." in page
    assert "Cheaper, same quality" in page and "Record verdict" not in page


def test_a_policy_needing_two_approvals_stays_submitted_after_one(
    world: World, administrator: User, reviewer: User, reviewer2: User
) -> None:
    Policy.objects.filter(pk=world.policy.pk).update(required_approvals=2)
    version = propose(world, administrator)

    first = client_for(reviewer).post(review_url(version), {"verdict": "approve"}, follow=True)
    version.refresh_from_db()
    assert version.state == State.SUBMITTED
    html = first.content.decode()
    assert "1 of 2 approvals so far" in html and "1 of 2 required" in html
    assert "You have already reviewed this version." in html and "Record verdict" not in html

    again = client_for(reviewer).post(review_url(version), {"verdict": "approve"})
    assert again.status_code == 400
    assert "You have already reviewed this version." in again.content.decode()
    assert version.reviews.count() == 1

    client_for(reviewer2).post(review_url(version), {"verdict": "approve"})
    version.refresh_from_db()
    assert version.state == State.ACTIVE


def test_rejecting_needs_a_comment(world: World, administrator: User, reviewer: User) -> None:
    version = propose(world, administrator)

    bare = client_for(reviewer).post(review_url(version), {"verdict": "reject", "comment": "  "})
    assert bare.status_code == 400
    assert "Say why you reject it, so the author can fix it." in bare.content.decode()
    version.refresh_from_db()
    assert version.state == State.SUBMITTED and not version.reviews.exists()

    done = client_for(reviewer).post(review_url(version), {"verdict": "reject", "comment": "Small is weak at code."})
    assert done.status_code == 302
    version.refresh_from_db()
    assert version.state == State.REJECTED
    assert kinds_of(version)[-2:] == ["policyversion.review.reject", "policyversion.rejected"]
    assert AuditEvent.objects.get(kind="policyversion.rejected").reason == "Small is weak at code."
    assert services.active_version(world.policy).number == 1


def test_a_verdict_must_be_chosen(world: World, administrator: User, reviewer: User) -> None:
    version = propose(world, administrator)
    response = client_for(reviewer).post(review_url(version), {"verdict": "maybe", "comment": "hm"})
    assert response.status_code == 400
    assert "verdict" in response.context["form"].errors
    assert not version.reviews.exists()


def test_a_reviewer_who_edited_the_version_cannot_approve_it(
    world: World, administrator: User, reviewer: User, reviewer2: User
) -> None:
    draft = services.new_draft(world.policy, actor=administrator)
    document = rules_document(pinned_rule(services.version_ref(world.small)))
    draft = services.edit_version(draft, document=document, actor=reviewer2)
    version = services.submit(draft, actor=administrator)
    message = "You wrote or edited this version; someone else must review it."

    page = client_for(reviewer2).get(review_url(version))
    assert message in page.content.decode() and "Record verdict" not in page.content.decode()
    assert "alice, rita" in page.content.decode()

    response = client_for(reviewer2).post(review_url(version), {"verdict": "approve", "comment": "fine"})
    assert response.status_code == 400
    assert response.content.decode().count(message) == 1
    version.refresh_from_db()
    assert version.state == State.SUBMITTED and not Review.objects.filter(policy_version=version).exists()
    assert "policyversion.review.approve" not in kinds_of(version)


def test_the_administrator_who_wrote_it_cannot_approve_it(world: World, administrator: User) -> None:
    version = propose(world, administrator)
    page = client_for(administrator).get(review_url(version)).content.decode()
    assert "Record verdict" not in page and "only reviewers approve or reject" in page
    assert client_for(administrator).post(review_url(version), {"verdict": "approve"}).status_code == 403
    version.refresh_from_db()
    assert version.state == State.SUBMITTED


def test_a_decided_version_offers_no_verdict(world: World, administrator: User, reviewer: User) -> None:
    version = services.active_version(world.policy)
    html = client_for(reviewer).get(review_url(version)).content.decode()
    assert "is active, not waiting for review" in html and "Record verdict" not in html
    assert "This version is active" in html
    response = client_for(reviewer).post(review_url(version), {"verdict": "approve"})
    assert response.status_code == 400
    assert "is active, not waiting for review" in response.content.decode()


def test_an_unknown_version_is_404(world: World, reviewer: User) -> None:
    assert client_for(reviewer).get(reverse("policies:version-review", args=["main", 99])).status_code == 404


# --- Who may do what --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "read", "decide"),
    [("administrator", 200, 403), ("reviewer", 200, 302), ("auditor", 200, 403), ("none", 403, 403)],
)
def test_role_matrix_for_review_pages(
    personas: dict[str, User], world: World, role: str, read: int, decide: int
) -> None:
    version = propose(world, User.objects.create_user("author", password="x"))
    change = services.change_compliance(
        model_version=world.large,
        classification=DataClassification.objects.get(slug="pii"),
        decision="approved",
        reason="DPA",
        evidence="DPA",
        actor=personas["administrator"],
    )
    assert isinstance(change, ComplianceRequest)  # widening asks for review
    client = client_for(personas[role])
    request_url = reverse("policies:compliance-request", args=[change.pk])
    queue = reverse("policies:review-queue")
    for url in (queue, review_url(version), request_url):
        assert client.get(url).status_code == read, url
    assert client.post(queue, {}).status_code == 405
    verdict = {"verdict": "approve", "comment": "ok"}
    assert client.post(review_url(version), verdict).status_code == decide
    assert client.post(request_url, verdict).status_code == decide
    version.refresh_from_db()
    change.refresh_from_db()
    expected = ("active", "applied") if decide == 302 else ("submitted", "pending")
    assert (version.state, change.state) == expected


def test_anonymous_visitors_are_sent_to_sign_in(world: World, administrator: User) -> None:
    version = propose(world, administrator)
    for url in (reverse("policies:review-queue"), review_url(version)):
        response = Client().get(url)
        assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    assert not ComplianceRequest.objects.exists()
