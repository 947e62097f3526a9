"""Policy pages: the list, a policy and its versions, the rule editor, and YAML download and upload.

Views read input and call ``policies.services`` (or ``policies.yaml_io``, which calls them); the
four-eyes workflow lives there. Reading needs the role's view permission; writing needs
``policies.change_policyversion`` (creating a policy, ``policies.add_policy``). Reviewing is the
review queue's job, not these pages'.
"""

import hashlib
import json
import re
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Count, Max, Q
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.views import View
from django.views.generic import ListView

from console.views import RolePermissionMixin
from policies import document as doc
from policies import services, yaml_io
from policies.document import DocumentError, Problem
from policies.models import Policy, PolicyVersion, Review
from policies.policy_forms import EditorChoices, PolicyForm, RuleForm, SummaryForm, UploadForm, YamlForm
from registry.models import Lifecycle, ModelVersion

State = PolicyVersion.State
EDITABLE = (State.DRAFT, State.SUBMITTED, State.APPROVED)
CHANGE = ("policies.change_policyversion",)
MAX_RULES = 200
RULE_PATH = re.compile(r"^rules\[(\d+)\]")


def get_version(slug: str, number: int) -> PolicyVersion:
    return get_object_or_404(PolicyVersion.objects.select_related("policy"), policy__slug=slug, number=number)


def fingerprint(document: dict[str, Any]) -> str:
    """Identifies the rules an editor was opened on, so a save cannot silently overwrite someone else's."""
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


# --- Rules, readably --------------------------------------------------------------------------

MATCH_WORDS = {
    "task_types": "task type",
    "classifications": "data",
    "applications": "application",
    "teams": "team",
    "complexity": "complexity",
    "regions": "region",
}


def describe_condition(match: dict[str, Any]) -> list[str]:
    """The match in words, one condition a line; every condition must hold."""
    words = [f"{MATCH_WORDS[key]} is {' or '.join(match[key])}" for key in doc.MATCH_LISTS if match.get(key)]
    tokens = match.get("input_tokens") or {}
    low, high = tokens.get("min"), tokens.get("max")
    if low is not None and high is not None:
        words.append(f"input is {low} to {high} tokens")
    elif low is not None:
        words.append(f"input is at least {low} tokens")
    elif high is not None:
        words.append(f"input is at most {high} tokens")
    return words or ["every request"]


def describe_action(action: dict[str, Any]) -> str:
    value: Any
    kind, value = next(iter(action.items()), ("", None))
    if kind == "pinned":
        return f"use {value}"
    if kind == "tier":
        return f"use the best-scoring {value} version"
    if kind == "cheapest":
        tier = f" in the {value['tier']} tier" if value.get("tier") else ""
        return f"use the cheapest version{tier} scoring at least {value.get('min_quality')}"
    if kind == "fastest":
        return f"use the fastest version costing at most ${value.get('max_cost_usd')} per request"
    if kind == "split":
        return "split: " + ", ".join(f"{entry['weight']}% to {entry['model_version']}" for entry in value)
    return "no action"


OVER_BUDGET_WORDS = {
    "refuse": "refuse with 429, naming the budget",
    "downgrade": "downgrade to the economy tier",
}


def describe(document: dict[str, Any]) -> list[dict[str, Any]]:
    """Each rule of a (valid) document as words, for people who do not read YAML."""
    described = []
    for index, rule in enumerate(document.get("rules", [])):
        escalation = rule.get("escalation")
        described.append(
            {
                "index": index,
                "name": rule.get("name", ""),
                "description": rule.get("description", ""),
                "when": describe_condition(rule.get("match") or {}),
                "then": describe_action(rule.get("action") or {}),
                "fallbacks": rule.get("fallbacks", []),
                "escalation": f"{escalation['complexity']} complexity goes to the {escalation['tier']} tier"
                if escalation
                else "",
                "verifier": rule.get("verifier", ""),
                "over_budget": OVER_BUDGET_WORDS.get(rule.get("over_budget") or doc.DEFAULT_OVER_BUDGET, ""),
            }
        )
    return described


# --- List, create, detail ---------------------------------------------------------------------


