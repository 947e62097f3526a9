"""Policy files: export and import commands, their shared module, and byte-for-byte round trips."""

import io
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

from audit.models import AuditEvent
from policies import services, yaml_io
from policies.document import DocumentError
from policies.models import Policy, PolicyVersion
from policies.tests.factories import activate, pinned_rule, rules_document
from registry.tests.factories import make_version

pytestmark = pytest.mark.django_db
State = PolicyVersion.State


@pytest.fixture
def refs(vocabulary: dict[str, Any]) -> list[str]:
    """Three approved versions, each from its own provider."""
    return [services.version_ref(make_version(lifecycle="approved")) for _ in range(3)]


def rich_rules(refs: list[str]) -> dict[str, Any]:
    """Rules using every part of the schema, so a round trip has something to lose."""
    return rules_document(
        {
            "name": "phi-summaries",
            "description": "PHI goes to the certified model, checked by another provider",
            "match": {
                "task_types": ["summarization"],
                "classifications": ["phi"],
                "complexity": ["high", "medium"],
                "regions": ["eu"],
                "input_tokens": {"min": 10, "max": 100_000},
            },
            "action": {"pinned": refs[0]},
            "fallbacks": [refs[2]],
            "escalation": {"complexity": "high", "tier": "frontier"},
            "verifier": refs[1],
        },
        {"name": "cheap-code", "match": {"task_types": ["code"]}, "action": {"cheapest": {"min_quality": 72.5}}},
        {"name": "fast", "match": {"task_types": ["extraction"]}, "action": {"fastest": {"max_cost_usd": 0.01}}},
        {
            "name": "canary",
            "match": {"input_tokens": {"max": 4000}},
            "action": {"split": [{"model_version": refs[0], "weight": 90}, {"model_version": refs[1], "weight": 10}]},
        },
        {"name": "default", "match": {}, "action": {"tier": "workhorse"}},
    )


@pytest.fixture
def active(refs: list[str], administrator: User, reviewer: User) -> PolicyVersion:
    """Policy "clinical", v1 active with rich rules."""
    version = services.create_policy(
        name="Clinical",
        slug="clinical",
        description="Routing for clinical research: PHI never leaves the certified models.",
        required_approvals=1,
        document=rich_rules(refs),
        actor=administrator,
    )
    return activate(version, reviewer)


def export(*args: str) -> str:
    out = io.StringIO()
    call_command("export_policy", *args, stdout=out)
    return out.getvalue()


def import_file(path: Path, *args: str) -> str:
    out = io.StringIO()
    call_command("import_policy", str(path), *args, stdout=out)
    return out.getvalue()


def test_export_prints_the_settings_and_rules_in_order_without_number_or_state(active: PolicyVersion) -> None:
    text = export("clinical")
    assert text.startswith(
        "policy: clinical\nname: Clinical\n"
        "description: 'Routing for clinical research: PHI never leaves the certified models.'\n"
        "required_approvals: 1\nrules:\n- name: phi-summaries\n"
    )
    assert "number" not in text and "state" not in text and "active" not in text
    assert yaml_io.parse(text, services.catalog()).document == active.document


def test_export_defaults_to_the_active_version_else_the_latest(
    active: PolicyVersion, refs: list[str], administrator: User
) -> None:
    draft = services.edit_version(
        services.new_draft(active.policy, actor=administrator),
        document=rules_document(pinned_rule(refs[2])),
        actor=administrator,
    )
    assert export("clinical") == yaml_io.export_yaml(active)
    assert export("clinical", "--version", str(draft.number)) == yaml_io.export_yaml(draft)
    lonely = services.create_policy(name="Lonely", slug="lonely", document=rules_document(pinned_rule(refs[0])))
    assert export("lonely") == yaml_io.export_yaml(lonely)


def test_export_writes_a_file(active: PolicyVersion, tmp_path: Path) -> None:
    target = tmp_path / "clinical.yaml"
    message = export("clinical", "--output", str(target))
    assert "Wrote clinical v1 (active)" in message
    assert target.read_bytes() == export("clinical").encode("utf-8")


def test_export_refuses_unknown_policies_and_versions(active: PolicyVersion) -> None:
    with pytest.raises(CommandError, match="No policy 'nope'; known: clinical"):
        export("nope")
    with pytest.raises(CommandError, match="has no version 9"):
        export("clinical", "--version", "9")


def test_export_import_export_is_byte_for_byte_identical(active: PolicyVersion, tmp_path: Path) -> None:
    first = export("clinical")
    path = tmp_path / "clinical.yaml"
    path.write_text(first, encoding="utf-8")
    assert "Created clinical v2 (draft)" in import_file(path)
    assert export("clinical", "--version", "2") == first
    v2 = active.policy.versions.get(number=2)
    assert v2.document == active.document and set(v2.document) == {"rules"}


def test_import_creates_a_missing_policy_and_the_round_trip_holds(
    active: PolicyVersion, tmp_path: Path, administrator: User
) -> None:
    text = export("clinical").replace("policy: clinical", "policy: clinical-eu").replace("Clinical", "Clinical EU")
    path = tmp_path / "eu.yaml"
    path.write_text(text, encoding="utf-8")
    output = import_file(path, "--user", "alice")
    assert "Created clinical-eu v1 (draft)" in output
    policy = Policy.objects.get(slug="clinical-eu")
    assert (policy.name, policy.required_approvals) == ("Clinical EU", 1)
    assert policy.description == active.policy.description
    version = policy.versions.get()
    assert list(version.document) == ["rules"]
    assert version.author_name == "alice" and list(version.contributors.all()) == [administrator]
    assert export("clinical-eu") == text


