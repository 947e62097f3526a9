"""The policy document schema: every rule ``validate`` enforces, each problem named by its path.

No database: ``policies.document`` checks against a ``Catalog`` of what exists, built here by hand.
"""

from typing import Any

import pytest

from policies.document import (
    Catalog,
    DocumentError,
    Problem,
    check,
    from_yaml,
    referenced_versions,
    to_yaml,
    validate,
)

CATALOG = Catalog(
    versions={
        "acme/large/1": "acme",
        "acme/small/1": "acme",
        "bolt/fast/2": "bolt",
        "cirrus/big/3": "cirrus",
    },
    task_types=frozenset({"code", "summarization"}),
    classifications=frozenset({"public", "phi"}),
    applications=frozenset({"trial-summarizer"}),
    teams=frozenset({"clinical"}),
    regions=frozenset({"eu", "us"}),
)


def rule(name: str = "default", **overrides: Any) -> dict[str, Any]:
    return {"name": name, "match": {}, "action": {"pinned": "acme/large/1"}, **overrides}


def document(*rules: dict[str, Any]) -> dict[str, Any]:
    return {"rules": list(rules) or [rule()]}


def paths(doc: Any) -> list[str]:
    return [problem.path for problem in validate(doc, CATALOG)]


def messages(doc: Any) -> str:
    return " | ".join(str(problem) for problem in validate(doc, CATALOG))


def test_a_complete_rule_is_valid() -> None:
    full = rule(
        "clinical-phi",
        description="PHI summaries stay with the certified model",
        match={
            "task_types": ["summarization"],
            "classifications": ["phi"],
            "applications": ["trial-summarizer"],
            "teams": ["clinical"],
            "complexity": ["high"],
            "regions": ["eu"],
            "input_tokens": {"min": 0, "max": 100_000},
        },
        fallbacks=["cirrus/big/3"],
        escalation={"complexity": "high", "tier": "frontier"},
        verifier="bolt/fast/2",
        over_budget="downgrade",
    )
    assert validate(document(full), CATALOG) == []
    assert check(document(full), CATALOG) == document(full)


# --- Shape and unknown keys ---------------------------------------------------------------------


@pytest.mark.parametrize("doc", [None, [], "rules: []", 3])
def test_a_document_is_a_mapping(doc: Any) -> None:
    assert paths(doc) == ["$"]


@pytest.mark.parametrize("rules", [None, [], {"name": "x"}, "default"])
def test_a_document_needs_a_list_of_at_least_one_rule(rules: Any) -> None:
    assert paths({"rules": rules}) == ["rules"]


def test_the_policy_settings_are_allowed_at_the_top_and_nothing_else() -> None:
    settings = {"policy": "main", "name": "Main", "description": "", "required_approvals": 2}
    assert paths({**settings, **document()}) == []
    assert paths({**document(), "version": 3}) == ["version"]
    assert "Unknown key" in messages({**document(), "version": 3})


def test_unknown_keys_are_named_at_every_level() -> None:
    assert paths(document(rule(priority=1))) == ["rules[0].priority"]
    assert paths(document(rule(match={"users": ["x"]}))) == ["rules[0].match.users"]
    assert paths(document(rule(escalation={"complexity": "high", "tier": "frontier", "when": 1}))) == [
        "rules[0].escalation.when"
    ]


def test_a_rule_must_be_a_mapping() -> None:
    assert paths({"rules": ["default"]}) == ["rules[0]"]


@pytest.mark.parametrize("name", [None, "", "   ", "x" * 101, 7])
def test_a_rule_has_a_name_of_1_to_100_characters(name: Any) -> None:
    assert paths(document(rule(name=name))) == ["rules[0].name"]


def test_a_description_is_text() -> None:
    assert paths(document(rule(description=["not", "text"]))) == ["rules[0].description"]


def test_rule_names_are_unique() -> None:
    doc = document(rule("a", match={"task_types": ["code"]}), rule("a", match={"task_types": ["summarization"]}))
    assert paths(doc) == ["rules[1].name"]
    assert "'a' is already the name of rules[0]" in messages(doc)


