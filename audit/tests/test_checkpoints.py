"""Signed checkpoints: made after sealing, refused when forged, checked by verify_audit."""

import base64
import os
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from audit import checkpoints
from audit.models import Checkpoint
from audit.sealing import seal_all
from audit.services import record_event
from audit.tasks import sign_checkpoint
from audit.verification import verify

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_key() -> Any:
    checkpoints.signing_key.cache_clear()
    yield
    checkpoints.signing_key.cache_clear()


def sealed(count: int) -> None:
    for i in range(count):
        record_event("test.happened", reason=f"event {i}")
    seal_all()


def test_a_checkpoint_signs_the_end_of_the_chain_once() -> None:
    assert checkpoints.make_checkpoint() is None  # nothing sealed yet
    sealed(3)
    checkpoint = sign_checkpoint()
    assert checkpoint == 3
    made = Checkpoint.objects.get()
    assert (made.sequence, made.count, made.public_key) == (3, 3, checkpoints.public_key_hex())
    assert checkpoints.signature_holds(made)
    assert checkpoints.make_checkpoint() is None  # no new events, no new checkpoint
    sealed(2)
    assert checkpoints.make_checkpoint().sequence == 5
    assert checkpoints.covering(4).sequence == 5
    assert checkpoints.covering(6) is None
    assert verify().intact


def test_a_checkpoint_signed_by_another_key_is_caught(settings: Any) -> None:
    sealed(2)
    settings.AUDIT_SIGNING_KEY = base64.b64encode(os.urandom(32)).decode()  # the forger's key
    checkpoints.make_checkpoint()
    settings.AUDIT_SIGNING_KEY = base64.b64encode(os.urandom(32)).decode()  # the real, configured key
    checkpoints.signing_key.cache_clear()
    result = verify()
    assert result.problem == "checkpoint at sequence 2: the signature does not hold for the configured key"
    with pytest.raises(CommandError, match="checkpoint at sequence 2"):
        call_command("verify_audit")


def test_a_rewritten_chain_no_longer_matches_its_checkpoint() -> None:
    sealed(2)
    checkpoints.make_checkpoint()
    with connection.cursor() as cursor:  # the test database runs in maintenance mode
        cursor.execute("UPDATE audit_checkpoint SET hash = %s", ["a" * 64])
    assert verify().problem == "checkpoint at sequence 2: the chain there has another hash"


def test_production_needs_a_signing_key(settings: Any) -> None:
    settings.AUDIT_SIGNING_KEY = None
    settings.DEBUG = False
    with pytest.raises(Exception, match="Set AUDIT_SIGNING_KEY"):
        checkpoints.signing_key()
