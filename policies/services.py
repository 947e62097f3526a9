"""Business operations on applications, keys, routing policies and their review.

Four eyes: whoever wrote or edited a version never approves it; an edit after submission is a new
version (the old one is withdrawn, its approvals void); activation is one transaction under a lock
on the policy, and the database allows one active version per policy whatever happens.
"""

import datetime
import hashlib
import secrets
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from audit.services import record_event, resolve_actor
from audit.snapshot import snapshot
from policies import document as doc
from policies.models import ApiKey, Application, ComplianceRequest, Policy, PolicyVersion, Review, Team
from registry import services as registry_services
from registry.models import Capability, ComplianceCell, Counter, DataClassification, ModelVersion, Region

State = PolicyVersion.State
KEY_PREFIX = "sb_"


def catalog() -> doc.Catalog:
    """What policy documents may name, read from the registry."""
    versions = {
        version_ref(version): version.model.provider.slug
        for version in ModelVersion.objects.select_related("model__provider")
    }
    return doc.Catalog(
        versions=versions,
        task_types=frozenset(Capability.objects.values_list("slug", flat=True)),
        classifications=frozenset(DataClassification.objects.values_list("slug", flat=True)),
        applications=frozenset(Application.objects.values_list("slug", flat=True)),
        teams=frozenset(Team.objects.values_list("slug", flat=True)),
        regions=frozenset(Region.objects.values_list("slug", flat=True)),
    )


def version_ref(version: ModelVersion) -> str:
    """How documents name a model version: provider/model/version, stable across installations."""
    return f"{version.model.provider.slug}/{version.model.slug}/{version.label}"


def _check_document(document: Any) -> dict[str, Any]:
    try:
        return doc.check(document, catalog())
    except doc.DocumentError as exc:
        raise ValidationError({"document": [str(problem) for problem in exc.problems]}) from exc