# --- Match ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("task_types", "poetry"),
        ("classifications", "secret"),
        ("applications", "ghost-app"),
        ("teams", "ghost-team"),
        ("complexity", "extreme"),
        ("regions", "mars"),
    ],
)
def test_match_values_come_from_the_registry(key: str, value: str) -> None:
    known = {"task_types": "code", "classifications": "phi", "complexity": "low", "regions": "eu"}
    values = [known[key], value] if key in known else [value]
    doc = document(rule(match={key: values}))
    assert paths(doc) == [f"rules[0].match.{key}[{len(values) - 1}]"]
    assert f"Unknown {key} '{value}'" in messages(doc)


def test_an_empty_vocabulary_says_none_is_defined() -> None:
    doc = document(rule(match={"teams": ["x"]}))
    assert "known: none defined" in " ".join(str(p) for p in validate(doc, Catalog(versions=CATALOG.versions)))


@pytest.mark.parametrize("value", ["code", [1], {"code": True}, None])
def test_match_values_are_lists_of_names(value: Any) -> None:
    assert paths(document(rule(match={"task_types": value}))) == ["rules[0].match.task_types"]


def test_a_match_is_a_mapping() -> None:
    assert paths(document(rule(match=["code"]))) == ["rules[0].match"]


def test_a_rule_without_a_match_matches_everything() -> None:
    bare = {"name": "default", "action": {"pinned": "acme/large/1"}}
    assert validate(document(bare), CATALOG) == []


@pytest.mark.parametrize(
    ("tokens", "path"),
    [
        ({"min": -1}, "rules[0].match.input_tokens.min"),
        ({"max": 1.5}, "rules[0].match.input_tokens.max"),
        ({"min": True}, "rules[0].match.input_tokens.min"),
        ({"min": "5"}, "rules[0].match.input_tokens.min"),
        ({"min": 10, "max": 5}, "rules[0].match.input_tokens"),
        ({"least": 5}, "rules[0].match.input_tokens"),
        ([0, 5], "rules[0].match.input_tokens"),
    ],
)
def test_a_token_range_is_whole_numbers_from_0_with_min_not_above_max(tokens: Any, path: str) -> None:
    assert paths(document(rule(match={"input_tokens": tokens}))) == [path]


def test_a_token_range_may_be_open_at_either_end() -> None:
    for tokens in ({"min": 1000}, {"max": 1000}, {"min": 5, "max": 5}, {}):
        assert paths(document(rule(match={"input_tokens": tokens}))) == [], tokens


def test_min_above_max_says_both() -> None:
    assert "min 10 is above max 5" in messages(document(rule(match={"input_tokens": {"min": 10, "max": 5}})))


def test_a_null_token_minimum_is_a_problem_not_a_crash() -> None:
    assert paths(document(rule(match={"input_tokens": {"min": None, "max": 5}}))) == ["rules[0].match.input_tokens.min"]


# --- Actions ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "action",
    [
        {"pinned": "acme/large/1"},
        {"tier": "economy"},
        {"cheapest": {"min_quality": 80}},
        {"cheapest": {"min_quality": 72.5, "tier": "workhorse"}},
        {"fastest": {"max_cost_usd": 0.01}},
        {"fastest": {"max_cost_usd": 0}},
        {"split": [{"model_version": "acme/large/1", "weight": 90}, {"model_version": "bolt/fast/2", "weight": 10}]},
    ],
)
def test_each_kind_of_action_is_accepted(action: dict[str, Any]) -> None:
    assert validate(document(rule(action=action)), CATALOG) == []


@pytest.mark.parametrize(
    "action", [None, {}, {"route": "acme/large/1"}, {"pinned": "acme/large/1", "tier": "economy"}, "acme/large/1"]
)
def test_an_action_has_exactly_one_known_kind(action: Any) -> None:
    assert paths(document(rule(action=action))) == ["rules[0].action"]


def test_a_rule_needs_an_action() -> None:
    assert paths(document({"name": "default", "match": {}})) == ["rules[0].action"]