class PolicyList(RolePermissionMixin, ListView):  # type: ignore[type-arg]
    model = Policy
    paginate_by = 50
    template_name = "policies/policy_list.html"
    queryset = Policy.objects.annotate(
        active_number=Max("versions__number", filter=Q(versions__state=State.ACTIVE)),
        waiting=Count("versions", filter=Q(versions__state=State.SUBMITTED)),
        drafts=Count("versions", filter=Q(versions__state=State.DRAFT)),
    ).order_by("name")


def template_rules() -> str:
    """A one-rule document to start from: every request pinned to an approved version."""
    first = (
        ModelVersion.objects.filter(lifecycle=Lifecycle.APPROVED)
        .select_related("model__provider")
        .order_by("model__provider__slug", "model__slug", "label")
        .first()
    )
    ref = services.version_ref(first) if first else "provider/model/version"
    rule = {"name": "default", "description": "Every request, until narrower rules come first.", "match": {}}
    return yaml_io.rules_yaml({"rules": [{**rule, "action": {"pinned": ref}}]})


class PolicyCreate(RolePermissionMixin, View):
    """A new policy and its first rules, as draft v1."""

    model = Policy
    permission_action = "add"

    def get(self, request: HttpRequest) -> HttpResponse:
        return self._render(request, PolicyForm(initial={"rules_yaml": template_rules(), "required_approvals": 1}))

    def post(self, request: HttpRequest) -> HttpResponse:
        form = PolicyForm(request.POST)
        if not form.is_valid():
            return self._render(request, form, status=400)
        try:
            parsed = yaml_io.parse(form.cleaned_data["rules_yaml"], services.catalog())
            if any(getattr(parsed, key) is not None for key in ("slug", "name", "description", "required_approvals")):
                raise DocumentError([Problem("rules", "Give the policy's settings in the fields above, not in YAML.")])
            version = services.create_policy(
                **{key: form.cleaned_data[key] for key in ("name", "slug", "description", "required_approvals")},
                document=parsed.document,
                actor=request.user,
            )
        except DocumentError as error:
            form.add_error("rules_yaml", [str(problem) for problem in error.problems])
            return self._render(request, form, status=400)
        except ValidationError as error:
            for field, errors in getattr(error, "message_dict", {"__all__": error.messages}).items():
                form.add_error(field if field in form.fields else None, errors)
            return self._render(request, form, status=400)
        messages.success(request, f"Created {version.policy} with draft v1. Edit its rules or submit it for review.")
        return redirect(version)

    def _render(self, request: HttpRequest, form: PolicyForm, status: int = 200) -> HttpResponse:
        return render(request, "policies/policy_form.html", {"form": form}, status=status)


class PolicyDetail(RolePermissionMixin, View):
    model = Policy

    def get(self, request: HttpRequest, slug: str) -> HttpResponse:
        policy = get_object_or_404(Policy, slug=slug)
        versions = list(policy.versions.select_related("based_on").order_by("-number"))
        active = next((version for version in versions if version.state == State.ACTIVE), None)
        context = {
            "policy": policy,
            "versions": versions,
            "active": active,
            "rules": describe(active.document) if active else [],
            "download": active or (versions[0] if versions else None),  # as yaml_io.default_version
            "can_change": request.user.has_perm(CHANGE[0]),
            "applications": policy.applications.order_by("name"),
        }
        return render(request, "policies/policy_detail.html", context)


class NewDraft(RolePermissionMixin, View):
    """A draft copied from a version (default: the active one, else the latest), opened in the editor."""

    permission_required = CHANGE

    def post(self, request: HttpRequest, slug: str) -> HttpResponse:
        policy = get_object_or_404(Policy, slug=slug)
        based_on = None
        if request.POST.get("based_on", "").isdigit():
            based_on = get_version(slug, int(request.POST["based_on"]))
        try:
            draft = services.new_draft(policy, based_on=based_on, actor=request.user)
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
            return redirect(policy)
        messages.success(request, f"Started draft v{draft.number} from v{draft.based_on.number}.")  # type: ignore[union-attr]
        return redirect("policies:version-edit", slug, draft.number)


# --- A version --------------------------------------------------------------------------------