def test_import_into_an_existing_policy_makes_a_draft_from_the_active_one_and_can_submit(
    active: PolicyVersion, refs: list[str], tmp_path: Path
) -> None:
    path = tmp_path / "clinical.yaml"
    path.write_text(
        yaml_io.export_yaml(active).split("rules:")[0] + f"rules:\n- name: all\n  action:\n    pinned: {refs[1]}\n"
    )
    assert "Created clinical v2 (submitted)" in import_file(path, "--submit")
    v2 = active.policy.versions.get(number=2)
    assert v2.state == State.SUBMITTED and v2.based_on == active
    assert v2.summary == "Imported from YAML"
    assert v2.document == {"rules": [{"name": "all", "action": {"pinned": refs[1]}}]}
    active.refresh_from_db()
    assert active.state == State.ACTIVE


def test_a_bare_rules_file_needs_to_name_its_policy(refs: list[str], tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(f"rules:\n- name: all\n  action: {{pinned: {refs[0]}}}\n")
    with pytest.raises(CommandError, match="policy: Name the policy this file is for"):
        import_file(path)


def test_creating_a_policy_needs_a_name(refs: list[str], tmp_path: Path) -> None:
    path = tmp_path / "new.yaml"
    path.write_text(f"policy: fresh\nrules:\n- name: all\n  action: {{pinned: {refs[0]}}}\n")
    with pytest.raises(CommandError, match="does not exist yet; give it a name"):
        import_file(path)
    assert not Policy.objects.exists()


def test_import_of_bad_yaml_names_the_line(active: PolicyVersion, tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("policy: clinical\nrules:\n- name: all\n  action: {pinned: [unclosed\n")
    with pytest.raises(CommandError) as caught:
        import_file(path)
    assert "line 5" in str(caught.value) and "Not valid YAML" in str(caught.value)
    assert active.policy.versions.count() == 1


def test_import_names_the_path_and_line_of_each_problem_and_writes_nothing(
    active: PolicyVersion, refs: list[str], tmp_path: Path
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "policy: clinical\n"
        "rules:\n"
        "- name: canary\n"
        "  action:\n"
        "    split:\n"
        f"    - {{model_version: {refs[0]}, weight: 60}}\n"
        f"    - {{model_version: {refs[1]}, weight: 30}}\n"
        "- name: ghost\n"
        "  match: {task_types: [code]}\n"
        "  action: {pinned: ghost/model/1}\n"
    )
    events = AuditEvent.objects.count()
    with pytest.raises(CommandError) as caught:
        import_file(path)
    message = str(caught.value)
    assert "rules[0].action.split (line 5): Weights sum to 90" in message
    assert "rules[1].action.pinned (line 10): Unknown model version 'ghost/model/1'" in message
    assert active.policy.versions.count() == 1 and AuditEvent.objects.count() == events


def test_import_refuses_settings_that_differ_from_the_policy(active: PolicyVersion, tmp_path: Path) -> None:
    path = tmp_path / "laxer.yaml"
    path.write_text(export("clinical").replace("required_approvals: 1", "required_approvals: 3"))
    with pytest.raises(CommandError, match=r"required_approvals \(line 4\): The file says 3 but the policy has 1"):
        import_file(path)
    assert active.policy.versions.count() == 1


@pytest.mark.parametrize(
    ("header", "path"),
    [
        ("policy: new\nname: New", "policy"),
        ("policy: has space\nname: X", "policy"),
        ("policy: ok\nname: ''", "name"),
        ("policy: ok\nname: Ok\nrequired_approvals: 0", "required_approvals"),
        ("policy: ok\nname: Ok\ndescription: [1]", "description"),
    ],
)
def test_settings_are_checked(refs: list[str], header: str, path: str) -> None:
    text = f"{header}\nrules:\n- name: all\n  action: {{pinned: {refs[0]}}}\n"
    with pytest.raises(DocumentError) as caught:
        yaml_io.import_yaml(text)
    assert [problem.path.split(" ")[0] for problem in caught.value.problems] == [path]


def test_import_reports_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="Cannot read"):
        import_file(tmp_path / "absent.yaml")


def test_import_reports_an_unknown_user(active: PolicyVersion, tmp_path: Path) -> None:
    path = tmp_path / "clinical.yaml"
    path.write_text(export("clinical"))
    with pytest.raises(CommandError, match="No user 'nobody'"):
        import_file(path, "--user", "nobody")


def test_export_is_canonical_whatever_order_the_database_returns_keys_in(active: PolicyVersion) -> None:
    """PostgreSQL's jsonb returns keys shortest first; the file must not change with the database."""
    expected = export("clinical")

    def jsonb_order(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: jsonb_order(value[key]) for key in sorted(value, key=lambda k: (len(k), k))}
        if isinstance(value, list):
            return [jsonb_order(item) for item in value]
        return value

    PolicyVersion.objects.filter(pk=active.pk).update(document=jsonb_order(active.document))
    active.refresh_from_db()
    assert list(active.document["rules"][0]["match"])[:2] == ["regions", "complexity"]
    assert export("clinical") == expected


def test_line_of_finds_the_closest_node() -> None:
    text = "rules:\n- name: a\n  action:\n    split:\n    - {model_version: x, weight: 1}\n"
    assert yaml_io.line_of(text, "rules[0].action.split[0].weight") == 5
    assert yaml_io.line_of(text, "rules[0].action") == 3
    assert yaml_io.line_of(text, "rules[0].verifier") == 2
    assert yaml_io.line_of(text, "$") == 1
    assert yaml_io.line_of("rules: [", "rules") is None


def test_model_versions_outside_the_registry_fail_import(refs: list[str]) -> None:
    with pytest.raises(DocumentError, match="Unknown model version 'acme/none/1'"):
        yaml_io.import_yaml("policy: x\nname: X\nrules:\n- name: all\n  action: {pinned: acme/none/1}\n")