def test_a_tier_is_one_of_the_three() -> None:
    assert paths(document(rule(action={"tier": "premium"}))) == ["rules[0].action.tier"]


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ({}, "rules[0].action.cheapest"),
        ({"tier": "economy"}, "rules[0].action.cheapest"),
        ({"min_quality": 80, "max_cost": 1}, "rules[0].action.cheapest"),
        (80, "rules[0].action.cheapest"),
        ({"min_quality": 101}, "rules[0].action.cheapest.min_quality"),
        ({"min_quality": -1}, "rules[0].action.cheapest.min_quality"),
        ({"min_quality": True}, "rules[0].action.cheapest.min_quality"),
        ({"min_quality": "80"}, "rules[0].action.cheapest.min_quality"),
        ({"min_quality": 80, "tier": "premium"}, "rules[0].action.cheapest.tier"),
    ],
)
def test_cheapest_needs_a_quality_score_from_0_to_100_and_maybe_a_tier(value: Any, path: str) -> None:
    assert paths(document(rule(action={"cheapest": value}))) == [path]


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ({}, "rules[0].action.fastest"),
        ({"max_cost_usd": 1, "tier": "economy"}, "rules[0].action.fastest"),
        (0.5, "rules[0].action.fastest"),
        ({"max_cost_usd": -0.01}, "rules[0].action.fastest.max_cost_usd"),
        ({"max_cost_usd": "cheap"}, "rules[0].action.fastest.max_cost_usd"),
        ({"max_cost_usd": False}, "rules[0].action.fastest.max_cost_usd"),
    ],
)
def test_fastest_needs_a_cost_from_0(value: Any, path: str) -> None:
    assert paths(document(rule(action={"fastest": value}))) == [path]


# --- Model version references -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "path"),
    [
        ({"action": {"pinned": "ghost/model/1"}}, "rules[0].action.pinned"),
        ({"fallbacks": ["acme/small/1", "ghost/model/1"]}, "rules[0].fallbacks[1]"),
        ({"verifier": "ghost/model/1"}, "rules[0].verifier"),
        (
            {
                "action": {
                    "split": [
                        {"model_version": "ghost/model/1", "weight": 50},
                        {"model_version": "bolt/fast/2", "weight": 50},
                    ]
                }
            },
            "rules[0].action.split[0].model_version",
        ),
    ],
)
def test_every_model_version_named_must_exist(overrides: dict[str, Any], path: str) -> None:
    doc = document(rule(**overrides))
    assert paths(doc) == [path]
    assert "Unknown model version 'ghost/model/1'" in messages(doc)


@pytest.mark.parametrize("ref", [None, 3, ["acme/large/1"], "acme/large"])
def test_a_reference_is_a_provider_model_version_string(ref: Any) -> None:
    assert paths(document(rule(action={"pinned": ref}))) == ["rules[0].action.pinned"]


def test_fallbacks_are_a_list() -> None:
    assert paths(document(rule(fallbacks="acme/small/1"))) == ["rules[0].fallbacks"]


def test_referenced_versions_collects_pinned_split_fallbacks_and_verifier() -> None:
    doc = document(
        rule("a", match={"task_types": ["code"]}, fallbacks=["acme/small/1"], verifier="bolt/fast/2"),
        rule(
            "b",
            action={
                "split": [
                    {"model_version": "cirrus/big/3", "weight": 50},
                    {"model_version": "acme/large/1", "weight": 50},
                ]
            },
        ),
    )
    assert referenced_versions(doc) == {"acme/large/1", "acme/small/1", "bolt/fast/2", "cirrus/big/3"}


# --- Verifier ---------------------------------------------------------------------------------


def test_a_verifier_comes_from_another_provider_than_the_pinned_model() -> None:
    doc = document(rule(verifier="acme/small/1"))
    assert paths(doc) == ["rules[0].verifier"]
    assert "another provider" in messages(doc)
    assert paths(document(rule(verifier="acme/large/1"))) == ["rules[0].verifier"]
    assert paths(document(rule(verifier="bolt/fast/2"))) == []


def test_a_verifier_beside_an_unpinned_action_is_only_checked_to_exist() -> None:
    assert paths(document(rule(action={"tier": "frontier"}, verifier="acme/small/1"))) == []


