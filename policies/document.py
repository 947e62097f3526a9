"""Routing policy documents: their schema, validation with paths, and canonical YAML.

A document is plain data (it is stored as JSON and kept in git as YAML)::

    rules:
      - name: clinical-phi
        match:                       # every key optional; absent or empty means "any"
          task_types: [summarization]
          classifications: [phi]
          applications: [trial-summarizer]
          teams: [clinical-research]
          complexity: [high]         # low, medium, high
          regions: [eu]
          input_tokens: {min: 0, max: 100000}
        action:                      # one of:
          pinned: openai/gpt-standard/4.1            # a model version, "provider/model/version"
          # tier: workhorse                          # the best-scoring version of a tier
          # cheapest: {min_quality: 80, tier: economy}   # cheapest scoring at least 80 (tier optional)
          # fastest: {max_cost_usd: 0.01}            # lowest latency costing at most this per request
          # split: [{model_version: a/b/1, weight: 90}, {model_version: a/b/2, weight: 10}]
        fallbacks: [anthropic/claude-quill/4.0]
        escalation: {complexity: high, tier: frontier}   # optional: this complexity goes to that tier
        verifier: google/gemini-apex/2.5                  # optional, from another provider
        over_budget: downgrade       # optional: refuse (the default) or downgrade

``over_budget`` says what happens when the request's team or application has spent its monthly
budget: ``refuse`` answers 429 naming the budget; ``downgrade`` routes to the economy tier instead,
through every hard filter as always (nothing left: 422). A rule that says nothing refuses: an
unplanned overspend is the costlier mistake, and the policy's author can always choose downgrade.

This module has no Django imports: validation gets a ``Catalog`` of what exists, so the engine
and the tests can use it on their own.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import yaml

COMPLEXITIES = ("low", "medium", "high")
TIERS = ("economy", "workhorse", "frontier")
ACTIONS = ("pinned", "tier", "cheapest", "fastest", "split")
MATCH_LISTS = ("task_types", "classifications", "applications", "teams", "complexity", "regions")
RULE_KEYS = ("name", "description", "match", "action", "fallbacks", "escalation", "verifier", "over_budget")
OVER_BUDGET = ("refuse", "downgrade")
DEFAULT_OVER_BUDGET = "refuse"
DOCUMENT_KEYS = ("policy", "name", "description", "required_approvals", "rules")


@dataclass(frozen=True)
class Catalog:
    """What a document may name. ``versions`` maps "provider/model/version" to its provider slug."""

    versions: dict[str, str] = field(default_factory=dict)
    task_types: frozenset[str] = frozenset()
    classifications: frozenset[str] = frozenset()
    applications: frozenset[str] = frozenset()
    teams: frozenset[str] = frozenset()
    regions: frozenset[str] = frozenset()

    def vocabulary(self, key: str) -> frozenset[str]:
        return {
            "task_types": self.task_types,
            "classifications": self.classifications,
            "applications": self.applications,
            "teams": self.teams,
            "regions": self.regions,
            "complexity": frozenset(COMPLEXITIES),
        }[key]


@dataclass(frozen=True)
class Problem:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class DocumentError(ValueError):
    """A document that cannot be used; ``problems`` name each path and what is wrong."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(problem) for problem in problems))


def validate(document: Any, catalog: Catalog) -> list[Problem]:
    """Every problem in ``document``, each with its path; an empty list means it is usable."""
    problems: list[Problem] = []
    if not isinstance(document, dict):
        return [Problem("$", "A policy document is a mapping with a list of rules under 'rules'.")]
    _unknown_keys(document, DOCUMENT_KEYS, "$", problems)
    rules = document.get("rules")
    if not isinstance(rules, list) or not rules:
        problems.append(Problem("rules", "Give at least one rule, as a list."))
        return problems
    names: dict[str, int] = {}
    for index, rule in enumerate(rules):
        path = f"rules[{index}]"
        if not isinstance(rule, dict):
            problems.append(Problem(path, "A rule is a mapping with 'name', 'match' and 'action'."))
            continue
        _check_rule(rule, path, catalog, problems)
        name = rule.get("name")
        if isinstance(name, str) and name in names:
            problems.append(Problem(f"{path}.name", f"'{name}' is already the name of rules[{names[name]}]."))
        elif isinstance(name, str):
            names[name] = index
    if not problems:
        problems.extend(_shadowed(rules))
    return problems


