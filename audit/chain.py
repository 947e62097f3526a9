"""The hash chain over audit events: canonical encodings and link hashes.

No Django here: the offline verifier (``python -m audit.verify``) uses the same code.

Each seal stores its FORMAT, and every format stays verifiable:

- FORMAT 1: ``hash = SHA-256(previous + "\\n" + canonical JSON of the event and its sequence)``,
  where the canonical JSON sorts keys at every level (``canonical``, ``link``).
- FORMAT 2 (current): ``hash = SHA-256(previous + "\\n" + sequence + "\\n" + digest)``, where
  ``digest`` is the SHA-256 of the event's record line (``record_line``): the fields of ``FIELDS``
  in that order, exactly as PostgreSQL's COPY prints them (JSON as ``jsonb`` prints it). So on
  PostgreSQL the database renders every row in C and Python only hashes bytes, while this module
  builds the same bytes from values (SQLite, the offline verifier, and a test that holds the two
  to each other). The digest does not depend on the sequence, so digests can be computed in any
  order and only the cheap link is sequential.

Changing, removing or reordering any sealed event breaks every link after it.
"""

import datetime
import decimal
import hashlib
import json
import uuid
from collections.abc import Callable, Mapping
from typing import Any

GENESIS = "0" * 64
FORMAT = 2  # the format new seals are made in; bump when an encoding changes
FORMATS = (1, 2)

# FORMAT 2's record: every AuditEvent column, in this order, by kind ("int", "str" or "json",
# with "?" when the column may be null). A test keeps it in step with the model; a new column
# needs a new FORMAT, since old seals cover exactly these fields.
FIELDS: dict[str, str] = {
    "id": "int",
    "occurred_at": "str",
    "kind": "str",
    "actor_id": "int?",
    "actor_name": "str",
    "actor_ip": "str?",
    "user_agent": "str",
    "request_id": "str",
    "object_type": "str",
    "object_id": "str",
    "object_repr": "str",
    "before": "json?",
    "after": "json?",
    "reason": "str",
    "decision_id": "str?",
    "application_id": "int?",
    "application_name": "str",
    "team_name": "str",
    "policy_slug": "str",
    "policy_version": "int?",
    "rule": "str",
    "compliance_revision": "int?",
    "model_version_id": "int?",
    "model_version_name": "str",
    "classification": "str",
    "region": "str",
    "task_type": "str",
    "data": "json?",
    "schema_version": "int",
}


