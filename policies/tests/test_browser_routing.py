"""End to end in a real browser: a rule changes by four eyes, and the routing API follows."""

import re
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from conftest import sign_in
from policies import services
from policies.models import PolicyVersion
from policies.tests.factories import make_active_policy, make_app, pinned_rule, rules_document
from registry.tests.factories import approve, make_model, make_provider, make_version

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def routed_model(key: str) -> str:
    answer = Client(HTTP_AUTHORIZATION=f"Bearer {key}").post(
        "/api/v1/route", {"task_type": "code", "data_classification": "internal"}, content_type="application/json"
    )
    assert answer.status_code == 200, answer.content
    return str(answer.json()["model"]["api_model_id"])


def test_an_edited_rule_routes_differently_once_a_reviewer_approves_it(
    page: Any, administrator: User, reviewer: User, vocabulary: dict[str, Any]
) -> None:
    acme = make_provider(name="Acme", slug="acme")
    old = make_version(make_model(acme, name="Large", slug="large"), lifecycle="approved", api_model_id="acme-large")
    new = make_version(make_model(acme, name="Small", slug="small"), lifecycle="approved", api_model_id="acme-small")
    for version in (old, new):
        approve(version)
    policy = make_active_policy(
        rules_document(pinned_rule(services.version_ref(old))),
        author=administrator,
        reviewer=reviewer,
        name="Main",
        slug="main",
    )
    _, key = services.generate_key(make_app(policy=policy), name="e2e")
    assert routed_model(key) == "acme-large"

    # The administrator pins the rule to the other version and submits the change.
    sign_in(page, "alice")
    page.get_by_role("link", name="Policies").click()
    page.get_by_role("link", name="Main").click()
    page.get_by_role("button", name="New draft").click()  # opens the new draft in the editor
    page.locator("#rule-0").get_by_label("Model version:", exact=True).select_option(services.version_ref(new))
    page.get_by_role("button", name="Save draft").click()
    page.wait_for_url(re.compile(r"/policies/main/versions/2/$"))
    page.get_by_role("button", name="Submit for review").click()
    assert PolicyVersion.objects.get(policy=policy, number=2).state == "submitted"
    assert routed_model(key) == "acme-large"  # nothing changes before review

    # A reviewer reads the diff and the impact, then approves.
    page.get_by_role("button", name="Sign out").click()
    sign_in(page, "rob")
    page.get_by_role("link", name="Reviews").click()
    page.get_by_role("link", name="Review Main v2").click()
    page.wait_for_url(re.compile(r"/reviews/policies/main/2/$"))
    page.locator("pre.diff").wait_for()
    added = page.locator(".diff-line.added ins").all_inner_texts()
    removed = page.locator(".diff-line.removed del").all_inner_texts()
    assert any(f"pinned: {services.version_ref(new)}" in line for line in added), added
    assert any(f"pinned: {services.version_ref(old)}" in line for line in removed), removed
    page.get_by_label("Approve").check()
    page.get_by_label("Comment").fill("The small model scores the same on code.")
    page.get_by_role("button", name="Record verdict").click()
    page.wait_for_url(re.compile(r"/reviews/policies/main/2/$"))

    versions = dict(PolicyVersion.objects.filter(policy=policy).values_list("number", "state"))
    assert versions == {1: "superseded", 2: "active"}
    assert routed_model(key) == "acme-small"
