"""The policy pages and the rule editor: who may do what, and the editor as people use it.

The editor must work without JavaScript, so most tests drive it the way a browser without scripts
does: read the form's current values out of the page, change some, press a button (``op``), and
post them all back.
"""

import html
import io
import re
from html.parser import HTMLParser
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from policies import services, yaml_io
from policies.models import Policy, PolicyVersion
from policies.tests.factories import activate, pinned_rule, rules_document
from registry.tests.factories import make_version

pytestmark = pytest.mark.django_db
State = PolicyVersion.State
Values = dict[str, list[str]]


# --- Fixtures and helpers ---------------------------------------------------------------------


@pytest.fixture
def refs(vocabulary: dict[str, Any]) -> list[str]:
    """Three approved model versions, each from its own provider."""
    return [services.version_ref(make_version(lifecycle="approved")) for _ in range(3)]


@pytest.fixture
def draft(refs: list[str], administrator: User) -> PolicyVersion:
    """Policy "main" with draft v1: one catch-all rule pinned to the first version."""
    return services.create_policy(
        name="Main", slug="main", document=rules_document(pinned_rule(refs[0])), actor=administrator
    )


@pytest.fixture
def history(draft: PolicyVersion, refs: list[str], administrator: User, reviewer: User) -> list[PolicyVersion]:
    """v1 superseded, v2 active, v3 a draft."""
    v1 = activate(draft, reviewer)
    v2 = services.edit_version(
        services.new_draft(v1.policy, actor=administrator),
        document=rules_document(pinned_rule(refs[1])),
        actor=administrator,
    )
    v2 = activate(v2, reviewer)
    v3 = services.new_draft(v1.policy, actor=administrator)
    return [PolicyVersion.objects.get(pk=v.pk) for v in (v1, v2, v3)]


