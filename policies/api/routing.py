"""The routing API: ``POST /api/v1/route`` and ``POST /api/v1/decisions/<id>/outcome``.

These are plain Django views, not DRF: they sit in every governed request's path, so they do the
least work that keeps the contract. A request reads the in-memory snapshot, asks the engine, and
writes one audit event before it answers; a 2xx means the event is stored.
"""

import hashlib
import json
import re
import uuid
from typing import Any

from django.contrib.auth.decorators import login_not_required
from django.db import IntegrityError
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from audit.context import current_request
from audit.models import AuditEvent
from audit.services import insert
from policies import decisions, engine
from policies.counters import insert_guard
from policies.services import hash_key
from policies.snapshot import holder

COMPLEXITIES = ("low", "medium", "high")
OUTCOME_STATUSES = ("ok", "error", "timeout")
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")
MAX_BODY = 64 * 1024
MAX_METADATA = 4 * 1024
ROUTE_FIELDS = (
    "task_type",
    "data_classification",
    "region",
    "complexity",
    "input_tokens",
    "max_output_tokens",
    "max_cost_usd",
    "max_latency_ms",
    "request_id",
    "metadata",
)


class ApiError(Exception):
    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        self.status, self.body, self.headers = status, body, headers or {}


def _answer(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> JsonResponse:
    response = JsonResponse(body, status=status)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def authenticate(request: HttpRequest, snapshot: engine.Snapshot) -> engine.App:
    """The application behind the Bearer key, or a 401 that says what is wrong with the key."""
    header = request.headers.get("Authorization", "")
    challenge = {"WWW-Authenticate": 'Bearer realm="switchboard"'}
    if not header.startswith("Bearer ") or not header[7:].strip():
        raise ApiError(401, {"detail": "Send the application's key as 'Authorization: Bearer <key>'."}, challenge)
    key = snapshot.keys.get(hash_key(header[7:].strip()))
    if key is None:
        raise ApiError(401, {"detail": "Unknown API key."}, challenge)
    if key.revoked_at is not None:
        raise ApiError(401, {"detail": "This API key was revoked."}, challenge)
    if key.expires_at is not None and key.expires_at <= timezone.now():
        raise ApiError(401, {"detail": f"This API key expired at {key.expires_at.isoformat()}."}, challenge)
    return key.app


def _json_body(request: HttpRequest) -> dict[str, Any]:
    if len(request.body) > MAX_BODY:
        raise ApiError(413, {"detail": f"The body is larger than {MAX_BODY} bytes."})
    try:
        body = json.loads(request.body or b"null")
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, {"detail": f"The body is not valid JSON: {exc}"}) from exc
    if not isinstance(body, dict):
        raise ApiError(400, {"detail": "The body must be a JSON object."})
    return body