def check(document: Any, catalog: Catalog) -> dict[str, Any]:
    """``document`` if valid, else ``DocumentError`` listing every problem."""
    problems = validate(document, catalog)
    if problems:
        raise DocumentError(problems)
    return document  # type: ignore[no-any-return]


def _unknown_keys(mapping: dict[str, Any], allowed: Iterable[str], path: str, problems: list[Problem]) -> None:
    allowed = tuple(allowed)
    for key in mapping:
        if key not in allowed:
            problems.append(
                Problem(f"{path}.{key}" if path != "$" else str(key), f"Unknown key; use {', '.join(allowed)}.")
            )


def _check_rule(rule: dict[str, Any], path: str, catalog: Catalog, problems: list[Problem]) -> None:
    _unknown_keys(rule, RULE_KEYS, path, problems)
    name = rule.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 100:
        problems.append(Problem(f"{path}.name", "Give the rule a name of 1 to 100 characters."))
    if not isinstance(rule.get("description", ""), str):
        problems.append(Problem(f"{path}.description", "A description is text."))
    _check_match(rule.get("match", {}), f"{path}.match", catalog, problems)
    action = rule.get("action")
    pinned_provider = _check_action(action, f"{path}.action", catalog, problems)
    fallbacks = rule.get("fallbacks", [])
    if not isinstance(fallbacks, list):
        problems.append(Problem(f"{path}.fallbacks", "Fallbacks are a list of model versions."))
    else:
        for position, ref in enumerate(fallbacks):
            _check_ref(ref, f"{path}.fallbacks[{position}]", catalog, problems)
    escalation = rule.get("escalation")
    if escalation is not None:
        epath = f"{path}.escalation"
        if not isinstance(escalation, dict):
            problems.append(Problem(epath, "An escalation is {complexity: high, tier: frontier}."))
        else:
            _unknown_keys(escalation, ("complexity", "tier"), epath, problems)
            if escalation.get("complexity") not in COMPLEXITIES:
                problems.append(Problem(f"{epath}.complexity", f"Use one of {', '.join(COMPLEXITIES)}."))
            if escalation.get("tier") not in TIERS:
                problems.append(Problem(f"{epath}.tier", f"Use one of {', '.join(TIERS)}."))
    if "over_budget" in rule and rule["over_budget"] not in OVER_BUDGET:
        problems.append(
            Problem(f"{path}.over_budget", f"Use {' or '.join(OVER_BUDGET)}; leave it out to refuse, the default.")
        )
    verifier: Any = rule.get("verifier")  # anything a document says, checked next
    verifier_known = verifier is not None and _check_ref(verifier, f"{path}.verifier", catalog, problems)
    if verifier_known and pinned_provider is not None and catalog.versions[verifier] == pinned_provider:
        problems.append(
            Problem(f"{path}.verifier", "A verifier must come from another provider than the model it checks.")
        )


def _check_match(match: Any, path: str, catalog: Catalog, problems: list[Problem]) -> None:
    if not isinstance(match, dict):
        problems.append(Problem(path, "A match is a mapping, e.g. {task_types: [code]}; leave it out to match all."))
        return
    _unknown_keys(match, (*MATCH_LISTS, "input_tokens"), path, problems)
    for key in MATCH_LISTS:
        values = match.get(key, [])
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            problems.append(Problem(f"{path}.{key}", "Give a list of names."))
            continue
        known = catalog.vocabulary(key)
        for position, value in enumerate(values):
            if value not in known:
                choices = ", ".join(sorted(known)) or "none defined"
                problems.append(Problem(f"{path}.{key}[{position}]", f"Unknown {key} '{value}'; known: {choices}."))
    tokens = match.get("input_tokens")
    if tokens is not None:
        if not isinstance(tokens, dict) or set(tokens) - {"min", "max"}:
            problems.append(Problem(f"{path}.input_tokens", "Give {min: N, max: N} (either may be left out)."))
            return
        low, high = tokens.get("min", 0), tokens.get("max")
        for key, value in (("min", low), ("max", high)):
            if key == "min" and value is None:
                problems.append(Problem(f"{path}.input_tokens.min", "Leave min out, or give a whole number from 0."))
                return
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                problems.append(Problem(f"{path}.input_tokens.{key}", "A token count is a whole number from 0."))
                return
        if high is not None and low > high:
            problems.append(Problem(f"{path}.input_tokens", f"min {low} is above max {high}."))