def client_for(user: User | None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def text(response: Any) -> str:
    return html.unescape(response.content.decode())


def untagged(fragment: str) -> str:
    return re.sub(r"<[^>]+>", "", fragment)


def words(response: Any) -> str:
    """The page's text as a person reads it: no tags, single spaces."""
    return " ".join(re.sub(r"<[^>]+>", " ", text(response)).split())


class FormValues(HTMLParser):
    """What a browser would submit from the form with ``css_class``, buttons aside."""

    def __init__(self, css_class: str) -> None:
        super().__init__()
        self.css_class, self.inside, self.values = css_class, False, {}  # type: ignore[var-annotated]
        self.select: str | None = None
        self.first_option: str | None = None
        self.selected = False
        self.textarea: str | None = None
        self.buffer = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "form":
            self.inside = self.css_class in (attributes.get("class") or "").split()
        if not self.inside:
            return
        name = attributes.get("name") or ""
        if tag == "input" and name and attributes.get("type") not in ("submit", "button", "file"):
            if attributes.get("type") in ("checkbox", "radio") and "checked" not in attributes:
                return
            self.values.setdefault(name, []).append(attributes.get("value") or "")
        elif tag == "select":
            self.select, self.first_option, self.selected = name, None, False
            self.values.setdefault(name, [])
        elif tag == "option" and self.select:
            value = attributes.get("value") or ""
            self.first_option = value if self.first_option is None else self.first_option
            if "selected" in attributes:
                self.values[self.select].append(value)
                self.selected = True
        elif tag == "textarea":
            self.textarea, self.buffer = name, ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "select" and self.select:
            if not self.selected and self.first_option is not None:
                self.values[self.select].append(self.first_option)
            self.select = None
        elif tag == "textarea" and self.textarea:
            self.values[self.textarea] = [self.buffer.removeprefix("\n")]
            self.textarea = None
        elif tag == "form":
            self.inside = False

    def handle_data(self, data: str) -> None:
        if self.textarea:
            self.buffer += data


def form_values(response: Any, css_class: str = "editor") -> Values:
    parser = FormValues(css_class)
    parser.feed(response.content.decode())
    return parser.values


def edit_url(version: PolicyVersion, yaml: bool = False) -> str:
    name = "policies:version-edit-yaml" if yaml else "policies:version-edit"
    return reverse(name, args=[version.policy.slug, version.number])


def press(client: Client, version: PolicyVersion, values: Values, op: str) -> Any:
    return client.post(edit_url(version), {**values, "op": op})


def rule_names(values: Values) -> list[str]:
    return [values[f"rule-{i}-name"][0] for i in range(int(values["rules-count"][0]))]


# --- Permissions ------------------------------------------------------------------------------


def read_pages(versions: list[PolicyVersion]) -> list[str]:
    slug = versions[0].policy.slug
    return [
        reverse("policies:policy-list"),
        reverse("policies:policy-detail", args=[slug]),
        *(version.get_absolute_url() for version in versions),
        reverse("policies:version-download", args=[slug, 2]),
    ]


def write_pages(versions: list[PolicyVersion]) -> list[str]:
    """Pages with a form (GET shows it, POST acts)."""
    slug = versions[0].policy.slug
    return [
        reverse("policies:policy-create"),
        edit_url(versions[2]),
        edit_url(versions[2], yaml=True),
        reverse("policies:policy-upload", args=[slug]),
        reverse("policies:version-rollback", args=[slug, 1]),
    ]


def actions(versions: list[PolicyVersion]) -> list[str]:
    """Buttons: POST only."""
    slug = versions[0].policy.slug
    return [reverse("policies:policy-new-draft", args=[slug]), reverse("policies:version-submit", args=[slug, 3])]


@pytest.mark.parametrize(
    ("role", "read", "write"),
    [("administrator", 200, 200), ("reviewer", 200, 403), ("auditor", 200, 403), ("none", 403, 403)],
)
def test_role_matrix_for_policy_pages(
    personas: dict[str, User], history: list[PolicyVersion], role: str, read: int, write: int
) -> None:
    client = client_for(personas[role])
    for url in read_pages(history):
        assert client.get(url).status_code == read, url
    for url in write_pages(history):
        assert client.get(url).status_code == write, url
        assert client.post(url, {}).status_code in ({403} if write == 403 else {200, 302, 400}), url
    for url in actions(history):
        assert client.get(url).status_code == (405 if write == 200 else 403), url
        assert client.post(url, {}).status_code == (302 if write == 200 else 403), url


def test_anonymous_visitors_are_sent_to_sign_in(history: list[PolicyVersion]) -> None:
    client = Client()
    for url in read_pages(history) + write_pages(history) + actions(history):
        for method in (client.get, client.post):
            response = method(url)
            assert response.status_code == 302 and response["Location"].startswith("/accounts/login/"), url


def test_read_only_roles_change_nothing_by_post(personas: dict[str, User], history: list[PolicyVersion]) -> None:
    events, versions = AuditEvent.objects.count(), PolicyVersion.objects.count()
    upload = {"text": yaml_io.export_yaml(history[1])}
    for role in ("reviewer", "auditor", "none"):
        client = client_for(personas[role])
        for url in write_pages(history) + actions(history):
            assert client.post(url, upload).status_code == 403, url
    assert (AuditEvent.objects.count(), PolicyVersion.objects.count()) == (events, versions)


def test_read_only_roles_see_no_controls(personas: dict[str, User], history: list[PolicyVersion]) -> None:
    controls = ("New policy", "New draft", "Upload YAML", "Submit for review", "Roll back to this version", "/edit/")
    for role in ("reviewer", "auditor"):
        client = client_for(personas[role])
        for url in read_pages(history)[:-1]:
            page = text(client.get(url))
            assert not [control for control in controls if control in page], (role, url)
            assert "Download YAML" in page or url == reverse("policies:policy-list")
    admin = client_for(personas["administrator"])
    assert "New policy" in text(admin.get(reverse("policies:policy-list")))
    detail = text(admin.get(reverse("policies:policy-detail", args=["main"])))
    assert all(control in detail for control in ("New draft", "Upload YAML", "Roll back to this version"))
    assert "Submit for review" in text(admin.get(history[2].get_absolute_url()))


# --- List, detail, version --------------------------------------------------------------------


def test_the_list_shows_active_version_waiting_reviews_and_required_approvals(
    history: list[PolicyVersion], administrator: User
) -> None:
    services.submit(history[2], actor=administrator)
    services.create_policy(
        name="Other", slug="other", required_approvals=2, document=history[0].document, actor=administrator
    )
    page = text(client_for(administrator).get(reverse("policies:policy-list")))
    main = re.search(r"<tr><td><a href=\"/policies/main/\">Main</a>.*?</tr>", page, re.S)
    other = re.search(r"<tr><td><a href=\"/policies/other/\">Other</a>.*?</tr>", page, re.S)
    assert main and other
    cells = re.findall(r"<td class=\"num\">(.*?)</td>", main.group(0), re.S)
    assert ">v2<" in cells[0] and ">1<" in cells[1] and cells[3] == "1"
    other_cells = re.findall(r"<td class=\"num\">(.*?)</td>", other.group(0), re.S)
    assert "none" in other_cells[0] and other_cells[3] == "2"
    assert reverse("policies:review-queue") in page


def test_the_list_needs_few_queries(
    history: list[PolicyVersion], administrator: User, django_assert_max_num_queries: Any
) -> None:
    for n in range(5):
        services.create_policy(name=f"P{n}", slug=f"p{n}", document=history[0].document, actor=administrator)
    client = client_for(administrator)
    with django_assert_max_num_queries(8):
        client.get(reverse("policies:policy-list"))


def test_the_detail_shows_versions_and_the_active_rules_in_words(
    history: list[PolicyVersion], refs: list[str], administrator: User
) -> None:
    page = text(client_for(administrator).get(reverse("policies:policy-detail", args=["main"])))
    for version in history:
        assert f'href="{version.get_absolute_url()}">v{version.number}</a>' in page
    assert "Superseded" in page and "Active" in page and "Draft" in page
    assert f"use {refs[1]}" in page and "every request" in page
    assert reverse("policies:version-download", args=["main", 2]) in page
    assert page.count("Roll back to this version") == 1


def test_the_version_page_shows_reviews_rules_and_yaml(
    draft: PolicyVersion, refs: list[str], administrator: User, reviewer: User
) -> None:
    services.submit(draft, actor=administrator)
    services.review(draft, reviewer=reviewer, verdict="reject", comment="Too broad: pin PHI first.")
    page = text(client_for(administrator).get(draft.get_absolute_url()))
    assert "Rejected" in page and "rob" in page and "Too broad: pin PHI first." in page
    assert "alice" in page
    assert f"use {refs[0]}" in page
    assert f'<pre class="document" aria-label="The rules as YAML">{yaml_io.rules_yaml(draft.document)}</pre>' in page
    assert "New draft from this version" in page and ">Edit<" not in page


def test_the_version_page_says_editing_a_submitted_version_makes_a_new_draft(
    draft: PolicyVersion, administrator: User
) -> None:
    services.submit(draft, actor=administrator)
    page = text(client_for(administrator).get(draft.get_absolute_url()))
    assert "Editing it makes a new draft and withdraws this version" in page
    assert "0 of 1 approval so far" in page
    assert edit_url(draft) in page and "Submit for review" not in page


# --- Creating a policy ------------------------------------------------------------------------


def test_an_administrator_creates_a_policy_from_the_template(refs: list[str], administrator: User) -> None:
    client = client_for(administrator)
    response = client.get(reverse("policies:policy-create"))
    values = form_values(response, "policy-form")
    values.pop("csrfmiddlewaretoken")
    assert "pinned: " in values["rules_yaml"][0]
    assert any(ref in values["rules_yaml"][0] for ref in refs)
    values.update(name=["Clinical"], slug=["clinical"], description=["For the clinic"], required_approvals=["2"])
    response = client.post(reverse("policies:policy-create"), values)
    assert response.status_code == 302
    policy = Policy.objects.get(slug="clinical")
    assert (policy.name, policy.description, policy.required_approvals) == ("Clinical", "For the clinic", 2)
    version = policy.versions.get()
    assert response["Location"] == version.get_absolute_url()
    assert (version.number, version.state, version.author_name) == (1, State.DRAFT, "alice")
    assert version.document == yaml_io.parse(values["rules_yaml"][0], services.catalog()).document


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"slug": "new"}, "reserved"),
        ({"rules_yaml": "rules:\n- name: a\n  action: {pinned: [\n"}, "line 4, column 1: Not valid YAML"),
        ({"rules_yaml": "rules:\n- name: a\n  action: {pinned: ghost/model/1}\n"}, "rules[0].action.pinned (line 3)"),
        ({"rules_yaml": "policy: other\nrules: []\n"}, "Give at least one rule"),
        ({"required_approvals": "0"}, "greater than or equal to 1"),
    ],
)
def test_creating_a_policy_reports_problems_and_creates_nothing(
    refs: list[str], administrator: User, change: dict[str, str], message: str
) -> None:
    data = {
        "name": "Clinical",
        "slug": "clinical",
        "required_approvals": "1",
        "rules_yaml": f"rules:\n- name: a\n  action: {{pinned: {refs[0]}}}\n",
        **change,
    }
    response = client_for(administrator).post(reverse("policies:policy-create"), data)
    assert response.status_code == 400
    assert message in text(response)
    assert not Policy.objects.exists()