def _int(body: dict[str, Any], name: str, errors: dict[str, list[str]], minimum: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        errors[name] = [f"A whole number of at least {minimum}."]
        return None
    return value


def parse_route(body: dict[str, Any], app: engine.App, snapshot: engine.Snapshot) -> engine.Request:
    """Validate a route request; every problem is reported at once, by field."""
    errors: dict[str, list[str]] = {}
    for name in body:
        if name not in ROUTE_FIELDS:
            errors[name] = [f"Unknown field; known: {', '.join(ROUTE_FIELDS)}."]
    vocabularies = (
        ("task_type", snapshot.task_types, True),
        ("data_classification", snapshot.classifications, True),
        ("region", snapshot.regions, False),
        ("complexity", frozenset(COMPLEXITIES), False),
    )
    for name, known, required in vocabularies:
        value = body.get(name)
        if value is None:
            if required:
                errors[name] = ["This field is required."]
        elif not isinstance(value, str) or value not in known:
            errors[name] = [f"Unknown value {value!r}; use one of: {', '.join(sorted(known))}."]
    for name, minimum in (("input_tokens", 0), ("max_output_tokens", 1), ("max_latency_ms", 1)):
        _int(body, name, errors, minimum)
    max_cost = body.get("max_cost_usd")
    if max_cost is not None and (isinstance(max_cost, bool) or not isinstance(max_cost, int | float) or max_cost < 0):
        errors["max_cost_usd"] = ["A number of at least 0."]
    request_id = body.get("request_id")
    if request_id is not None and (not isinstance(request_id, str) or not REQUEST_ID.match(request_id)):
        errors["request_id"] = ["1 to 64 letters, digits or . _ : -"]
    metadata = body.get("metadata")
    if metadata is not None and (not isinstance(metadata, dict) or len(json.dumps(metadata)) > MAX_METADATA):
        errors["metadata"] = [f"A JSON object of at most {MAX_METADATA} bytes."]
    if errors:
        raise ApiError(400, {"detail": "The request has invalid fields.", "errors": errors})
    return engine.Request.from_body(app, body)


@csrf_exempt
@login_not_required
@require_POST
def route(request: HttpRequest) -> JsonResponse:
    """Which model version should answer: 200 with the decision, or 4xx saying exactly why not."""
    snapshot = holder.get()
    try:
        app = authenticate(request, snapshot)
        body = _json_body(request)
        wanted = parse_route(body, app, snapshot)
    except ApiError as error:
        return _answer(error.status, error.body, error.headers)
    context = current_request.get()
    answer = decisions.decide_and_record(
        snapshot,
        wanted,
        stored_request={name: body[name] for name in ROUTE_FIELDS if name in body},
        ip=context.ip if context else None,
        user_agent=context.user_agent if context else "",
    )
    return _answer(answer.status, answer.body, answer.headers)


# What an outcome inherits from its decision, so it reads on its own in the audit log.
ATTRIBUTION = (
    "request_id",
    "decision_id",
    "application_id",
    "application_name",
    "team_name",
    "policy_slug",
    "policy_version",
    "rule",
    "compliance_revision",
    "classification",
    "region",
    "task_type",
)
OUTCOME_FIELDS = (
    "model_version_id",
    "status",
    "input_tokens",
    "output_tokens",
    "latency_ms",
    "output_sha256",
    "output",
)


@csrf_exempt
@login_not_required
@require_POST
def outcome(request: HttpRequest, decision_id: uuid.UUID) -> JsonResponse:
    """The application reports which model version actually answered, and how it went."""
    snapshot = holder.get()
    try:
        app = authenticate(request, snapshot)
        body = _json_body(request)
    except ApiError as error:
        return _answer(error.status, error.body, error.headers)
    decision = AuditEvent.objects.filter(kind="routing.decision", decision_id=decision_id).first()
    if decision is None or decision.application_id != app.id:
        return _answer(404, {"detail": "No decision with this id for this application."})
    errors: dict[str, list[str]] = {}
    for name in body:
        if name not in OUTCOME_FIELDS:
            errors[name] = [f"Unknown field; known: {', '.join(OUTCOME_FIELDS)}."]
    if body.get("status") not in OUTCOME_STATUSES:
        errors["status"] = [f"One of: {', '.join(OUTCOME_STATUSES)}."]
    counts = {name: _int(body, name, errors, 0) for name in ("input_tokens", "output_tokens", "latency_ms")}
    version_id = body.get("model_version_id")
    if isinstance(version_id, bool) or not isinstance(version_id, int):
        errors["model_version_id"] = ["The id of the model version that produced the output."]
    output, digest = body.get("output"), body.get("output_sha256")
    if output is not None and not isinstance(output, str):
        errors["output"] = ["The output text."]
    elif output is not None and not app.content_capture:
        errors["output"] = ["Content capture is off for this application: send output_sha256, not the output."]
    if digest is not None and (not isinstance(digest, str) or not SHA256.match(digest)):
        errors["output_sha256"] = ["64 lowercase hexadecimal characters."]
    if output is None and digest is None and "output" not in errors:
        errors["output_sha256"] = ["Send output_sha256 (or the output, when the application captures content)."]
    if errors:
        return _answer(400, {"detail": "The outcome has invalid fields.", "errors": errors})
    assert isinstance(version_id, int), "validated above"
    assert decision.data is not None, "a decision always records its request and answer"
    response = decision.data["response"]
    allowed = [response["model"], *response["fallbacks"]]
    used = next((entry for entry in allowed if entry["model_version_id"] == version_id), None)
    if used is None:
        ids = ", ".join(str(entry["model_version_id"]) for entry in allowed)
        return _answer(409, {"detail": f"Model version {version_id} was not offered by this decision ({ids})."})
    if output is not None and digest is None:
        digest = hashlib.sha256(output.encode()).hexdigest()
    version = snapshot.by_id.get(version_id)
    reported_cost = (
        version.cost(counts["input_tokens"] or 0, counts["output_tokens"] or 0) if version is not None else None
    )
    context = current_request.get()
    event = AuditEvent(
        kind="routing.outcome",
        actor_name=f"app:{app.slug}",
        actor_ip=context.ip if context else None,
        user_agent=context.user_agent if context else "",
        **{name: getattr(decision, name) for name in ATTRIBUTION},
        model_version_id=version_id,
        model_version_name=version.ref if version else f"{used['provider']}/{used['model']}/{used['version']}",
        data={
            "status": body["status"],
            **counts,
            "output_sha256": digest,
            **({"output": output} if output is not None else {}),
            "reported_cost_usd": round(reported_cost, 6) if reported_cost is not None else None,
            "fallback_used": version_id != response["model"]["model_version_id"],
        },
    )
    try:
        with insert_guard():
            insert(event)
    except IntegrityError:
        return _answer(409, {"detail": "An outcome was already reported for this decision."})
    return _answer(201, {"event_id": event.pk, "decision_id": str(decision.decision_id)})