def _check_ref(ref: Any, path: str, catalog: Catalog, problems: list[Problem]) -> bool:
    if not isinstance(ref, str) or ref not in catalog.versions:
        problems.append(
            Problem(path, f"Unknown model version {ref!r}; name it as provider/model/version, e.g. acme/large/2025-06.")
        )
        return False
    return True


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_action(action: Any, path: str, catalog: Catalog, problems: list[Problem]) -> str | None:
    """Check the action; return the pinned version's provider, for the verifier check."""
    if not isinstance(action, dict) or len(action) != 1 or next(iter(action)) not in ACTIONS:
        problems.append(Problem(path, f"An action has exactly one of: {', '.join(ACTIONS)}."))
        return None
    kind, value = next(iter(action.items()))
    vpath = f"{path}.{kind}"
    if kind == "pinned":
        return catalog.versions[value] if _check_ref(value, vpath, catalog, problems) else None
    if kind == "tier":
        if value not in TIERS:
            problems.append(Problem(vpath, f"Use one of {', '.join(TIERS)}."))
    elif kind == "cheapest":
        if not isinstance(value, dict) or set(value) - {"min_quality", "tier"} or "min_quality" not in value:
            problems.append(Problem(vpath, "Give {min_quality: 0-100} and optionally a tier."))
        else:
            if not _number(value["min_quality"]) or not 0 <= value["min_quality"] <= 100:
                problems.append(Problem(f"{vpath}.min_quality", "A quality score is a number from 0 to 100."))
            if "tier" in value and value["tier"] not in TIERS:
                problems.append(Problem(f"{vpath}.tier", f"Use one of {', '.join(TIERS)}."))
    elif kind == "fastest":
        if not isinstance(value, dict) or set(value) != {"max_cost_usd"}:
            problems.append(Problem(vpath, "Give {max_cost_usd: N}, the most one request may cost."))
        elif not _number(value["max_cost_usd"]) or value["max_cost_usd"] < 0:
            problems.append(Problem(f"{vpath}.max_cost_usd", "A cost is a number from 0."))
    elif kind == "split":
        _check_split(value, vpath, catalog, problems)
    return None


def _check_split(value: Any, path: str, catalog: Catalog, problems: list[Problem]) -> None:
    if not isinstance(value, list) or len(value) < 2:
        problems.append(Problem(path, "A split lists at least two {model_version, weight} entries."))
        return
    total = 0
    seen: set[str] = set()
    for position, entry in enumerate(value):
        epath = f"{path}[{position}]"
        if not isinstance(entry, dict) or set(entry) != {"model_version", "weight"}:
            problems.append(Problem(epath, "Each entry is {model_version: provider/model/version, weight: N}."))
            continue
        if _check_ref(entry["model_version"], f"{epath}.model_version", catalog, problems):
            if entry["model_version"] in seen:
                problems.append(Problem(f"{epath}.model_version", "Each version appears once in a split."))
            seen.add(entry["model_version"])
        weight = entry["weight"]
        if isinstance(weight, bool) or not isinstance(weight, int) or not 0 < weight <= 100:
            problems.append(Problem(f"{epath}.weight", "A weight is a whole number from 1 to 100."))
        else:
            total += weight
    if total and total != 100 and not any(p.path.startswith(path) for p in problems):
        problems.append(Problem(path, f"Weights sum to {total}; they must sum to 100."))