def test_creating_a_policy_refuses_settings_inside_the_yaml(refs: list[str], administrator: User) -> None:
    data = {
        "name": "Clinical",
        "slug": "clinical",
        "required_approvals": "1",
        "rules_yaml": f"required_approvals: 0\nrules:\n- name: a\n  action: {{pinned: {refs[0]}}}\n",
    }
    response = client_for(administrator).post(reverse("policies:policy-create"), data)
    assert response.status_code == 400 and not Policy.objects.exists()


# --- The editor, without JavaScript -----------------------------------------------------------


def test_add_move_remove_then_split_60_40_saves_a_validated_draft(
    draft: PolicyVersion, refs: list[str], administrator: User
) -> None:
    client = client_for(administrator)
    events = AuditEvent.objects.count()
    values = form_values(client.get(edit_url(draft)))
    assert rule_names(values) == ["default"]

    response = press(client, draft, values, "add")
    assert response.status_code == 200
    values = form_values(response)
    assert rule_names(values) == ["default", "rule-2"]
    values["rule-1-task_types"] = ["code"]

    values = form_values(press(client, draft, values, "up:1"))
    assert rule_names(values) == ["rule-2", "default"]
    assert values["rule-0-task_types"] == ["code"]

    values = form_values(press(client, draft, values, "remove:0"))
    assert rule_names(values) == ["default"]
    draft.refresh_from_db()
    assert draft.document == rules_document(pinned_rule(refs[0])), "buttons other than save change nothing"
    assert AuditEvent.objects.count() == events

    values["rule-0-action"] = ["split"]
    values.update(
        {
            "rule-0-split_version_0": [refs[0]],
            "rule-0-split_weight_0": ["60"],
            "rule-0-split_version_1": [refs[1]],
            "rule-0-split_weight_1": ["40"],
            "summary": ["Canary for the second version"],
        }
    )
    response = press(client, draft, values, "save")
    assert response.status_code == 302 and response["Location"] == draft.get_absolute_url()
    draft.refresh_from_db()
    assert draft.state == State.DRAFT and draft.summary == "Canary for the second version"
    assert draft.document == {
        "rules": [
            {
                "name": "default",
                "match": {},
                "action": {
                    "split": [{"model_version": refs[0], "weight": 60}, {"model_version": refs[1], "weight": 40}]
                },
            }
        ]
    }
    assert PolicyVersion.objects.count() == 1
    assert AuditEvent.objects.filter(kind="policyversion.edited", actor_name="alice").count() == 1


