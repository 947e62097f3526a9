"""Business operations on the registry and the compliance matrix.

Every operation validates, writes, bumps the counters routing depends on and records its audit
event in one transaction: either all of it happens or none of it does.
"""

import datetime
from collections.abc import Iterable
from typing import Any, TypeVar

from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, transaction
from django.db.models import F, ProtectedError
from django.utils import timezone

from audit.services import record_event, resolve_actor
from audit.snapshot import snapshot
from registry.models import (
    LIFECYCLE_TRANSITIONS,
    Capability,
    ComplianceCell,
    Counter,
    DataClassification,
    Lifecycle,
    ModelVersion,
    Region,
)

M = TypeVar("M", bound=models.Model)


def increment(name: str) -> int:
    """Add one to a named counter and return the new value; call inside a transaction."""
    with transaction.atomic():
        if not Counter.objects.filter(name=name).update(value=F("value") + 1):
            try:
                with transaction.atomic():
                    Counter.objects.create(name=name, value=1)
            except IntegrityError:  # created concurrently: count on top of it
                Counter.objects.filter(name=name).update(value=F("value") + 1)
        return Counter.objects.get(name=name).value


def current(name: str) -> int:
    return Counter.objects.filter(name=name).values_list("value", flat=True).first() or 0


def _event_kind(instance: models.Model, action: str) -> str:
    return f"{instance._meta.model_name}.{action}"


def _save(instance: M, m2m: dict[str, Iterable[Any]]) -> None:
    instance.full_clean()
    instance.save()
    for name, values in m2m.items():
        getattr(instance, name).set(values)


@transaction.atomic
def create_object(
    model_class: type[M], *, data: dict[str, Any], m2m: dict[str, Iterable[Any]] | None = None, actor: Any = None
) -> M:
    """Create any registry object except model versions (see ``create_version``)."""
    instance = model_class(**data)
    _save(instance, m2m or {})
    increment(Counter.ROUTING_GENERATION)
    record_event(_event_kind(instance, "created"), obj=instance, after=snapshot(instance), actor=actor)
    return instance


@transaction.atomic
def update_object(
    instance: M, *, data: dict[str, Any], m2m: dict[str, Iterable[Any]] | None = None, actor: Any = None
) -> M:
    """Change any registry object except model versions (see ``update_version``).

    The object is re-read under a row lock, so the audit "before" is what was stored even when the
    caller's instance was already modified (a ModelForm changes it while validating).
    """
    instance = type(instance)._default_manager.select_for_update().get(pk=instance.pk)
    before = snapshot(instance)
    for name, value in data.items():
        setattr(instance, name, value)
    _save(instance, m2m or {})
    after = snapshot(instance)
    if after != before:
        increment(Counter.ROUTING_GENERATION)
        record_event(_event_kind(instance, "updated"), obj=instance, before=before, after=after, actor=actor)
    return instance


@transaction.atomic
def delete_object(instance: models.Model, *, actor: Any = None) -> None:
    """Delete an object nothing depends on; otherwise explain what still uses it.

    The event is written first, while the object still has its id; a refusal rolls it back.
    """
    record_event(_event_kind(instance, "deleted"), obj=instance, before=snapshot(instance), actor=actor)
    try:
        instance.delete()
    except ProtectedError as exc:
        users = sorted({str(obj) for obj in exc.protected_objects})[:5]
        raise ValidationError(f"{instance} is still used by: {', '.join(users)}. Remove those first.") from exc
    increment(Counter.ROUTING_GENERATION)


def _check_quality_scores(scores: Any) -> None:
    if not isinstance(scores, dict):
        raise ValidationError({"quality_scores": 'Give an object of capability slug to score, e.g. {"code": 80}.'})
    known = set(Capability.objects.values_list("slug", flat=True))
    errors = []
    for key, value in scores.items():
        if key not in known:
            errors.append(f"Unknown capability '{key}'; known: {', '.join(sorted(known))}.")
        elif isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 100:
            errors.append(f"Score for '{key}' must be a number from 0 to 100.")
    if errors:
        raise ValidationError({"quality_scores": errors})


def _check_regions(regions: list[Region]) -> None:
    if not regions:
        raise ValidationError({"regions": "Name at least one region the version is hosted in."})


@transaction.atomic
def create_version(*, data: dict[str, Any], regions: Iterable[Region], actor: Any = None) -> ModelVersion:
    """Register a new version. It starts as a candidate whatever the caller asks."""
    regions = list(regions)
    _check_regions(regions)
    _check_quality_scores(data.get("quality_scores", {}))
    version = ModelVersion(**{**data, "lifecycle": Lifecycle.CANDIDATE})
    _save(version, {"regions": regions})
    increment(Counter.ROUTING_GENERATION)
    record_event("modelversion.created", obj=version, after=snapshot(version), actor=actor)
    return version


