"""Policy files: one YAML format for the download and upload pages and the export and import commands.

A file carries the policy's settings and one version's rules, in this order::

    policy: clinical          # the slug
    name: Clinical
    description: ...
    required_approvals: 2
    rules: [...]

A version stores only ``{"rules": [...]}``; the settings live on the policy. The version number and
state are left out on purpose, so export → import → export gives the same bytes and a file in git
does not change when it is imported somewhere else.

Import changes rules only. There is no reviewed way to change a policy's settings yet, and
``required_approvals`` is part of four eyes, so a file whose settings differ from the policy's is
refused rather than silently half-applied.
"""

import re
from dataclasses import dataclass
from typing import Any

import yaml
from django.core.exceptions import ValidationError
from django.db import transaction

from policies import document as doc
from policies import services
from policies.document import DocumentError, Problem
from policies.models import Policy, PolicyVersion

SETTINGS = ("policy", "name", "description", "required_approvals")
# "policies/new/" is the page that creates a policy, so no policy may be called "new".
RESERVED_SLUGS = frozenset({"new"})
SLUG = re.compile(r"^[-a-zA-Z0-9_]{1,64}$")
IMPORT_SUMMARY = "Imported from YAML"


@dataclass(frozen=True)
class PolicyFile:
    """A checked policy file: the settings it gives (None where it leaves one out) and its rules."""

    slug: str | None
    name: str | None
    description: str | None
    required_approvals: int | None
    document: dict[str, Any]


def rules_yaml(document: dict[str, Any]) -> str:
    """A version's rules as YAML, as the version page and the editor's YAML view show them."""
    return doc.to_yaml({"rules": document.get("rules", [])})


# --- Export -----------------------------------------------------------------------------------


def default_version(policy: Policy) -> PolicyVersion | None:
    """The version an export means when none is named: the active one, else the latest."""
    return services.active_version(policy) or policy.versions.order_by("-number").first()


def export_yaml(version: PolicyVersion) -> str:
    """The policy file of ``version``: its policy's settings and its rules, canonical YAML."""
    policy = version.policy
    return doc.to_yaml(
        doc.canonical(
            {
                "policy": policy.slug,
                "name": policy.name,
                "description": policy.description,
                "required_approvals": policy.required_approvals,
                "rules": version.document.get("rules", []),
            }
        )
    )


def filename(version: PolicyVersion) -> str:
    return f"{version.policy.slug}-v{version.number}.yaml"


# --- Parse and import -------------------------------------------------------------------------


def _steps(path: str) -> list[str | int]:
    return [int(index) if index else key for key, index in re.findall(r"([^.\[\]]+)|\[(\d+)\]", path)]


def line_of(text: str, path: str) -> int | None:
    """The line a problem's path points at in ``text``: its key's line, or the closest existing parent's."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None
    if node is None:
        return None
    line = int(node.start_mark.line)
    for step in _steps(path if path != "$" else ""):
        if isinstance(node, yaml.MappingNode) and isinstance(step, str):
            pair = next(((key, value) for key, value in node.value if key.value == step), None)
            if pair is None:
                break
            line, node = int(pair[0].start_mark.line), pair[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(step, int) and step < len(node.value):
            node = node.value[step]
            line = int(node.start_mark.line)
        else:
            break
    return line + 1


def located(problems: list[Problem], text: str) -> list[Problem]:
    """The problems with the line each one concerns added to its path, e.g. "rules[0].name (line 4)"."""
    result = []
    for problem in problems:
        line = line_of(text, problem.path)
        result.append(Problem(f"{problem.path} (line {line})", problem.message) if line else problem)
    return result


def _settings_problems(data: dict[str, Any]) -> list[Problem]:
    problems = []
    slug = data.get("policy")
    if slug is not None and (not isinstance(slug, str) or not SLUG.match(slug)):
        problems.append(Problem("policy", "The policy's slug: letters, digits, - and _, at most 64 characters."))
    elif slug in RESERVED_SLUGS:
        problems.append(Problem("policy", f"“{slug}” is reserved; choose another slug."))
    name = data.get("name")
    if name is not None and (not isinstance(name, str) or not name.strip() or len(name) > 100):
        problems.append(Problem("name", "The policy's name: 1 to 100 characters."))
    if data.get("description") is not None and not isinstance(data["description"], str):
        problems.append(Problem("description", "A description is text."))
    approvals = data.get("required_approvals")
    if approvals is not None and (isinstance(approvals, bool) or not isinstance(approvals, int) or approvals < 1):
        problems.append(Problem("required_approvals", "A whole number from 1."))
    return problems


def parse(text: str, catalog: doc.Catalog) -> PolicyFile:
    """Read and check a policy file (or a bare ``rules:`` document); ``DocumentError`` names each
    problem's path and line."""
    data = doc.from_yaml(text)
    problems = doc.validate(data, catalog)
    if isinstance(data, dict):
        problems += _settings_problems(data)
    if problems:
        raise DocumentError(located(problems, text))
    return PolicyFile(
        slug=data.get("policy"),
        name=data.get("name"),
        description=data.get("description"),
        required_approvals=data.get("required_approvals"),
        document=doc.canonical({"rules": data["rules"]}),
    )