def test_move_down_and_the_buttons_at_the_ends(draft: PolicyVersion, administrator: User) -> None:
    client = client_for(administrator)
    values = form_values(press(client, draft, form_values(client.get(edit_url(draft))), "add"))
    values = form_values(press(client, draft, values, "down:0"))
    assert rule_names(values) == ["rule-2", "default"]
    assert rule_names(form_values(press(client, draft, values, "down:1"))) == ["rule-2", "default"]
    assert rule_names(form_values(press(client, draft, values, "up:0"))) == ["rule-2", "default"]


def test_every_field_of_a_rule_round_trips_through_the_editor(
    draft: PolicyVersion, refs: list[str], administrator: User, vocabulary: dict[str, Any]
) -> None:
    rich = {
        "name": "phi",
        "description": "PHI, checked elsewhere",
        "match": {
            "task_types": ["summarization"],
            "classifications": ["phi", "pii"],
            "complexity": ["high"],
            "regions": ["eu"],
            "input_tokens": {"min": 10, "max": 5000},
        },
        "action": {"cheapest": {"min_quality": 72.5, "tier": "workhorse"}},
        "fallbacks": [refs[2], refs[1]],
        "escalation": {"complexity": "high", "tier": "frontier"},
        "verifier": refs[1],
        "over_budget": "downgrade",
    }
    fastest = {"name": "fast", "match": {"task_types": ["code"]}, "action": {"fastest": {"max_cost_usd": 0.01}}}
    tier = {"name": "default", "match": {}, "action": {"tier": "economy"}}
    document = {"rules": [rich, fastest, tier]}
    draft = services.edit_version(draft, document=document, actor=administrator)
    client = client_for(administrator)
    values = form_values(client.get(edit_url(draft)))
    assert values["rule-0-classifications"] == ["phi", "pii"]
    assert press(client, draft, values, "save").status_code == 302
    draft.refresh_from_db()
    assert draft.document == document


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"rule-0-action": ["split"], "rule-0-split_weight_0": ["60"], "rule-0-split_weight_1": ["30"]},
            ["rules[0].action.split: Weights sum to 90; they must sum to 100."],
        ),
        ({"rule-0-pinned": ["ghost/model/1"]}, ["rules[0].action.pinned: Unknown model version 'ghost/model/1'"]),
        ({"rule-0-name": [""]}, ["rules[0].name: Give the rule a name"]),
        (
            {"rule-0-tokens_min": ["9"], "rule-0-tokens_max": ["3"]},
            ["rules[0].match.input_tokens: min 9 is above max 3"],
        ),
        ({"rule-0-escalation_tier": ["frontier"]}, ["rules[0].escalation.complexity: Use one of low, medium, high"]),
        ({"rule-0-action": ["cheapest"]}, ["rules[0].action.cheapest: Give {min_quality: 0-100}"]),
    ],
)
def test_invalid_input_shows_each_problem_at_the_top_and_by_its_rule_and_saves_nothing(
    draft: PolicyVersion, refs: list[str], administrator: User, change: Values, expected: list[str]
) -> None:
    client = client_for(administrator)
    values = form_values(client.get(edit_url(draft)))
    values.update({"rule-0-split_version_0": [refs[0]], "rule-0-split_version_1": [refs[1]]})
    values.update(change)
    events = AuditEvent.objects.count()
    response = press(client, draft, values, "save")
    assert response.status_code == 400
    page = text(response)
    top = untagged(page.split('id="problems">')[1].split("Summary of the change")[0])
    rule = untagged(page.split('id="rule-0" data-rule>')[1].split("Move up")[0])
    for message in expected:
        assert message in top and message in rule
    assert "nothing was saved" in page
    draft.refresh_from_db()
    assert draft.document == rules_document(pinned_rule(refs[0]))
    assert AuditEvent.objects.count() == events
    shown = form_values(response)
    assert {key: shown[key] for key in change} == change, "what was typed is shown again"


