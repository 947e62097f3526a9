"""Forms of the policy pages and the rule editor.

The editor is one form per rule (prefix ``rule-<i>``), posted together. Its forms read what was
typed leniently and turn it into a rule of the document; ``policies.document.validate`` is the one
judge of what is right, so the editor, the YAML view and the import command report the same
problems with the same paths.
"""

import math
from dataclasses import dataclass, field
from typing import Any, cast

from django import forms
from django.forms import BoundField

from policies import document as doc
from policies import services
from policies.models import Policy
from policies.yaml_io import RESERVED_SLUGS
from registry.models import Lifecycle, ModelVersion

Choices = list[tuple[str, str]]

ACTION_LABELS = {
    "pinned": "A pinned model version",
    "tier": "The best-scoring version of a tier",
    "cheapest": "The cheapest version meeting a quality score",
    "fastest": "The fastest version under a cost per request",
    "split": "A weighted split between versions (canary)",
}
MATCH_LABELS = {
    "task_types": "Task types",
    "classifications": "Data classifications",
    "applications": "Applications",
    "teams": "Teams",
    "complexity": "Complexity",
    "regions": "Regions",
}
MAX_ROWS = 50


@dataclass(frozen=True)
class EditorChoices:
    """What the editor's inputs offer, read once per request from the registry."""

    versions: Choices
    vocabularies: dict[str, Choices] = field(default_factory=dict)
    default_version: str = ""  # what a new rule is pinned to: the first approved version

    @classmethod
    def load(cls, catalog: doc.Catalog) -> "EditorChoices":
        lifecycles = {
            services.version_ref(version): Lifecycle(version.lifecycle).label.lower()
            for version in ModelVersion.objects.select_related("model__provider")
        }
        refs = sorted(catalog.versions)
        versions = [(ref, f"{ref} ({lifecycles.get(ref, 'unknown')})") for ref in refs]
        vocabularies = {key: [(value, value) for value in sorted(catalog.vocabulary(key))] for key in doc.MATCH_LISTS}
        vocabularies["complexity"] = [(value, value) for value in doc.COMPLEXITIES]
        approved = Lifecycle.APPROVED.label.lower()
        default = next((ref for ref in refs if lifecycles.get(ref) == approved), refs[0] if refs else "")
        return cls(versions=versions, vocabularies=vocabularies, default_version=default)


def _with_unknown(choices: Choices, values: list[Any]) -> Choices:
    """The choices plus any value the rule already names that they lack, so it shows and gets reported."""
    known = {value for value, _ in choices}
    extra = [(str(v), f"{v} (unknown)") for v in values if v not in ("", None) and str(v) not in known]
    return choices + extra


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _whole(raw: str) -> Any:
    """A whole number if it is one; anything else is kept so validation names it."""
    if raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        return raw


def _number(raw: str) -> Any:
    if raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        pass
    try:
        value = float(raw)
    except ValueError:
        return raw
    return value if math.isfinite(value) else raw


def _rows(data: Any, prefix: str, name: str, at_least: int) -> int:
    """How many repeated rows were posted (a hidden count), within reason."""
    try:
        count = int(data.get(f"{prefix}-{name}", at_least))
    except (TypeError, ValueError):
        count = at_least
    return max(0, min(count, MAX_ROWS))