def timestamp(value: datetime.datetime) -> str:
    """A moment as it is hashed and signed: UTC, microseconds, "Z"."""
    if value.tzinfo is not None:
        value = value.astimezone(datetime.UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def checkpoint_message(sequence: int, hash: str, count: int, created_at: str) -> bytes:
    """The bytes a checkpoint's Ed25519 signature covers (``created_at`` as ``timestamp`` gives it)."""
    return f"{sequence}:{hash}:{count}:{created_at}".encode()


# Values JSON cannot hold, by exact type (a dictionary lookup per value, not a chain of checks:
# verification encodes every field of every event).
_CONVERT: dict[type, Any] = {
    datetime.datetime: timestamp,
    datetime.date: datetime.date.isoformat,
    uuid.UUID: str,
    decimal.Decimal: str,
}
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical(record: Mapping[str, Any]) -> bytes:
    """FORMAT 1: one byte string per record: sorted keys, no spaces, UTF-8, timestamps in UTC."""
    plain = {
        key: (convert(value) if (convert := _CONVERT.get(type(value))) else value) for key, value in record.items()
    }
    return _ENCODER.encode(plain).encode()


def link(previous: str, sequence: int, record: Mapping[str, Any]) -> str:
    """FORMAT 1: the hash that seals ``record`` as number ``sequence`` after the event hashed ``previous``."""
    digest = hashlib.sha256()
    digest.update(previous.encode())
    digest.update(b"\n")
    digest.update(canonical({**record, "_sequence": sequence}))
    return digest.hexdigest()


# FORMAT 2.

_STRING = json.JSONEncoder(ensure_ascii=False).encode  # escapes exactly as PostgreSQL's escape_json


def _utc(value: datetime.datetime) -> str:
    """A moment as PostgreSQL's to_char(... AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') spells it."""
    if value.tzinfo is not None:
        value = value.astimezone(datetime.UTC).replace(tzinfo=None)
    return value.isoformat(timespec="microseconds") + "Z"


def _number(value: decimal.Decimal) -> str:
    """A number as PostgreSQL's numeric prints it: plain digits, never an exponent, never "-0"."""
    if value.is_zero():
        value = abs(value)
    return format(value, "f")


def render_json(value: Any) -> str:
    """A JSON value exactly as PostgreSQL prints it as ``jsonb``.

    Object keys go shortest first, then by their UTF-8 bytes; ", " and ": " separate. Numbers keep
    their decimal digits: parse JSON with ``parse_float=decimal.Decimal`` to keep them exact (a
    float is printed from its shortest repr, which is the text PostgreSQL was given for it).
    """
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return _STRING(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _number(decimal.Decimal(repr(value)))
    if isinstance(value, decimal.Decimal):
        return _number(value)
    if isinstance(value, Mapping):
        keys = sorted(value, key=lambda key: (len(key.encode()), key.encode()))
        return "{" + ", ".join(f"{_STRING(key)}: {render_json(value[key])}" for key in keys) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(render_json(item) for item in value) + "]"
    raise TypeError(f"not a JSON value: {type(value).__name__}")


def _text(value: Any) -> str:
    return _utc(value) if isinstance(value, datetime.datetime) else (value if isinstance(value, str) else str(value))


# How PostgreSQL's COPY writes text: a backslash escape for these, everything else as it is.
_COPY_ESCAPES = str.maketrans(
    {"\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}
)
_RENDER: dict[str, Callable[[Any], str]] = {"int": str, "str": _text, "json": render_json}
_RENDERERS = [(name, _RENDER[kind.rstrip("?")]) for name, kind in FIELDS.items()]


def record_line(record: Mapping[str, Any]) -> bytes:
    """FORMAT 2: the record as the line PostgreSQL's COPY prints for it (``KeyError`` if a field is missing).

    Fields in ``FIELDS`` order, tab-separated, ``\\N`` for null, COPY's backslash escapes, times as
    ``YYYY-MM-DDTHH:MM:SS.ffffffZ``, JSON as ``jsonb`` prints it. Verifying on PostgreSQL then
    costs the database its plain output and Python one SHA-256 per row.
    """
    return "\t".join(
        "\\N" if (value := record[name]) is None else render(value).translate(_COPY_ESCAPES)
        for name, render in _RENDERERS
    ).encode()


def record_digest(record: Mapping[str, Any]) -> str:
    return hashlib.sha256(record_line(record)).hexdigest()


def record_cells(record: Mapping[str, Any]) -> list[str]:
    """The record as CSV cells, in ``FIELDS`` order: as ``record_line`` renders them, "" for null."""
    return ["" if (value := record[name]) is None else render(value) for name, render in _RENDERERS]


def record_json(record: Mapping[str, Any]) -> str:
    """The record as one JSON object in ``FIELDS`` order, values as ``record_line`` renders them (for exports)."""
    parts = []
    for name, render in _RENDERERS:
        value = record[name]
        text = "null" if value is None else _STRING(render(value)) if render is _text else render(value)
        parts.append(f'"{name}":{text}')
    return "{" + ",".join(parts) + "}"


def link_digest(previous: str, sequence: int, digest: str) -> str:
    """FORMAT 2: the hash that seals the record with ``digest`` as number ``sequence`` after ``previous``."""
    return hashlib.sha256(f"{previous}\n{sequence}\n{digest}".encode()).hexdigest()


def seal_hash(format: int, previous: str, sequence: int, record: Mapping[str, Any]) -> str:
    """The hash a seal of ``format`` must hold for ``record`` (``ValueError`` for an unknown format)."""
    if format == 2:
        return link_digest(previous, sequence, record_digest(record))
    if format == 1:
        return link(previous, sequence, record)
    raise ValueError(f"unknown chain format {format}")