def test_an_unknown_model_version_stays_selected_and_is_marked(draft: PolicyVersion, administrator: User) -> None:
    client = client_for(administrator)
    values = form_values(client.get(edit_url(draft)))
    values["rule-0-pinned"] = ["ghost/model/1"]
    response = press(client, draft, values, "save")
    assert form_values(response)["rule-0-pinned"] == ["ghost/model/1"]
    assert "ghost/model/1 (unknown)" in text(response)


def test_a_rule_shadowed_by_an_earlier_catch_all_is_reported(draft: PolicyVersion, administrator: User) -> None:
    client = client_for(administrator)
    values = form_values(press(client, draft, form_values(client.get(edit_url(draft))), "add"))
    values["rule-1-task_types"] = ["code"]
    response = press(client, draft, values, "save")
    assert response.status_code == 400
    page = text(response)
    assert "rules[1]: Unreachable: rules[0] ('default') comes first" in untagged(page)
    assert '<a href="#rule-1"><code>rules[1]</code></a>' in page
    assert 'class="rule has-problems" id="rule-1"' in page
    draft.refresh_from_db()
    assert len(draft.document["rules"]) == 1

    values = form_values(press(client, draft, values, "down:0"))
    assert press(client, draft, values, "save").status_code == 302
    draft.refresh_from_db()
    assert [rule["name"] for rule in draft.document["rules"]] == ["rule-2", "default"]


def test_check_validates_without_saving(draft: PolicyVersion, administrator: User) -> None:
    client = client_for(administrator)
    values = form_values(client.get(edit_url(draft)))
    values["rule-0-description"] = ["Checked, not saved"]
    response = press(client, draft, values, "check")
    assert response.status_code == 200 and "No problems found" in text(response)
    draft.refresh_from_db()
    assert "description" not in draft.document["rules"][0]


