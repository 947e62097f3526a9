"""The routing API's part of the OpenAPI schema.

The routing endpoints are plain Django views (they sit in every governed request's path), so
drf-spectacular cannot see them; this hook describes them for ``/api/schema/`` and ``/api/docs/``.
"""

from typing import Any

ERROR = {"$ref": "#/components/schemas/RoutingError"}
MODEL = {"$ref": "#/components/schemas/RoutedModel"}

SCHEMAS: dict[str, Any] = {
    "RouteRequest": {
        "type": "object",
        "required": ["task_type", "data_classification"],
        "additionalProperties": False,
        "properties": {
            "task_type": {"type": "string", "description": "A capability slug, e.g. summarization."},
            "data_classification": {"type": "string", "description": "A classification slug, e.g. pii."},
            "region": {"type": "string", "description": "Where the data may be processed, e.g. eu."},
            "complexity": {"type": "string", "enum": ["low", "medium", "high"]},
            "input_tokens": {"type": "integer", "minimum": 0},
            "max_output_tokens": {"type": "integer", "minimum": 1, "description": "Default 1024 for estimates."},
            "max_cost_usd": {"type": "number", "minimum": 0},
            "max_latency_ms": {"type": "integer", "minimum": 1},
            "request_id": {
                "type": "string",
                "pattern": "^[A-Za-z0-9._:-]{1,64}$",
                "description": "Repeating it returns the first decision (idempotency); also keys weighted splits.",
            },
            "metadata": {"type": "object", "description": "At most 4 KB, kept with the decision."},
        },
    },
    "RoutedModel": {
        "type": "object",
        "properties": {
            "provider": {"type": "string"},
            "model": {"type": "string"},
            "version": {"type": "string"},
            "api_model_id": {"type": "string"},
            "model_version_id": {"type": "integer"},
        },
    },
    "RouteDecision": {
        "type": "object",
        "properties": {
            "decision_id": {"type": "string", "format": "uuid"},
            "model": MODEL,
            "fallbacks": {"type": "array", "items": MODEL},
            "verifier": {"allOf": [MODEL], "nullable": True},
            "policy": {"type": "object", "properties": {"slug": {"type": "string"}, "version": {"type": "integer"}}},
            "rule": {"type": "string"},
            "compliance_revision": {"type": "integer"},
            "reasons": {"type": "array", "items": {"type": "string"}},
            "estimated_cost_usd": {"type": "number"},
        },
    },
    "RoutingError": {
        "type": "object",
        "properties": {
            "detail": {"type": "string"},
            "errors": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}},
            "excluded": {
                "type": "array",
                "description": "On 422: every candidate model version and why it was excluded.",
                "items": {
                    "type": "object",
                    "properties": {
                        "model_version": {"type": "string"},
                        "model_version_id": {"type": "integer"},
                        "reason": {"type": "string"},
                    },
                },
            },
            "quota": {
                "type": "object",
                "description": "On 429 over quota; the Retry-After header says the same.",
                "properties": {
                    "requests_per_minute": {"type": "integer"},
                    "retry_after_seconds": {"type": "integer"},
                },
            },
            "budgets": {
                "type": "array",
                "description": "On 429 over budget (the rule says over_budget: refuse): each budget exceeded.",
                "items": {
                    "type": "object",
                    "properties": {
                        "scope": {"type": "string", "enum": ["team", "application"]},
                        "slug": {"type": "string"},
                        "name": {"type": "string"},
                        "monthly_budget_usd": {"type": "string"},
                        "spent_usd": {"type": "number"},
                        "month": {"type": "string", "description": "YYYY-MM"},
                        "resets_at": {"type": "string", "format": "date-time"},
                    },
                },
            },
        },
    },
    "Outcome": {
        "type": "object",
        "required": ["model_version_id", "status"],
        "additionalProperties": False,
        "properties": {
            "model_version_id": {"type": "integer", "description": "The decision's model or one of its fallbacks."},
            "status": {"type": "string", "enum": ["ok", "error", "timeout"]},
            "input_tokens": {"type": "integer", "minimum": 0},
            "output_tokens": {"type": "integer", "minimum": 0},
            "latency_ms": {"type": "integer", "minimum": 0},
            "output_sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
            "output": {"type": "string", "description": "Only for applications that capture content."},
        },
    },
}


def _responses(ok: tuple[str, str, str], *errors: tuple[str, str]) -> dict[str, Any]:
    code, text, schema = ok
    responses: dict[str, Any] = {
        code: {
            "description": text,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
        }
    }
    for status, description in errors:
        responses[status] = {"description": description, "content": {"application/json": {"schema": ERROR}}}
    return responses


PATHS: dict[str, Any] = {
    "/api/v1/route": {
        "post": {
            "operationId": "route",
            "tags": ["routing"],
            "summary": "Which model version should answer this request",
            "description": "Authenticate with the application's key. The decision is stored in the audit log "
            "before any 2xx is sent.",
            "security": [{"applicationKey": []}],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/RouteRequest"}}},
            },
            "responses": _responses(
                ("200", "The chosen model version, fallbacks and reasons.", "RouteDecision"),
                ("400", "Malformed or unknown values, by field."),
                ("401", "Missing, unknown, expired or revoked key."),
                ("403", "The application may not send this data classification."),
                ("422", "No model version may serve: every candidate and why not."),
                (
                    "429",
                    "Over the application's requests-per-minute quota (with Retry-After, not recorded), or over "
                    "a monthly budget where the rule refuses (recorded as a refusal, naming the budget).",
                ),
                ("503", "The quota and budget counters cannot be reached; routing fails closed."),
            ),
        }
    },
    "/api/v1/decisions/{decision_id}/outcome": {
        "post": {
            "operationId": "report_outcome",
            "tags": ["routing"],
            "summary": "Report which model version answered and how it went",
            "security": [{"applicationKey": []}],
            "parameters": [
                {"name": "decision_id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}
            ],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Outcome"}}},
            },
            "responses": {
                "201": {
                    "description": "Recorded.",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {"event_id": {"type": "integer"}, "decision_id": {"type": "string"}},
                            }
                        }
                    },
                },
                **{
                    status: {"description": text, "content": {"application/json": {"schema": ERROR}}}
                    for status, text in (
                        ("400", "Malformed fields."),
                        ("401", "Missing, unknown, expired or revoked key."),
                        ("404", "No decision with this id for this application."),
                        ("409", "A version the decision did not offer, or an outcome already reported."),
                    )
                },
            },
        }
    },
}


def add_routing_paths(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: add the routing endpoints and their schemas."""
    result.setdefault("paths", {}).update(PATHS)
    components = result.setdefault("components", {})
    components.setdefault("schemas", {}).update(SCHEMAS)
    components.setdefault("securitySchemes", {})["applicationKey"] = {
        "type": "http",
        "scheme": "bearer",
        "description": "An application's API key (sb_...), made on its page or with manage.py create_app_key.",
    }
    return result
