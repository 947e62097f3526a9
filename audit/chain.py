"""The hash chain over audit events: canonical encoding and link hashes.

No Django here: the offline verifier (issue 4's ``python -m audit.verify``) uses the same code.
Each sealed event gets a sequence number and ``hash = SHA-256(previous hash + "\\n" + canonical
bytes of the event and its sequence)``, so changing, removing or reordering any sealed event
breaks every link after it.
"""

import datetime
import decimal
import hashlib
import json
import uuid
from collections.abc import Mapping
from typing import Any

GENESIS = "0" * 64
FORMAT = 1  # bump when the canonical encoding changes; stored with every seal


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
    """One byte string per record: sorted keys, no spaces, UTF-8, timestamps in UTC."""
    plain = {
        key: (convert(value) if (convert := _CONVERT.get(type(value))) else value) for key, value in record.items()
    }
    return _ENCODER.encode(plain).encode()


def link(previous: str, sequence: int, record: Mapping[str, Any]) -> str:
    """The hash that seals ``record`` as number ``sequence`` after the event hashed ``previous``."""
    digest = hashlib.sha256()
    digest.update(previous.encode())
    digest.update(b"\n")
    digest.update(canonical({**record, "_sequence": sequence}))
    return digest.hexdigest()