def test_removing_every_rule_cannot_be_saved(draft: PolicyVersion, administrator: User) -> None:
    client = client_for(administrator)
    values = form_values(press(client, draft, form_values(client.get(edit_url(draft))), "remove:0"))
    assert values["rules-count"] == ["0"]
    response = press(client, draft, values, "save")
    assert response.status_code == 400 and "rules</code>: Give at least one rule" in response.content.decode()


@pytest.mark.parametrize(
    "data",
    [
        {"rules-count": "many", "op": "save"},
        {"rules-count": "-4", "op": "up:x"},
        {"rules-count": "3", "op": "remove:99"},
        {"rules-count": "1", "rule-0-split_rows": "100000", "rule-0-action": "split", "op": "check"},
        {"rules-count": "1", "rule-0-action": "fastest", "rule-0-max_cost_usd": "inf", "op": "save"},
        {"rules-count": "1", "rule-0-action": "teleport", "rule-0-tokens_min": "ten", "op": "save"},
    ],
)
def test_malformed_posts_are_reported_not_crashed_on(
    draft: PolicyVersion, administrator: User, data: dict[str, str]
) -> None:
    response = client_for(administrator).post(edit_url(draft), {"base": "", **data})
    assert response.status_code in (200, 400)
    draft.refresh_from_db()
    assert draft.document["rules"][0]["name"] == "default"


def test_editing_a_submitted_version_makes_a_new_draft_and_withdraws_it(
    draft: PolicyVersion, refs: list[str], administrator: User, reviewer: User
) -> None:
    client = client_for(administrator)
    assert client.post(reverse("policies:version-submit", args=["main", 1])).status_code == 302
    draft.refresh_from_db()
    assert draft.state == State.SUBMITTED
    page = client.get(edit_url(draft))
    assert "Saving makes a new draft with your rules and withdraws v1" in words(page)
    values = form_values(page)
    values["rule-0-pinned"] = [refs[2]]
    response = press(client, draft, values, "save")
    v2 = draft.policy.versions.get(number=2)
    assert response.status_code == 302 and response["Location"] == v2.get_absolute_url()
    draft.refresh_from_db()
    assert draft.state == State.WITHDRAWN
    assert (v2.state, v2.based_on, v2.document) == (State.DRAFT, draft, rules_document(pinned_rule(refs[2])))
    assert "v1 is withdrawn" in text(client.get(response["Location"]))


def test_a_save_over_someone_elses_change_is_refused_once(
    draft: PolicyVersion, refs: list[str], administrator: User
) -> None:
    client = client_for(administrator)
    values = form_values(client.get(edit_url(draft)))
    services.edit_version(draft, document=rules_document(pinned_rule(refs[1])), actor=administrator)
    values["rule-0-description"] = ["mine"]
    response = press(client, draft, values, "save")
    assert response.status_code == 409 and "changed after you opened it" in text(response)
    draft.refresh_from_db()
    assert draft.document == rules_document(pinned_rule(refs[1]))
    assert press(client, draft, form_values(response), "save").status_code == 302
    draft.refresh_from_db()
    assert draft.document["rules"][0]["description"] == "mine"


def test_versions_that_are_not_editable_send_you_back(history: list[PolicyVersion], administrator: User) -> None:
    client = client_for(administrator)
    for version in history[:2]:
        for yaml in (False, True):
            response = client.get(edit_url(version, yaml=yaml))
            assert response.status_code == 302 and response["Location"] == version.get_absolute_url()
    assert "start a new draft from it" in text(client.get(edit_url(history[1]), follow=True))


# --- The editor's YAML view -------------------------------------------------------------------


def test_the_yaml_view_saves_edited_yaml(draft: PolicyVersion, refs: list[str], administrator: User) -> None:
    client = client_for(administrator)
    values = form_values(client.get(edit_url(draft, yaml=True)))
    assert values["yaml"] == [yaml_io.rules_yaml(draft.document)]
    values["yaml"] = [values["yaml"][0].replace(refs[0], refs[1])]
    response = client.post(edit_url(draft, yaml=True), {**values, "op": "save"})
    assert response.status_code == 302
    draft.refresh_from_db()
    assert draft.document == rules_document(pinned_rule(refs[1]))