def hash_key(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


# --- API keys -------------------------------------------------------------------------------


@transaction.atomic
def generate_key(
    application: Application, *, name: str, expires_at: datetime.datetime | None = None, actor: Any = None
) -> tuple[ApiKey, str]:
    """A new key for ``application``; the raw key is returned once and never stored."""
    if not name.strip():
        raise ValidationError({"name": "Name the key, e.g. after the service or environment that uses it."})
    if expires_at is not None and expires_at <= timezone.now():
        raise ValidationError({"expires_at": "An expiry must be in the future."})
    prefix = secrets.token_hex(4)
    raw = f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    _, actor_name = resolve_actor(actor)
    key = ApiKey.objects.create(
        application=application,
        name=name.strip(),
        prefix=prefix,
        key_hash=hash_key(raw),
        expires_at=expires_at,
        created_by_name=actor_name,
    )
    registry_services.increment(Counter.ROUTING_GENERATION)
    record_event("apikey.created", obj=key, after=_key_state(key), actor=actor)
    return key, raw


@transaction.atomic
def revoke_key(key: ApiKey, *, actor: Any = None) -> ApiKey:
    key = ApiKey.objects.select_for_update().get(pk=key.pk)
    if key.revoked_at is not None:
        raise ValidationError("This key is already revoked.")
    before = _key_state(key)
    key.revoked_at = timezone.now()
    key.save(update_fields=["revoked_at"])
    registry_services.increment(Counter.ROUTING_GENERATION)
    record_event("apikey.revoked", obj=key, before=before, after=_key_state(key), actor=actor)
    return key


def _key_state(key: ApiKey) -> dict[str, Any]:
    """Never the hash: the audit log must not help anyone guess a key."""
    return {
        "application": key.application.slug,
        "name": key.name,
        "prefix": key.prefix,
        "expires_at": key.expires_at.isoformat() if key.expires_at else None,
        "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
    }


# --- Policies and their versions -------------------------------------------------------------


@transaction.atomic
def create_policy(
    *, name: str, slug: str, description: str = "", required_approvals: int = 1, document: Any, actor: Any = None
) -> PolicyVersion:
    """A new policy with its first version as a draft."""
    policy = Policy(name=name, slug=slug, description=description, required_approvals=required_approvals)
    policy.full_clean()
    policy.save()
    record_event("policy.created", obj=policy, after=snapshot(policy), actor=actor)
    return _new_version(policy, document=document, based_on=None, summary="First version", actor=actor)


def _new_version(
    policy: Policy, *, document: Any, based_on: PolicyVersion | None, summary: str, actor: Any
) -> PolicyVersion:
    document = _check_document(document)
    number = (policy.versions.aggregate(top=Max("number"))["top"] or 0) + 1
    user, actor_name = resolve_actor(actor)
    version = PolicyVersion.objects.create(
        policy=policy, number=number, document=document, based_on=based_on, summary=summary, author_name=actor_name
    )
    if user is not None:
        version.contributors.add(user)
    record_event("policyversion.created", obj=version, after=_version_state(version), actor=actor)
    return version


def _version_state(version: PolicyVersion) -> dict[str, Any]:
    return {
        "policy": version.policy.slug,
        "number": version.number,
        "state": version.state,
        "summary": version.summary,
        "based_on": version.based_on.number if version.based_on else None,
        "document": version.document,
    }


def _locked_policy(version: PolicyVersion) -> tuple[Policy, PolicyVersion]:
    """Lock the policy row: every state change of its versions happens one at a time."""
    policy = Policy.objects.select_for_update().get(pk=version.policy_id)
    return policy, PolicyVersion.objects.get(pk=version.pk)


@transaction.atomic
def edit_version(
    version: PolicyVersion, *, document: Any, summary: str | None = None, actor: Any = None
) -> PolicyVersion:
    """Change a draft in place; a submitted or approved version becomes a new draft instead.

    The edited version is withdrawn, so approvals it collected are void.
    """
    policy, version = _locked_policy(version)
    if version.state == State.DRAFT:
        before = _version_state(version)
        version.document = _check_document(document)
        if summary is not None:
            version.summary = summary
        version.save(update_fields=["document", "summary"])
        user, _ = resolve_actor(actor)
        if user is not None:
            version.contributors.add(user)
        record_event("policyversion.edited", obj=version, before=before, after=_version_state(version), actor=actor)
        return version
    if version.state not in (State.SUBMITTED, State.APPROVED):
        raise ValidationError(f"{version} is {version.state}; start a new draft from it instead.")
    _set_state(version, State.WITHDRAWN, actor=actor, reason="Edited after submission; its approvals are void.")
    return _new_version(policy, document=document, based_on=version, summary=summary or version.summary, actor=actor)


@transaction.atomic
def new_draft(policy: Policy, *, based_on: PolicyVersion | None = None, actor: Any = None) -> PolicyVersion:
    """A draft copied from ``based_on`` (default: the active version, else the latest one)."""
    Policy.objects.select_for_update().get(pk=policy.pk)
    if based_on is not None and based_on.policy_id != policy.pk:
        raise ValidationError("That version belongs to another policy.")
    source = based_on or active_version(policy) or policy.versions.order_by("-number").first()
    if source is None:
        raise ValidationError("This policy has no version to start from.")
    return _new_version(
        policy, document=source.document, based_on=source, summary=f"Based on v{source.number}", actor=actor
    )


@transaction.atomic
def rollback(policy: Policy, *, to: PolicyVersion, actor: Any = None) -> PolicyVersion:
    """A new version with an older version's rules, submitted for review like any change."""
    Policy.objects.select_for_update().get(pk=policy.pk)
    if to.policy_id != policy.pk:
        raise ValidationError("That version belongs to another policy.")
    version = _new_version(policy, document=to.document, based_on=to, summary=f"Rollback to v{to.number}", actor=actor)
    return submit(version, actor=actor)


@transaction.atomic
def submit(version: PolicyVersion, *, actor: Any = None) -> PolicyVersion:
    """Send a draft for review; from now on it cannot change."""
    _, version = _locked_policy(version)
    if version.state != State.DRAFT:
        raise ValidationError(f"Only a draft can be submitted; {version} is {version.state}.")
    _check_document(version.document)  # the registry may have changed since it was written
    version.submitted_at = timezone.now()
    version.save(update_fields=["submitted_at"])
    return _set_state(version, State.SUBMITTED, actor=actor)


def _set_state(version: PolicyVersion, state: str, *, actor: Any, reason: str = "") -> PolicyVersion:
    before = version.state
    version.state = state
    stamps: dict[str, str] = {State.ACTIVE: "activated_at", State.SUPERSEDED: "superseded_at"}
    stamp = stamps.get(state)
    fields = ["state"]
    if stamp:
        setattr(version, stamp, timezone.now())
        fields.append(stamp)
    if state in (State.APPROVED, State.REJECTED):
        version.decided_at = timezone.now()
        fields.append("decided_at")
    version.save(update_fields=fields)
    record_event(
        f"policyversion.{state}",
        obj=version,
        before={"state": before},
        after={"state": state},
        reason=reason,
        actor=actor,
    )
    return version


def active_version(policy: Policy) -> PolicyVersion | None:
    return policy.versions.filter(state=State.ACTIVE).first()


def can_review(version: PolicyVersion, user: Any) -> tuple[bool, str]:
    """Whether ``user`` may approve or reject ``version`` now, and if not, why."""
    if version.state != State.SUBMITTED:
        return False, f"{version} is {version.state}, not waiting for review."
    if version.contributors.filter(pk=user.pk).exists():
        return False, "You wrote or edited this version; someone else must review it."
    if version.reviews.filter(reviewer=user).exists():
        return False, "You have already reviewed this version."
    return True, ""


@transaction.atomic
def review(version: PolicyVersion, *, reviewer: Any, verdict: str, comment: str = "") -> PolicyVersion:
    """Record a verdict. Enough approvals activate the version at once, superseding the old one."""
    policy, version = _locked_policy(version)
    allowed, why = can_review(version, reviewer)
    if not allowed:
        raise ValidationError(why)
    if verdict not in Review.Verdict.values:
        raise ValidationError({"verdict": "Approve or reject."})
    if verdict == Review.Verdict.REJECT and not comment.strip():
        raise ValidationError({"comment": "Say why you reject it, so the author can fix it."})
    Review.objects.create(
        policy_version=version,
        reviewer=reviewer,
        reviewer_name=reviewer.get_username(),
        verdict=verdict,
        comment=comment,
    )
    record_event(f"policyversion.review.{verdict}", obj=version, reason=comment, actor=reviewer)
    if verdict == Review.Verdict.REJECT:
        return _set_state(version, State.REJECTED, actor=reviewer, reason=comment)
    approvals = version.reviews.filter(verdict=Review.Verdict.APPROVE).count()
    if approvals < policy.required_approvals:
        return version
    _set_state(version, State.APPROVED, actor=reviewer)
    return _activate(policy, version, actor=reviewer)


def _activate(policy: Policy, version: PolicyVersion, *, actor: Any) -> PolicyVersion:
    current = active_version(policy)
    if current is not None:
        _set_state(current, State.SUPERSEDED, actor=actor, reason=f"Replaced by v{version.number}.")
    try:
        with transaction.atomic():
            _set_state(version, State.ACTIVE, actor=actor)
    except IntegrityError as exc:  # the database's one-active-version guarantee
        raise ValidationError("Another version of this policy became active at the same time; try again.") from exc
    registry_services.increment(Counter.ROUTING_GENERATION)
    return version


# --- Compliance: widening goes through review, narrowing is immediate ----------------------


def widens(
    cell: ComplianceCell | None, *, decision: str, regions: list[Region], expires_on: datetime.date | None
) -> bool:
    """Would this decision allow anything that is not allowed today?"""
    if decision != ComplianceCell.Decision.APPROVED:
        return False
    if cell is None or cell.effective_decision() != ComplianceCell.Decision.APPROVED:
        return True
    now_limited = set(cell.region_slugs())
    proposed = {region.slug for region in regions}
    if now_limited and (not proposed or proposed - now_limited):
        return True
    return cell.expires_on is not None and (expires_on is None or expires_on > cell.expires_on)


@transaction.atomic
def change_compliance(
    *,
    model_version: ModelVersion,
    classification: DataClassification,
    decision: str,
    reason: str,
    regions: list[Region] | None = None,
    expires_on: datetime.date | None = None,
    evidence: str = "",
    evidence_url: str = "",
    actor: Any = None,
) -> ComplianceCell | ComplianceRequest:
    """Narrow the matrix at once; ask for review before widening it."""
    regions = list(regions or [])
    fields: dict[str, Any] = {
        "model_version": model_version,
        "classification": classification,
        "decision": decision,
        "reason": reason,
        "regions": regions,
        "expires_on": expires_on,
        "evidence": evidence,
        "evidence_url": evidence_url,
    }
    cell = ComplianceCell.objects.filter(model_version=model_version, classification=classification).first()
    if not widens(cell, decision=decision, regions=regions, expires_on=expires_on):
        return registry_services.set_compliance(**fields, actor=actor)
    # Check it now, as set_compliance will when applied, so the requester hears of problems first.
    with transaction.atomic():
        registry_services.set_compliance(**fields, actor=actor)
        transaction.set_rollback(True)
    user, actor_name = resolve_actor(actor)
    if user is None:
        raise ValidationError("Widening the compliance matrix needs a signed-in requester.")
    pending = ComplianceRequest.objects.filter(
        model_version=model_version, classification=classification, state=ComplianceRequest.State.PENDING
    ).first()
    if pending is not None:
        raise ValidationError(
            f"A change of this cell requested by {pending.requested_by_name} is already waiting for review; "
            "it must be approved or rejected first."
        )
    request = ComplianceRequest.objects.create(
        base_revision=cell.revision if cell else None,
        model_version=model_version,
        classification=classification,
        decision=decision,
        region_slugs=sorted(region.slug for region in regions),
        expires_on=expires_on,
        evidence=evidence,
        evidence_url=evidence_url,
        reason=reason,
        requested_by=user,
        requested_by_name=actor_name,
    )
    record_event("compliance.requested", obj=request, after=_request_state(request), reason=reason, actor=actor)
    return request


def _request_state(request: ComplianceRequest) -> dict[str, Any]:
    return {
        "model_version": str(request.model_version),
        "classification": request.classification.slug,
        "decision": request.decision,
        "regions": request.region_slugs,
        "expires_on": request.expires_on.isoformat() if request.expires_on else None,
        "evidence": request.evidence,
        "evidence_url": request.evidence_url,
        "state": request.state,
    }


def can_review_compliance(request: ComplianceRequest, user: Any) -> tuple[bool, str]:
    """Whether ``user`` may approve or reject ``request`` now, and if not, why."""
    if request.state != ComplianceRequest.State.PENDING:
        return False, f"This request is already {request.get_state_display().lower()}."
    if request.requested_by_id == user.pk:
        return False, "You asked for this change; someone else must review it."
    return True, ""


def _cell_revision(request: ComplianceRequest) -> int | None:
    cell = ComplianceCell.objects.filter(
        model_version=request.model_version, classification=request.classification
    ).first()
    return cell.revision if cell else None


@transaction.atomic
def review_compliance(
    request: ComplianceRequest, *, reviewer: Any, verdict: str, comment: str = ""
) -> ComplianceRequest:
    """Approve (and apply) or reject a widening; never one's own."""
    request = ComplianceRequest.objects.select_for_update().get(pk=request.pk)
    allowed, why = can_review_compliance(request, reviewer)
    if not allowed:
        raise ValidationError(why)
    if verdict not in Review.Verdict.values:
        raise ValidationError({"verdict": "Approve or reject."})
    if verdict == Review.Verdict.APPROVE and _cell_revision(request) != request.base_revision:
        raise ValidationError(
            "The cell has changed since this was requested; reject it and ask for the change again on today's matrix."
        )
    if verdict == Review.Verdict.REJECT and not comment.strip():
        raise ValidationError({"comment": "Say why you reject it."})
    Review.objects.create(
        compliance_request=request,
        reviewer=reviewer,
        reviewer_name=reviewer.get_username(),
        verdict=verdict,
        comment=comment,
    )
    before = _request_state(request)
    request.decided_at = timezone.now()
    if verdict == Review.Verdict.APPROVE:
        registry_services.set_compliance(
            model_version=request.model_version,
            classification=request.classification,
            decision=request.decision,
            regions=Region.objects.filter(slug__in=request.region_slugs),
            expires_on=request.expires_on,
            evidence=request.evidence,
            evidence_url=request.evidence_url,
            reason=f"{request.reason} (requested by {request.requested_by_name}, "
            f"approved by {reviewer.get_username()})",
            actor=reviewer,
        )
        request.state = ComplianceRequest.State.APPLIED
    else:
        request.state = ComplianceRequest.State.REJECTED
    request.save(update_fields=["state", "decided_at"])
    record_event(
        f"compliance.request.{request.state}",
        obj=request,
        before=before,
        after=_request_state(request),
        reason=comment,
        actor=reviewer,
    )
    return request