def settings_differences(parsed: PolicyFile, policy: Policy, text: str = "") -> list[Problem]:
    """Settings the file gives that differ from the policy's: import would not apply them."""
    problems = []
    if parsed.slug is not None and parsed.slug != policy.slug:
        problems.append(Problem("policy", f"This file is for policy “{parsed.slug}”, not “{policy.slug}”."))
    for key in ("name", "description", "required_approvals"):
        given, current = getattr(parsed, key), getattr(policy, key)
        if given is not None and given != current:
            problems.append(
                Problem(
                    key,
                    f"The file says {given!r} but the policy has {current!r}. Importing changes rules only; "
                    f"make the file agree with the policy or leave {key} out.",
                )
            )
    return located(problems, text) if text else problems


def _as_document_error(error: ValidationError) -> DocumentError:
    """A service's refusal, in the same shape as a file's problems."""
    paths = {"slug": "policy", "document": "rules", "__all__": "$"}
    if hasattr(error, "error_dict"):
        problems = [
            Problem(paths.get(field, field), message)
            for field, messages in error.message_dict.items()
            for message in messages
        ]
    else:
        problems = [Problem("$", message) for message in error.messages]
    return DocumentError(problems)


def import_yaml(
    text: str,
    *,
    into: Policy | None = None,
    submit: bool = False,
    summary: str = IMPORT_SUMMARY,
    actor: Any = None,
) -> PolicyVersion:
    """Create the file's policy with the rules as its draft v1, or a new draft of the existing policy.

    ``into`` is the policy a page uploads to: the file may then leave ``policy`` out, but may not name
    another. With ``submit`` the new version goes for review at once. Everything or nothing: any
    problem raises ``DocumentError`` and nothing is written.
    """
    try:
        with transaction.atomic():
            parsed = parse(text, services.catalog())
            differences = settings_differences(parsed, into, text) if into is not None else []
            if differences:
                raise DocumentError(differences)
            slug = parsed.slug or (into.slug if into is not None else None)
            if slug is None:
                raise DocumentError([Problem("policy", "Name the policy this file is for, e.g. “policy: clinical”.")])
            policy = Policy.objects.filter(slug=slug).first()
            if policy is None:
                version = _create(parsed, slug, actor=actor)
            else:
                differences = settings_differences(parsed, policy, text)
                if differences:
                    raise DocumentError(differences)
                draft = services.new_draft(policy, actor=actor)
                version = services.edit_version(draft, document=parsed.document, summary=summary, actor=actor)
            if submit:
                version = services.submit(version, actor=actor)
    except ValidationError as error:
        raise _as_document_error(error) from error
    return version


def _create(parsed: PolicyFile, slug: str, *, actor: Any) -> PolicyVersion:
    if parsed.name is None:
        raise DocumentError([Problem("name", f"Policy “{slug}” does not exist yet; give it a name to create it.")])
    return services.create_policy(
        name=parsed.name,
        slug=slug,
        description=parsed.description or "",
        required_approvals=parsed.required_approvals or 1,
        document=parsed.document,
        actor=actor,
    )