@pytest.mark.parametrize(
    ("yaml", "message"),
    [
        ("rules:\n- name: a\n  action: {pinned: [\n", "line 4"),
        ("rules:\n- name: a\n  action:\n    tier: premium\n", "rules[0].action.tier (line 4): Use one of"),
        ("policy: other\nrules:\n- name: a\n  action: {tier: economy}\n", "This file is for policy “other”"),
        ("rules:\n- name: a\n  action: {tier: economy}\n  when: always\n", "rules[0].when (line 4): Unknown key"),
    ],
)
def test_the_yaml_view_reports_problems_with_their_line(
    draft: PolicyVersion, administrator: User, yaml: str, message: str
) -> None:
    client = client_for(administrator)
    values = form_values(client.get(edit_url(draft, yaml=True)))
    response = client.post(edit_url(draft, yaml=True), {**values, "yaml": yaml, "op": "save"})
    assert response.status_code == 400
    assert message in untagged(text(response))
    assert form_values(response)["yaml"] == [yaml]
    draft.refresh_from_db()
    assert draft.document["rules"][0]["name"] == "default"


def test_the_yaml_view_accepts_a_whole_exported_file(history: list[PolicyVersion], administrator: User) -> None:
    client = client_for(administrator)
    values = form_values(client.get(edit_url(history[2], yaml=True)))
    exported = yaml_io.export_yaml(history[0])
    assert client.post(edit_url(history[2], yaml=True), {**values, "yaml": exported}).status_code == 302
    history[2].refresh_from_db()
    assert history[2].document == history[0].document


# --- Workflow buttons -------------------------------------------------------------------------


def test_submit_sends_a_draft_for_review_once(draft: PolicyVersion, administrator: User) -> None:
    client = client_for(administrator)
    url = reverse("policies:version-submit", args=["main", 1])
    page = text(client.post(url, follow=True))
    assert "Submitted v1 for review. It needs 1 approval" in page
    draft.refresh_from_db()
    assert draft.state == State.SUBMITTED and draft.submitted_at is not None
    assert "Not submitted: Only a draft can be submitted" in text(client.post(url, follow=True))


def test_new_draft_copies_the_active_version_and_opens_the_editor(
    history: list[PolicyVersion], administrator: User
) -> None:
    response = client_for(administrator).post(reverse("policies:policy-new-draft", args=["main"]))
    v4 = history[0].policy.versions.get(number=4)
    assert response["Location"] == edit_url(v4)
    assert (v4.state, v4.based_on, v4.document) == (State.DRAFT, history[1], history[1].document)


def test_new_draft_from_a_chosen_version(history: list[PolicyVersion], administrator: User) -> None:
    client_for(administrator).post(reverse("policies:policy-new-draft", args=["main"]), {"based_on": "1"})
    v4 = history[0].policy.versions.get(number=4)
    assert (v4.based_on, v4.document) == (history[0], history[0].document)


def test_rollback_asks_first_then_submits_a_copy_for_review(history: list[PolicyVersion], administrator: User) -> None:
    client = client_for(administrator)
    url = reverse("policies:version-rollback", args=["main", 1])
    page = text(client.get(url))
    assert "Yes, roll back to v1" in page and "v2 stays active" in page
    assert PolicyVersion.objects.count() == 3
    response = client.post(url)
    v4 = history[0].policy.versions.get(number=4)
    assert response["Location"] == v4.get_absolute_url()
    assert (v4.state, v4.document, v4.summary) == (State.SUBMITTED, history[0].document, "Rollback to v1")
    history[1].refresh_from_db()
    assert history[1].state == State.ACTIVE


def test_rollback_is_only_to_a_superseded_version(history: list[PolicyVersion], administrator: User) -> None:
    client = client_for(administrator)
    url = reverse("policies:version-rollback", args=["main", 2])
    assert "Only a superseded version" in text(client.get(url))
    assert client.post(url).status_code == 400
    assert PolicyVersion.objects.count() == 3


def test_unknown_policies_and_versions_are_404(history: list[PolicyVersion], administrator: User) -> None:
    client = client_for(administrator)
    for url in (
        reverse("policies:policy-detail", args=["nope"]),
        reverse("policies:version-detail", args=["main", 9]),
        reverse("policies:version-download", args=["main", 9]),
        edit_url(history[0]).replace("/1/", "/9/"),
    ):
        assert client.get(url).status_code == 404, url


# --- Download and upload ----------------------------------------------------------------------


def download(client: Client, slug: str, number: int) -> bytes:
    response = client.get(reverse("policies:version-download", args=[slug, number]))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/yaml; charset=utf-8"
    assert response["Content-Disposition"] == f'attachment; filename="{slug}-v{number}.yaml"'
    return response.content


