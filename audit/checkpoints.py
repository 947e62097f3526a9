"""Signed checkpoints of the audit chain, and the key that signs them.

The Ed25519 private key lives outside the database (``AUDIT_SIGNING_KEY`` or
``AUDIT_SIGNING_KEY_FILE``: 32 raw bytes as base64, or a PEM). Without one, a development
installation makes its own under ``var/`` (git-ignored); production is warned by
``manage.py check --deploy``.
"""

import base64
import binascii
from functools import cache
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.utils import timezone

from audit import chain
from audit.models import AuditSeal, Checkpoint

DEVELOPMENT_KEY = "audit-signing-key.pem"


def _load(text: str) -> Ed25519PrivateKey:
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_private_key(text.encode(), password=None)
            if not isinstance(key, Ed25519PrivateKey):
                raise ImproperlyConfigured("AUDIT_SIGNING_KEY must be an Ed25519 key.")
            return key
        return Ed25519PrivateKey.from_private_bytes(base64.b64decode(text, validate=True))
    except (ValueError, binascii.Error) as exc:
        raise ImproperlyConfigured(f"AUDIT_SIGNING_KEY cannot be read: {exc}") from exc


@cache
def signing_key() -> Ed25519PrivateKey:
    """The configured key; in DEBUG without one, a key kept in var/ for this installation."""
    if settings.AUDIT_SIGNING_KEY:
        return _load(settings.AUDIT_SIGNING_KEY)
    if not settings.DEBUG:
        raise ImproperlyConfigured("Set AUDIT_SIGNING_KEY (or AUDIT_SIGNING_KEY_FILE) to sign audit checkpoints.")
    path = Path(settings.VAR_DIR) / DEVELOPMENT_KEY
    if not path.exists():
        path.parent.mkdir(exist_ok=True)
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        path.write_bytes(pem)
        path.chmod(0o600)
    return _load(path.read_text())


def public_key_hex() -> str:
    raw = signing_key().public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return raw.hex()


def sign(sequence: int, hash: str) -> Checkpoint:
    """Sign that the chain has ``sequence`` events and the one at ``sequence`` hashes to ``hash``."""
    created_at = timezone.now()
    message = chain.checkpoint_message(sequence, hash, sequence, chain.timestamp(created_at))
    return Checkpoint.objects.create(
        sequence=sequence,
        hash=hash,
        count=sequence,
        created_at=created_at,
        signature=signing_key().sign(message).hex(),
        public_key=public_key_hex(),
    )


@transaction.atomic
def make_checkpoint() -> Checkpoint | None:
    """Sign the chain's current end, unless the last checkpoint already covers it."""
    last = AuditSeal.objects.order_by("-sequence").only("sequence", "hash").first()
    if last is None or Checkpoint.objects.filter(sequence__gte=last.sequence).exists():
        return None
    return sign(last.sequence, last.hash)


def signature_holds(checkpoint: Checkpoint, public_key: str | None = None) -> bool:
    """Whether the checkpoint's signature is valid for ``public_key`` (default: the one it names)."""
    key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key or checkpoint.public_key))
    message = chain.checkpoint_message(
        checkpoint.sequence, checkpoint.hash, checkpoint.count, chain.timestamp(checkpoint.created_at)
    )
    try:
        key.verify(bytes.fromhex(checkpoint.signature), message)
    except InvalidSignature:
        return False
    return True


def covering(last_sequence: int) -> Checkpoint | None:
    """The first checkpoint at or after ``last_sequence``: it vouches for everything up to there."""
    return Checkpoint.objects.filter(sequence__gte=last_sequence).order_by("sequence").first()