class RuleForm(forms.Form):
    """One rule. Unbound, it shows a rule (``rule=``); bound, ``to_rule()`` reads it back."""

    name = forms.CharField(required=False, help_text="Unique in this policy; decisions cite it.")
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    tokens_min = forms.IntegerField(required=False, min_value=0, label="Input tokens from")
    tokens_max = forms.IntegerField(required=False, min_value=0, label="Input tokens up to")
    action = forms.ChoiceField(choices=list(ACTION_LABELS.items()), label="Action type")
    pinned = forms.ChoiceField(required=False, label="Model version")
    tier = forms.ChoiceField(required=False, choices=[(tier, tier) for tier in doc.TIERS], label="Tier")
    min_quality = forms.FloatField(
        required=False, min_value=0, max_value=100, label="Minimum quality score", help_text="0 to 100."
    )
    cheapest_tier = forms.ChoiceField(
        required=False, choices=[("", "Any tier"), *((tier, tier) for tier in doc.TIERS)], label="Only in tier"
    )
    max_cost_usd = forms.FloatField(
        required=False, min_value=0, label="Maximum cost per request (USD)", widget=forms.NumberInput({"step": "any"})
    )
    escalation_complexity = forms.ChoiceField(
        required=False,
        choices=[("", "No escalation"), *((c, c) for c in doc.COMPLEXITIES)],
        label="Escalate requests of complexity",
    )
    escalation_tier = forms.ChoiceField(
        required=False, choices=[("", "—"), *((tier, tier) for tier in doc.TIERS)], label="to tier"
    )
    verifier = forms.ChoiceField(required=False, label="Verifier", help_text="From another provider.")
    over_budget = forms.ChoiceField(
        required=False,
        choices=[
            ("refuse", "Refuse: answer 429 naming the budget"),
            ("downgrade", "Downgrade to the economy tier"),
        ],
        label="When the team or application is over its monthly budget",
        help_text="Refuse is the default. A downgrade still passes every compliance filter.",
    )
    split_rows = forms.IntegerField(widget=forms.HiddenInput, required=False)
    fallback_rows = forms.IntegerField(widget=forms.HiddenInput, required=False)

    def __init__(
        self, data: Any = None, *, prefix: str, choices: EditorChoices, rule: dict[str, Any] | None = None
    ) -> None:
        rule = rule if isinstance(rule, dict) else {}
        initial = rule_initial(rule)
        if data is not None:
            split_count = _rows(data, prefix, "split_rows", 2)
            fallback_count = _rows(data, prefix, "fallback_rows", 1)
        else:
            split_count = max(2, len(initial["split"]) + 1)
            fallback_count = len(initial["fallbacks"]) + 1
        initial["split_rows"], initial["fallback_rows"] = split_count, fallback_count
        super().__init__(data, prefix=prefix, initial=initial)
        self.split_count, self.fallback_count = split_count, fallback_count
        named = [initial["pinned"], initial["verifier"], *initial["fallbacks"]]
        named += [entry[0] for entry in initial["split"]]
        versions = [("", "—"), *_with_unknown(choices.versions, named)]
        cast(forms.ChoiceField, self.fields["pinned"]).choices = versions
        cast(forms.ChoiceField, self.fields["verifier"]).choices = [("", "No verifier"), *versions[1:]]
        for key in doc.MATCH_LISTS:
            offered = _with_unknown(choices.vocabularies.get(key, []), initial[key])
            self.fields[key] = forms.MultipleChoiceField(
                required=False,
                label=MATCH_LABELS[key],
                choices=offered,
                widget=forms.CheckboxSelectMultiple,
                help_text="" if offered else "None registered yet.",
            )
        for row in range(split_count):
            version, weight = initial["split"][row] if row < len(initial["split"]) else ("", "")
            self.fields[f"split_version_{row}"] = forms.ChoiceField(
                required=False, choices=versions, label=f"Split entry {row + 1}: model version"
            )
            self.fields[f"split_weight_{row}"] = forms.IntegerField(
                required=False, min_value=1, max_value=100, label=f"Split entry {row + 1}: weight (%)"
            )
            self.initial[f"split_version_{row}"], self.initial[f"split_weight_{row}"] = version, weight
        for row in range(fallback_count):
            self.fields[f"fallback_{row}"] = forms.ChoiceField(
                required=False, choices=versions, label=f"Fallback {row + 1}"
            )
            self.initial[f"fallback_{row}"] = initial["fallbacks"][row] if row < len(initial["fallbacks"]) else ""

    # --- for the template ---------------------------------------------------------------

    def match_fields(self) -> list[BoundField]:
        return [self[key] for key in doc.MATCH_LISTS]

    def split_fields(self) -> list[tuple[BoundField, BoundField]]:
        return [(self[f"split_version_{row}"], self[f"split_weight_{row}"]) for row in range(self.split_count)]

    def fallback_fields(self) -> list[BoundField]:
        return [self[f"fallback_{row}"] for row in range(self.fallback_count)]

    # --- reading it back ------------------------------------------------------------------

    def _raw(self, name: str) -> str:
        return _text(self.fields[name].widget.value_from_datadict(self.data, self.files, self.add_prefix(name)))

    def _raw_list(self, name: str) -> list[str]:
        values = self.fields[name].widget.value_from_datadict(self.data, self.files, self.add_prefix(name))
        return [value for value in (values or []) if value]

    def to_rule(self) -> dict[str, Any]:
        """The rule as typed, in the document's key order; what is empty is left out."""
        rule: dict[str, Any] = {"name": self._raw("name")}
        if self._raw("description"):
            rule["description"] = self._raw("description")
        match: dict[str, Any] = {key: self._raw_list(key) for key in doc.MATCH_LISTS if self._raw_list(key)}
        tokens = {
            key: _whole(self._raw(name))
            for key, name in (("min", "tokens_min"), ("max", "tokens_max"))
            if self._raw(name)
        }
        if tokens:
            match["input_tokens"] = tokens
        rule["match"] = match
        rule["action"] = self._action()
        fallbacks = [self._raw(f"fallback_{row}") for row in range(self.fallback_count)]
        if any(fallbacks):
            rule["fallbacks"] = [ref for ref in fallbacks if ref]
        complexity, tier = self._raw("escalation_complexity"), self._raw("escalation_tier")
        if complexity or tier:
            rule["escalation"] = {"complexity": complexity or None, "tier": tier or None}
        if self._raw("verifier"):
            rule["verifier"] = self._raw("verifier")
        # Refuse is the default, so only the other choice is written (an unknown value is kept for
        # validation to name).
        if self._raw("over_budget") not in ("", doc.DEFAULT_OVER_BUDGET):
            rule["over_budget"] = self._raw("over_budget")
        return rule

    def _action(self) -> dict[str, Any]:
        kind = self._raw("action")
        if kind == "pinned":
            return {"pinned": self._raw("pinned")}
        if kind == "tier":
            return {"tier": self._raw("tier")}
        if kind == "cheapest":
            value: dict[str, Any] = {}
            if self._raw("min_quality"):
                value["min_quality"] = _number(self._raw("min_quality"))
            if self._raw("cheapest_tier"):
                value["tier"] = self._raw("cheapest_tier")
            return {"cheapest": value}
        if kind == "fastest":
            return {
                "fastest": {"max_cost_usd": _number(self._raw("max_cost_usd"))} if self._raw("max_cost_usd") else {}
            }
        if kind == "split":
            entries = []
            for row in range(self.split_count):
                version, weight = self._raw(f"split_version_{row}"), self._raw(f"split_weight_{row}")
                if version or weight:
                    entries.append({"model_version": version, "weight": _whole(weight)})
            return {"split": entries}
        return {}