def test_download_gives_the_same_bytes_as_export_policy(history: list[PolicyVersion], auditor: User) -> None:
    out = io.StringIO()
    call_command("export_policy", "main", stdout=out)
    assert download(client_for(auditor), "main", 2) == out.getvalue().encode("utf-8")


def test_download_upload_download_is_byte_for_byte_identical(history: list[PolicyVersion], administrator: User) -> None:
    client = client_for(administrator)
    first = download(client, "main", 2)
    upload = SimpleUploadedFile("main.yaml", first, content_type="application/yaml")
    response = client.post(reverse("policies:policy-upload", args=["main"]), {"file": upload, "summary": "From git"})
    v4 = history[0].policy.versions.get(number=4)
    assert response.status_code == 302 and response["Location"] == v4.get_absolute_url()
    assert (v4.state, v4.summary, v4.author_name) == (State.DRAFT, "From git", "alice")
    assert download(client, "main", 4) == first


def test_upload_by_pasting_yaml_without_settings(
    history: list[PolicyVersion], refs: list[str], administrator: User
) -> None:
    client = client_for(administrator)
    pasted = f"rules:\n- name: all\n  action: {{pinned: {refs[2]}}}\n"
    response = client.post(reverse("policies:policy-upload", args=["main"]), {"text": pasted})
    assert response.status_code == 302
    v4 = history[0].policy.versions.get(number=4)
    assert v4.document == {"rules": [{"name": "all", "action": {"pinned": refs[2]}}]}
    assert v4.summary == "Imported from YAML"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"rules:\n- name: all\n  action: {pinned: [\n", "line 4"),
        (b"policy: other\nrules:\n- name: all\n  action: {tier: economy}\n", "This file is for policy “other”"),
        (b"name: Renamed\nrules:\n- name: all\n  action: {tier: economy}\n", "name (line 1): The file says 'Renamed'"),
        (b"rules:\n- name: all\n  action: {tier: premium}\n", "rules[0].action.tier (line 3)"),
        (b"\xff\xfe not utf-8", "not UTF-8"),
        (b"", "Choose a file or paste its YAML"),
    ],
)
def test_upload_reports_problems_and_creates_nothing(
    history: list[PolicyVersion], administrator: User, content: bytes, message: str
) -> None:
    data: dict[str, Any] = {"file": SimpleUploadedFile("x.yaml", content)} if content else {"text": "  "}
    response = client_for(administrator).post(reverse("policies:policy-upload", args=["main"]), data)
    assert response.status_code == 400
    assert message in untagged(text(response))
    assert PolicyVersion.objects.count() == 3


# --- In a real browser, with JavaScript ------------------------------------------------------


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_editor_in_a_browser_shows_only_the_chosen_actions_inputs(
    page: Any, administrator: User, vocabulary: dict[str, Any]
) -> None:
    from conftest import sign_in

    refs = [services.version_ref(make_version(lifecycle="approved")) for _ in range(2)]
    draft = services.create_policy(
        name="Main", slug="main", document=rules_document(pinned_rule(refs[0])), actor=administrator
    )
    sign_in(page, "alice")
    page.goto(edit_url(draft))
    rule = page.locator("#rule-0")
    assert rule.get_by_label("Model version:", exact=True).is_visible()
    assert not rule.get_by_label("Split entry 1: model version").is_visible()

    rule.get_by_label("Action type").select_option("split")
    assert not rule.get_by_label("Model version:", exact=True).is_visible()
    rule.get_by_label("Split entry 1: model version").select_option(refs[0])
    rule.get_by_label("Split entry 1: weight (%)").fill("60")
    rule.get_by_label("Split entry 2: model version").select_option(refs[1])
    rule.get_by_label("Split entry 2: weight (%)").fill("30")
    assert "Total: 90%, must be 100." in rule.locator("output").inner_text()
    page.get_by_role("button", name="Save draft").click()
    assert page.get_by_text("Weights sum to 90; they must sum to 100.").first.is_visible()

    page.locator("#rule-0").get_by_label("Split entry 2: weight (%)").fill("40")
    page.get_by_role("button", name="Save draft").click()
    page.wait_for_url(f"**{draft.get_absolute_url()}")
    assert page.get_by_text("Saved draft v1.").is_visible()
    draft.refresh_from_db()
    assert draft.document["rules"][0]["action"]["split"][1] == {"model_version": refs[1], "weight": 40}