# --- Escalation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("escalation", "expected"),
    [
        ({"complexity": "high", "tier": "frontier"}, []),
        ({"complexity": "extreme", "tier": "frontier"}, ["rules[0].escalation.complexity"]),
        ({"complexity": "high", "tier": "premium"}, ["rules[0].escalation.tier"]),
        ({"complexity": "high"}, ["rules[0].escalation.tier"]),
        ({}, ["rules[0].escalation.complexity", "rules[0].escalation.tier"]),
        ("high → frontier", ["rules[0].escalation"]),
    ],
)
def test_an_escalation_names_a_complexity_and_a_tier(escalation: Any, expected: list[str]) -> None:
    assert paths(document(rule(escalation=escalation))) == expected


# --- Splits -----------------------------------------------------------------------------------


def split(*entries: tuple[Any, Any]) -> dict[str, Any]:
    return {"split": [{"model_version": ref, "weight": weight} for ref, weight in entries]}


def test_split_weights_sum_to_100() -> None:
    doc = document(rule(action=split(("acme/large/1", 60), ("bolt/fast/2", 30))))
    assert paths(doc) == ["rules[0].action.split"]
    assert "Weights sum to 90; they must sum to 100." in messages(doc)


@pytest.mark.parametrize("weight", [0, 101, -5, 50.5, True, "50", None])
def test_a_split_weight_is_a_whole_number_from_1_to_100(weight: Any) -> None:
    doc = document(rule(action=split(("acme/large/1", weight), ("bolt/fast/2", 50))))
    assert paths(doc) == ["rules[0].action.split[0].weight"]


def test_a_split_has_at_least_two_entries() -> None:
    assert paths(document(rule(action=split(("acme/large/1", 100))))) == ["rules[0].action.split"]
    assert paths(document(rule(action={"split": "acme/large/1"}))) == ["rules[0].action.split"]


def test_a_split_names_each_version_once() -> None:
    doc = document(rule(action=split(("acme/large/1", 50), ("acme/large/1", 50))))
    assert paths(doc) == ["rules[0].action.split[1].model_version"]


@pytest.mark.parametrize(
    "entry", [{"model_version": "bolt/fast/2"}, {"model_version": "bolt/fast/2", "weight": 50, "x": 1}, "bolt/fast/2"]
)
def test_a_split_entry_is_a_version_and_a_weight(entry: Any) -> None:
    doc = document(rule(action={"split": [{"model_version": "acme/large/1", "weight": 50}, entry]}))
    assert paths(doc) == ["rules[0].action.split[1]"]


def test_a_bad_entry_is_reported_alone_without_a_misleading_sum() -> None:
    doc = document(rule(action=split(("acme/large/1", 60), ("ghost/model/1", 30))))
    assert paths(doc) == ["rules[0].action.split[1].model_version"]


# --- Shadowing --------------------------------------------------------------------------------


def test_a_rule_after_a_catch_all_is_unreachable() -> None:
    doc = document(rule("everything"), rule("code", match={"task_types": ["code"]}))
    assert paths(doc) == ["rules[1]"]
    assert "Unreachable: rules[0] ('everything') comes first" in messages(doc)


def test_a_narrow_rule_before_a_catch_all_is_fine() -> None:
    assert paths(document(rule("code", match={"task_types": ["code"]}), rule("everything"))) == []


def test_a_rule_within_an_earlier_rules_lists_is_unreachable() -> None:
    doc = document(
        rule("wide", match={"task_types": ["code", "summarization"], "regions": ["eu"]}),
        rule("narrow", match={"task_types": ["code"], "regions": ["eu"], "classifications": ["phi"]}),
    )
    assert paths(doc) == ["rules[1]"]


def test_overlapping_but_not_covered_rules_are_both_reachable() -> None:
    doc = document(
        rule("code-eu", match={"task_types": ["code"], "regions": ["eu"]}),
        rule("code", match={"task_types": ["code"]}),
        rule("summaries", match={"task_types": ["code", "summarization"], "regions": ["us"]}),
    )
    assert paths(doc) == []