class VersionDetail(RolePermissionMixin, View):
    model = PolicyVersion

    def get(self, request: HttpRequest, slug: str, number: int) -> HttpResponse:
        version = get_version(slug, number)
        reviews = list(version.reviews.all())
        context = {
            "policy": version.policy,
            "version": version,
            "rules": describe(version.document),
            "yaml": yaml_io.rules_yaml(version.document),
            "reviews": reviews,
            "approvals": sum(1 for review in reviews if review.verdict == Review.Verdict.APPROVE),
            "contributors": version.contributors.order_by("username"),
            "can_change": request.user.has_perm(CHANGE[0]),
            "editable": version.state in EDITABLE,
        }
        return render(request, "policies/version_detail.html", context)


class VersionDownload(RolePermissionMixin, View):
    """The version's policy file, the same bytes ``export_policy`` prints."""

    model = PolicyVersion

    def get(self, request: HttpRequest, slug: str, number: int) -> HttpResponse:
        version = get_version(slug, number)
        response = HttpResponse(yaml_io.export_yaml(version), content_type="application/yaml; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{yaml_io.filename(version)}"'
        return response


class Submit(RolePermissionMixin, View):
    permission_required = CHANGE

    def post(self, request: HttpRequest, slug: str, number: int) -> HttpResponse:
        version = get_version(slug, number)
        try:
            version = services.submit(version, actor=request.user)
        except ValidationError as error:
            messages.error(request, f"Not submitted: {' '.join(error.messages)}")
        else:
            needed = version.policy.required_approvals
            messages.success(
                request,
                f"Submitted v{version.number} for review. It needs {needed} approval{'s' if needed > 1 else ''} "
                "from someone who did not write it.",
            )
        return redirect(version)


class Rollback(RolePermissionMixin, View):
    """Confirm, then submit a new version with a superseded version's rules."""

    permission_required = CHANGE

    def get(self, request: HttpRequest, slug: str, number: int) -> HttpResponse:
        version = get_version(slug, number)
        return self._render(request, version)

    def post(self, request: HttpRequest, slug: str, number: int) -> HttpResponse:
        version = get_version(slug, number)
        if version.state != State.SUPERSEDED:
            return self._render(request, version, status=400)
        try:
            new = services.rollback(version.policy, to=version, actor=request.user)
        except ValidationError as error:
            return self._render(request, version, errors=error.messages, status=400)
        messages.success(request, f"v{new.number} has the rules of v{version.number} and waits for review.")
        return redirect(new)

    def _render(
        self, request: HttpRequest, version: PolicyVersion, errors: list[str] | None = None, status: int = 200
    ) -> HttpResponse:
        context = {
            "policy": version.policy,
            "version": version,
            "active": services.active_version(version.policy),
            "allowed": version.state == State.SUPERSEDED,
            "errors": errors or [],
        }
        return render(request, "policies/version_rollback.html", context, status=status)


class Upload(RolePermissionMixin, View):
    """A policy file as a new draft of this policy, through the same import as ``import_policy``."""

    permission_required = CHANGE

    def get(self, request: HttpRequest, slug: str) -> HttpResponse:
        policy = get_object_or_404(Policy, slug=slug)
        return self._render(request, policy, UploadForm())

    def post(self, request: HttpRequest, slug: str) -> HttpResponse:
        policy = get_object_or_404(Policy, slug=slug)
        form = UploadForm(request.POST, request.FILES)
        if not form.is_valid():
            return self._render(request, policy, form, status=400)
        try:
            version = yaml_io.import_yaml(
                form.cleaned_data["yaml"],
                into=policy,
                summary=form.cleaned_data["summary"] or yaml_io.IMPORT_SUMMARY,
                actor=request.user,
            )
        except DocumentError as error:
            return self._render(request, policy, form, problems=error.problems, status=400)
        messages.success(request, f"Uploaded as draft v{version.number}. Check it, then submit it for review.")
        return redirect(version)

    def _render(
        self,
        request: HttpRequest,
        policy: Policy,
        form: UploadForm,
        problems: list[Problem] | None = None,
        status: int = 200,
    ) -> HttpResponse:
        context = {"policy": policy, "form": form, "problems": problems or []}
        return render(request, "policies/policy_upload.html", context, status=status)


# --- The editor -------------------------------------------------------------------------------


class EditorBase(RolePermissionMixin, View):
    """What both editor views share: which versions they open, the stale check, and saving."""

    permission_required = CHANGE

    def version_or_redirect(self, request: HttpRequest, slug: str, number: int) -> PolicyVersion | HttpResponse:
        version = get_version(slug, number)
        if version.state not in EDITABLE:
            messages.error(
                request, f"v{version.number} is {version.get_state_display().lower()}; start a new draft from it."
            )
            return redirect(version)
        return version

    def save(
        self, request: HttpRequest, version: PolicyVersion, document: dict[str, Any], summary: str
    ) -> HttpResponse | tuple[list[str], int]:
        """Save through ``services.edit_version``; else the errors to show and the status to show them with."""
        if request.POST.get("base") != fingerprint(version.document):
            stale = (
                "This version changed after you opened it (someone else saved it, or you did in another tab). "
                "Nothing was saved. Saving again replaces those changes with yours."
            )
            return [stale], 409
        try:
            saved = services.edit_version(version, document=document, summary=summary, actor=request.user)
        except ValidationError as error:
            return list(error.messages), 400
        if saved.pk != version.pk:
            messages.success(
                request,
                f"v{version.number} was {version.get_state_display().lower()}, so your edit is new draft "
                f"v{saved.number} and v{version.number} is withdrawn; its approvals no longer count.",
            )
        else:
            messages.success(request, f"Saved draft v{saved.number}.")
        return HttpResponseRedirect(saved.get_absolute_url())


def problems_by_rule(problems: list[Problem], count: int) -> dict[int, list[Problem]]:
    grouped: dict[int, list[Problem]] = {index: [] for index in range(count)}
    for problem in problems:
        found = RULE_PATH.match(problem.path)
        if found and int(found.group(1)) in grouped:
            grouped[int(found.group(1))].append(problem)
    return grouped


def new_rule(rules: list[dict[str, Any]], choices: EditorChoices) -> dict[str, Any]:
    """A rule to add: a fresh name, matching everything until narrowed, pinned to the first version."""
    names = {rule.get("name") for rule in rules}
    number = len(rules) + 1
    while f"rule-{number}" in names:
        number += 1
    return {"name": f"rule-{number}", "match": {}, "action": {"pinned": choices.default_version}}


def apply_op(op: str, rules: list[dict[str, Any]], choices: EditorChoices) -> None:
    """Change ``rules`` in place as the button asked ("add", "up:3", "down:0", "remove:2")."""
    kind, _, argument = op.partition(":")
    index = int(argument) if argument.isdigit() else -1
    if kind == "add" and len(rules) < MAX_RULES:
        rules.append(new_rule(rules, choices))
    elif kind == "up" and 0 < index < len(rules):
        rules[index - 1], rules[index] = rules[index], rules[index - 1]
    elif kind == "down" and 0 <= index < len(rules) - 1:
        rules[index], rules[index + 1] = rules[index + 1], rules[index]
    elif kind == "remove" and 0 <= index < len(rules):
        rules.pop(index)


class VersionEditor(EditorBase):
    """Rules as forms: add, move, remove and edit them, then save; works without JavaScript.

    The buttons that change the list (add, up, down, remove) re-render the page with the changed
    rules and save nothing; "Check" validates; "Save draft" validates and saves.
    """

    def get(self, request: HttpRequest, slug: str, number: int) -> HttpResponse:
        version = self.version_or_redirect(request, slug, number)
        if isinstance(version, HttpResponse):
            return version
        return self._render(
            request,
            version,
            list(version.document.get("rules", [])),
            summary=version.summary if version.state == State.DRAFT else "",
            base=fingerprint(version.document),
        )

    def post(self, request: HttpRequest, slug: str, number: int) -> HttpResponse:
        version = self.version_or_redirect(request, slug, number)
        if isinstance(version, HttpResponse):
            return version
        catalog = services.catalog()
        choices = EditorChoices.load(catalog)
        try:
            count = min(max(int(request.POST.get("rules-count", "0")), 0), MAX_RULES)
        except ValueError:
            count = 0
        rules = [RuleForm(request.POST, prefix=f"rule-{index}", choices=choices).to_rule() for index in range(count)]
        summary = request.POST.get("summary", "").strip()[:255]
        base = request.POST.get("base", "")
        op = request.POST.get("op", "save")
        if op not in ("save", "check"):
            apply_op(op, rules, choices)
            return self._render(request, version, rules, summary=summary, base=base, choices=choices)
        document = doc.canonical({"rules": rules})
        problems = doc.validate(document, catalog)
        if problems or op == "check":
            return self._render(
                request,
                version,
                rules,
                summary=summary,
                base=base,
                choices=choices,
                problems=problems,
                checked=op == "check",
                status=400 if problems else 200,
            )
        result = self.save(request, version, document, summary)
        if isinstance(result, HttpResponse):
            return result
        errors, status = result
        return self._render(
            request,
            version,
            rules,
            summary=summary,
            base=fingerprint(version.document),
            choices=choices,
            errors=errors,
            status=status,
        )

    def _render(
        self,
        request: HttpRequest,
        version: PolicyVersion,
        rules: list[dict[str, Any]],
        *,
        summary: str,
        base: str,
        choices: EditorChoices | None = None,
        problems: list[Problem] | None = None,
        errors: list[str] | None = None,
        checked: bool = False,
        status: int = 200,
    ) -> HttpResponse:
        choices = choices or EditorChoices.load(services.catalog())
        problems = problems or []
        grouped = problems_by_rule(problems, len(rules))
        items = [
            {
                "index": index,
                "form": RuleForm(prefix=f"rule-{index}", choices=choices, rule=rule),
                "problems": grouped[index],
                "last": index == len(rules) - 1,
            }
            for index, rule in enumerate(rules)
        ]
        linked = [
            {"path": problem.path, "message": problem.message, "anchor": f"rule-{found.group(1)}" if found else ""}
            for problem in problems
            for found in [RULE_PATH.match(problem.path)]
        ]
        context = {
            "policy": version.policy,
            "version": version,
            "items": items,
            "count": len(rules),
            "summary_form": SummaryForm(initial={"summary": summary}),
            "base": base,
            "problems": linked,
            "errors": errors or [],
            "checked": checked,
            "tab": "form",
        }
        return render(request, "policies/version_editor.html", context, status=status)


class VersionYamlEditor(EditorBase):
    """The editor's YAML view: the rules as text, for people who prefer it or paste from git."""

    def get(self, request: HttpRequest, slug: str, number: int) -> HttpResponse:
        version = self.version_or_redirect(request, slug, number)
        if isinstance(version, HttpResponse):
            return version
        form = YamlForm(
            initial={
                "yaml": yaml_io.rules_yaml(version.document),
                "summary": version.summary if version.state == State.DRAFT else "",
            }
        )
        return self._render(request, version, form, base=fingerprint(version.document))

    def post(self, request: HttpRequest, slug: str, number: int) -> HttpResponse:
        version = self.version_or_redirect(request, slug, number)
        if isinstance(version, HttpResponse):
            return version
        form = YamlForm(request.POST)
        base = request.POST.get("base", "")
        if not form.is_valid():
            return self._render(request, version, form, base=base, status=400)
        text = form.cleaned_data["yaml"]
        try:
            parsed = yaml_io.parse(text, services.catalog())
            differences = yaml_io.settings_differences(parsed, version.policy, text)
            if differences:
                raise DocumentError(differences)
        except DocumentError as error:
            return self._render(request, version, form, base=base, problems=error.problems, status=400)
        if request.POST.get("op") == "check":
            return self._render(request, version, form, base=base, checked=True)
        result = self.save(request, version, parsed.document, form.cleaned_data["summary"])
        if isinstance(result, HttpResponse):
            return result
        errors, status = result
        return self._render(request, version, form, base=fingerprint(version.document), errors=errors, status=status)

    def _render(
        self,
        request: HttpRequest,
        version: PolicyVersion,
        form: YamlForm,
        *,
        base: str,
        problems: list[Problem] | None = None,
        errors: list[str] | None = None,
        checked: bool = False,
        status: int = 200,
    ) -> HttpResponse:
        context = {
            "policy": version.policy,
            "version": version,
            "form": form,
            "base": base,
            "problems": problems or [],
            "errors": errors or [],
            "checked": checked,
            "tab": "yaml",
        }
        return render(request, "policies/version_yaml.html", context, status=status)