def rule_initial(rule: dict[str, Any]) -> dict[str, Any]:
    """A rule's values for the editor's inputs. Tolerant: a stored rule may predate today's registry."""
    match = _dict(rule.get("match"))
    tokens = _dict(match.get("input_tokens"))
    action = _dict(rule.get("action"))
    kind = next(iter(action), "pinned")
    value = action.get(kind)
    cheapest = _dict(value) if kind == "cheapest" else {}
    fastest = _dict(value) if kind == "fastest" else {}
    split = _list(value) if kind == "split" else []
    escalation = _dict(rule.get("escalation"))
    fallbacks = _list(rule.get("fallbacks"))
    initial: dict[str, Any] = {
        "name": rule.get("name", ""),
        "description": rule.get("description", ""),
        "tokens_min": tokens.get("min"),
        "tokens_max": tokens.get("max"),
        "action": kind,
        "pinned": value if kind == "pinned" else "",
        "tier": value if kind == "tier" else "",
        "min_quality": cheapest.get("min_quality"),
        "cheapest_tier": cheapest.get("tier", ""),
        "max_cost_usd": fastest.get("max_cost_usd"),
        "escalation_complexity": escalation.get("complexity") or "",
        "escalation_tier": escalation.get("tier") or "",
        "verifier": rule.get("verifier") or "",
        "over_budget": rule.get("over_budget") or doc.DEFAULT_OVER_BUDGET,
        "fallbacks": [str(ref) for ref in fallbacks],
        "split": [
            (entry.get("model_version") or "", entry.get("weight")) for entry in split if isinstance(entry, dict)
        ],
    }
    for key in doc.MATCH_LISTS:
        values = match.get(key)
        initial[key] = [str(v) for v in values] if isinstance(values, list) else []
    return initial


def _dict(value: Any) -> dict[Any, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


class SummaryForm(forms.Form):
    summary = forms.CharField(
        required=False, max_length=255, label="Summary of the change", help_text="What this version changes."
    )


class YamlForm(SummaryForm):
    yaml = forms.CharField(
        label="Rules (YAML)",
        strip=False,
        required=False,
        widget=forms.Textarea(attrs={"rows": 24, "spellcheck": "false", "class": "code"}),
    )


class UploadForm(SummaryForm):
    """A policy file, uploaded or pasted; an upload wins if both are given."""

    file = forms.FileField(required=False, label="Policy file (.yaml)")
    text = forms.CharField(
        required=False,
        strip=False,
        label="…or paste its YAML",
        widget=forms.Textarea(attrs={"rows": 16, "spellcheck": "false", "class": "code"}),
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        upload = cleaned.get("file")
        if upload is not None:
            try:
                cleaned["yaml"] = upload.read().decode("utf-8")
            except UnicodeDecodeError:
                self.add_error("file", "The file is not UTF-8 text.")
        elif cleaned.get("text", "").strip():
            cleaned["yaml"] = cleaned["text"]
        else:
            raise forms.ValidationError("Choose a file or paste its YAML.")
        return cleaned


class PolicyForm(forms.ModelForm):  # type: ignore[type-arg]  # not subscriptable at runtime
    """A new policy's settings and its first rules, as YAML to start from."""

    rules_yaml = forms.CharField(
        label="First rules (YAML)",
        strip=False,
        widget=forms.Textarea(attrs={"rows": 12, "spellcheck": "false", "class": "code"}),
        help_text="Start from this one-rule template; after saving, the rule editor is a click away.",
    )

    class Meta:
        model = Policy
        fields = ["name", "slug", "description", "required_approvals"]
        widgets = {"description": forms.Textarea(attrs={"rows": 3})}

    def clean_slug(self) -> str:
        slug: str = self.cleaned_data["slug"]
        if slug in RESERVED_SLUGS:
            raise forms.ValidationError(f"“{slug}” is reserved for the page that creates a policy; choose another.")
        return slug