@transaction.atomic
def update_version(
    version: ModelVersion, *, data: dict[str, Any], regions: Iterable[Region] | None = None, actor: Any = None
) -> ModelVersion:
    """Change a version. Technical fields change only while it is a candidate."""
    version = ModelVersion.objects.select_for_update().get(pk=version.pk)
    before = snapshot(version)
    if "lifecycle" in data and data["lifecycle"] != version.lifecycle:
        raise ValidationError({"lifecycle": "Change the lifecycle with a transition, not an edit."})
    for name, value in data.items():
        setattr(version, name, value)
    region_list = list(regions) if regions is not None else None
    if region_list is not None:
        _check_regions(region_list)
    if "quality_scores" in data:
        _check_quality_scores(data["quality_scores"])
    successor = data.get("successor")
    if successor is not None and successor.lifecycle == Lifecycle.RETIRED:
        raise ValidationError({"successor": f"{successor} is retired and cannot succeed another version."})
    if version.is_frozen:
        proposed = snapshot(version)
        if region_list is not None:
            proposed["regions"] = sorted(region.slug for region in region_list)
        changed = [
            name
            for name in ModelVersion.TECHNICAL_FIELDS
            if proposed.get(_snapshot_key(name)) != before.get(_snapshot_key(name))
        ]
        if changed:
            message = (
                f"This version is {version.lifecycle} and its technical fields cannot change; "
                "create a new version from it instead."
            )
            raise ValidationError(dict.fromkeys(changed, message))
    _save(version, {"regions": region_list} if region_list is not None else {})
    after = snapshot(version)
    if after != before:
        increment(Counter.ROUTING_GENERATION)
        record_event("modelversion.updated", obj=version, before=before, after=after, actor=actor)
    return version


@transaction.atomic
def delete_version(version: ModelVersion, *, actor: Any = None) -> None:
    """Delete a candidate. Anything further along is cited by decisions: retire it instead.

    Its compliance cells go with it, each recorded as a change to the matrix.
    """
    version = ModelVersion.objects.select_for_update().get(pk=version.pk)
    if version.lifecycle != Lifecycle.CANDIDATE:
        raise ValidationError(f"{version} is {version.lifecycle}; only candidates can be deleted. Retire it instead.")
    cells = list(version.compliance.select_related("classification").prefetch_related("regions"))
    if cells:
        revision = increment(Counter.COMPLIANCE_REVISION)
        for cell in cells:
            record_event(
                "compliance.changed",
                obj=cell,
                before=_cell_state(cell),
                after={"decision": None, "revision": revision},
                reason="Model version deleted.",
                actor=actor,
            )
    delete_object(version, actor=actor)


def _snapshot_key(field_name: str) -> str:
    """The key a field has in ``snapshot()``: the column name (``model_id``) for a foreign key."""
    field = ModelVersion._meta.get_field(field_name)
    return field.name if field.many_to_many else field.attname  # type: ignore[union-attr]


def new_version_initial(version: ModelVersion) -> dict[str, Any]:
    """Form data for a new candidate copied from ``version`` (the way to "change" a frozen one)."""
    initial: dict[str, Any] = {
        field: getattr(version, field)
        for field in ModelVersion.TECHNICAL_FIELDS
        if field not in {"model", "label", "regions"}
    }
    initial["model"] = version.model_id
    initial["regions"] = list(version.regions.all())
    initial["label"] = ""
    return initial


_TIMESTAMP_FOR = {
    Lifecycle.APPROVED: "approved_at",
    Lifecycle.DEPRECATED: "deprecated_at",
    Lifecycle.RETIRED: "retired_at",
}


@transaction.atomic
def transition_version(
    version: ModelVersion, *, to: str, reason: str = "", actor: Any = None, when: datetime.datetime | None = None
) -> ModelVersion:
    """Move a version one allowed lifecycle step, stamping the date of the step."""
    version = ModelVersion.objects.select_for_update().get(pk=version.pk)
    allowed = LIFECYCLE_TRANSITIONS[version.lifecycle]
    if to not in allowed:
        options = ", ".join(allowed) or "none, it is retired"
        raise ValidationError({"lifecycle": f"A {version.lifecycle} version cannot become {to}; allowed: {options}."})
    when = when or timezone.now()
    earlier = [t for t in (version.created_at, version.approved_at, version.deprecated_at) if t is not None]
    if when < max(earlier):
        raise ValidationError({"lifecycle": "A lifecycle step cannot be dated before the version's previous step."})
    before = snapshot(version)
    version.lifecycle = to
    setattr(version, _TIMESTAMP_FOR[Lifecycle(to)], when)
    version.save()
    increment(Counter.ROUTING_GENERATION)
    record_event(
        "modelversion.lifecycle", obj=version, before=before, after=snapshot(version), reason=reason, actor=actor
    )
    return version