def _covers(earlier: dict[str, Any], later: dict[str, Any]) -> bool:
    """True if every request ``later`` matches is also matched by ``earlier``."""
    for key in MATCH_LISTS:
        wide, narrow = earlier.get(key) or [], later.get(key) or []
        if wide and (not narrow or not set(narrow) <= set(wide)):
            return False
    wide_tokens, narrow_tokens = earlier.get("input_tokens") or {}, later.get("input_tokens") or {}
    if wide_tokens.get("min", 0) > narrow_tokens.get("min", 0):
        return False
    wide_max, narrow_max = wide_tokens.get("max"), narrow_tokens.get("max")
    return wide_max is None or (narrow_max is not None and narrow_max <= wide_max)


def _shadowed(rules: list[dict[str, Any]]) -> list[Problem]:
    """Rules that can never be reached because an earlier rule matches everything they do."""
    problems = []
    for j, rule in enumerate(rules):
        for i in range(j):
            if _covers(rules[i].get("match") or {}, rule.get("match") or {}):
                problems.append(
                    Problem(
                        f"rules[{j}]",
                        f"Unreachable: rules[{i}] ('{rules[i]['name']}') comes first and matches every request "
                        "this rule does. Move it up or narrow the earlier rule.",
                    )
                )
                break
    return problems


def referenced_versions(document: dict[str, Any]) -> set[str]:
    """Every model version a document names (pinned, split, fallbacks, verifier)."""
    refs: set[str] = set()
    for rule in document.get("rules", []):
        action = rule.get("action", {})
        if "pinned" in action:
            refs.add(action["pinned"])
        for entry in action.get("split", []):
            refs.add(entry["model_version"])
        refs.update(rule.get("fallbacks", []))
        if rule.get("verifier"):
            refs.add(rule["verifier"])
    return refs


# The order keys are written in, so a document gives the same bytes whatever order its mappings
# arrived in (PostgreSQL's jsonb, for one, does not keep key order).
_KEY_ORDER: dict[str, tuple[str, ...]] = {
    "document": DOCUMENT_KEYS,
    "rule": RULE_KEYS,
    "match": (*MATCH_LISTS, "input_tokens"),
    "input_tokens": ("min", "max"),
    "cheapest": ("min_quality", "tier"),
    "split": ("model_version", "weight"),
    "escalation": ("complexity", "tier"),
}


def _ordered(mapping: Any, kind: str) -> Any:
    if not isinstance(mapping, dict):
        return mapping
    order = _KEY_ORDER[kind]
    known = [key for key in order if key in mapping]
    others = sorted((key for key in mapping if key not in order), key=str)
    return {key: mapping[key] for key in (*known, *others)}


def _canonical_rule(rule: Any) -> Any:
    rule = _ordered(rule, "rule")
    if not isinstance(rule, dict):
        return rule
    rule = dict(rule)
    if "match" in rule:
        match = _ordered(rule["match"], "match")
        if isinstance(match, dict) and "input_tokens" in match:
            match["input_tokens"] = _ordered(match["input_tokens"], "input_tokens")
        rule["match"] = match
    action = rule.get("action")
    if isinstance(action, dict):
        action = dict(action)
        if "cheapest" in action:
            action["cheapest"] = _ordered(action["cheapest"], "cheapest")
        if isinstance(action.get("split"), list):
            action["split"] = [_ordered(entry, "split") for entry in action["split"]]
        rule["action"] = action
    if "escalation" in rule:
        rule["escalation"] = _ordered(rule["escalation"], "escalation")
    return rule


def canonical(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` with every mapping's keys in the documented order, for stable bytes."""
    result = _ordered(document, "document")
    if isinstance(result.get("rules"), list):
        result["rules"] = [_canonical_rule(rule) for rule in result["rules"]]
    return result  # type: ignore[no-any-return]


def to_yaml(document: dict[str, Any]) -> str:
    """The canonical YAML of a document: equal documents always give the same bytes."""
    return yaml.safe_dump(canonical(document), sort_keys=False, allow_unicode=True, default_flow_style=False, width=100)


class _StrictLoader(yaml.SafeLoader):
    """Refuses a key given twice in one mapping: YAML would silently keep the last one."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"'{key}' is given twice in one mapping", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def from_yaml(text: str) -> Any:
    """Parse YAML; a syntax error or a repeated key becomes a ``DocumentError`` naming the line."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "$"
        raise DocumentError([Problem(where, f"Not valid YAML: {getattr(exc, 'problem', exc)}")]) from exc