@pytest.mark.parametrize(
    ("earlier", "later", "shadowed"),
    [
        ({"min": 0, "max": 1000}, {"min": 100, "max": 500}, True),
        ({"min": 0, "max": 1000}, {"min": 100}, False),
        ({"min": 500}, {"min": 100, "max": 1000}, False),
        ({"max": 1000}, {}, False),
        ({}, {"min": 5}, True),
    ],
)
def test_token_ranges_count_for_shadowing(earlier: dict[str, int], later: dict[str, int], shadowed: bool) -> None:
    doc = document(rule("first", match={"input_tokens": earlier}), rule("second", match={"input_tokens": later}))
    assert paths(doc) == (["rules[1]"] if shadowed else [])


def test_shadowing_is_only_judged_once_everything_else_is_right() -> None:
    doc = document(rule("everything"), rule("code", match={"task_types": ["code"]}, verifier="ghost/model/1"))
    assert paths(doc) == ["rules[1].verifier"]


# --- check, YAML ------------------------------------------------------------------------------


def test_check_raises_with_every_problem() -> None:
    with pytest.raises(DocumentError) as caught:
        check(document(rule(name="", action={"tier": "premium"})), CATALOG)
    assert [p.path for p in caught.value.problems] == ["rules[0].name", "rules[0].action.tier"]
    assert "rules[0].name: Give the rule a name" in str(caught.value)


def test_from_yaml_names_the_line_of_a_syntax_error() -> None:
    with pytest.raises(DocumentError) as caught:
        from_yaml("rules:\n  - name: a\n    action: {pinned: x\n")
    (problem,) = caught.value.problems
    assert problem.path.startswith("line ")
    assert "Not valid YAML" in problem.message


def test_to_yaml_and_from_yaml_round_trip() -> None:
    doc = document(rule(description="Ünïcode stays readable", fallbacks=["bolt/fast/2"]))
    text = to_yaml(doc)
    assert from_yaml(text) == doc
    assert to_yaml(from_yaml(text)) == text
    assert "Ünïcode" in text


def test_equal_documents_give_the_same_yaml() -> None:
    ordered = {"rules": [{"name": "a", "match": {}, "action": {"pinned": "acme/large/1"}}]}
    reordered = {"rules": [{"action": {"pinned": "acme/large/1"}, "match": {}, "name": "a"}]}  # as jsonb returns it
    assert ordered == reordered
    assert to_yaml(ordered) == to_yaml(reordered)


def test_a_duplicate_key_in_yaml_is_a_problem() -> None:
    with pytest.raises(DocumentError):
        from_yaml("rules:\n- name: a\n  action: {pinned: acme/large/1}\n  action: {tier: economy}\n")


def test_problems_read_as_path_and_message() -> None:
    assert str(Problem("rules[0].name", "Give it a name.")) == "rules[0].name: Give it a name."


# --- Over budget --------------------------------------------------------------------------------


@pytest.mark.parametrize("choice", ["refuse", "downgrade"])
def test_over_budget_is_refuse_or_downgrade(choice: str) -> None:
    assert validate(document(rule(over_budget=choice)), CATALOG) == []


@pytest.mark.parametrize("choice", ["economy", "", None, True])
def test_any_other_over_budget_is_named_with_the_choices(choice: Any) -> None:
    problems = validate(document(rule(over_budget=choice)), CATALOG)
    assert [str(problem) for problem in problems] == [
        "rules[0].over_budget: Use refuse or downgrade; leave it out to refuse, the default."
    ]


def test_over_budget_comes_last_in_a_rule_and_survives_the_yaml_round_trip() -> None:
    doc = document({"over_budget": "downgrade", "action": {"tier": "economy"}, "name": "cheap", "match": {}})
    text = to_yaml(doc)
    assert text.splitlines()[-1] == "  over_budget: downgrade"
    assert from_yaml(text) == {
        "rules": [{"name": "cheap", "match": {}, "action": {"tier": "economy"}, "over_budget": "downgrade"}]
    }
    assert to_yaml(from_yaml(text)) == text