def apply_scheduled_lifecycle(today: datetime.date | None = None) -> list[ModelVersion]:
    """Deprecate and retire the versions whose planned day has come (run daily by Celery beat)."""
    today = today or timezone.localdate()
    changed = []
    due_deprecation = ModelVersion.objects.filter(lifecycle=Lifecycle.APPROVED, deprecates_on__lte=today)
    for version in due_deprecation:
        changed.append(transition_version(version, to=Lifecycle.DEPRECATED, reason="Planned deprecation date reached."))
    due_retirement = ModelVersion.objects.filter(
        lifecycle__in=[Lifecycle.APPROVED, Lifecycle.DEPRECATED], retires_on__lte=today
    )
    for version in due_retirement:
        if version.lifecycle == Lifecycle.APPROVED:
            version = transition_version(version, to=Lifecycle.DEPRECATED, reason="Planned retirement date reached.")
        changed.append(transition_version(version, to=Lifecycle.RETIRED, reason="Planned retirement date reached."))
    return changed


def _cell_state(cell: ComplianceCell | None) -> dict[str, Any] | None:
    if cell is None:
        return None
    return {
        "decision": cell.decision,
        "regions": cell.region_slugs(),
        "expires_on": cell.expires_on.isoformat() if cell.expires_on else None,
        "evidence": cell.evidence,
        "evidence_url": cell.evidence_url,
    }


@transaction.atomic
def set_compliance(
    *,
    model_version: ModelVersion,
    classification: DataClassification,
    decision: str,
    reason: str,
    regions: Iterable[Region] = (),
    expires_on: datetime.date | None = None,
    evidence: str = "",
    evidence_url: str = "",
    actor: Any = None,
    decided_at: datetime.datetime | None = None,
) -> ComplianceCell:
    """Decide one cell of the matrix and bump the matrix revision that decisions cite.

    ``decided_at`` records a decision taken earlier (importing a spreadsheet); expiry is checked
    against that day, so an imported approval may already have expired.
    """
    decided_at = decided_at or timezone.now()
    regions = list(regions)
    errors: dict[str, str] = {}
    if not reason.strip():
        errors["reason"] = "Say why the decision changes; the reason is kept in the audit log."
    if decision not in ComplianceCell.Decision.values:
        errors["decision"] = f"Choose one of: {', '.join(ComplianceCell.Decision.values)}."
    elif decision == ComplianceCell.Decision.APPROVED:
        if model_version.lifecycle == Lifecycle.RETIRED:
            errors["decision"] = "A retired version cannot be approved for any data."
        if expires_on is not None and expires_on < timezone.localdate(decided_at):
            errors["expires_on"] = "An approval cannot expire before it is decided."
        if not evidence.strip() and not evidence_url:
            errors["evidence"] = "An approval needs evidence: a note, a link, or both."
    hosted = {region.slug for region in model_version.regions.all()}
    outside = sorted(region.slug for region in regions if region.slug not in hosted)
    if outside:
        errors["regions"] = f"{', '.join(outside)} not among the version's regions ({', '.join(sorted(hosted))})."
    if decided_at > timezone.now():
        errors["decided_at"] = "A decision cannot be dated in the future."
    if errors:
        raise ValidationError(errors)

    cell = (
        ComplianceCell.objects.select_for_update()
        .filter(model_version=model_version, classification=classification)
        .first()
    )
    before = _cell_state(cell)
    revision = increment(Counter.COMPLIANCE_REVISION)
    increment(Counter.ROUTING_GENERATION)
    _, actor_name = resolve_actor(actor)
    if cell is None:
        cell = ComplianceCell(model_version=model_version, classification=classification)
    cell.decision = decision
    cell.expires_on = expires_on
    cell.evidence = evidence
    cell.evidence_url = evidence_url
    cell.decided_by_name = actor_name
    cell.decided_at = decided_at
    cell.revision = revision
    cell.full_clean(exclude=["model_version", "classification"], validate_constraints=False)
    cell.save()
    cell.regions.set(regions)
    after = _cell_state(cell)
    assert after is not None
    after["revision"] = revision
    record_event("compliance.changed", obj=cell, before=before, after=after, reason=reason, actor=actor)
    return cell


def compliance_cells(versions: Iterable[ModelVersion]) -> dict[tuple[int, int], ComplianceCell]:
    """The stored cells of these versions keyed by (version id, classification id), in one query."""
    cells = ComplianceCell.objects.filter(model_version__in=list(versions)).prefetch_related("regions")
    return {(cell.model_version_id, cell.classification_id): cell for cell in cells}
