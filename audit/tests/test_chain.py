"""The hash chain: sealing in batches, verification, and tampering found by sequence number."""

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from audit import chain
from audit.models import AuditSeal
from audit.sealing import seal_all, seal_batch
from audit.services import record_event
from audit.tasks import seal_audit_events
from audit.verification import verify
from registry.tests.test_tasks import wait_for

pytestmark = pytest.mark.django_db


def events(count: int) -> list[Any]:
    return [record_event("test.happened", reason=f"event {i}", after={"n": i}) for i in range(count)]


@contextmanager
def behind_the_triggers_back() -> Iterator[Any]:
    """What the table's owner can do: switch the append-only triggers off and edit rows."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # Django's deferred foreign keys would block ALTER
            cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER USER")
            cursor.execute("ALTER TABLE audit_auditseal DISABLE TRIGGER USER")
        yield cursor
        if connection.vendor == "postgresql":
            cursor.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER USER")
            cursor.execute("ALTER TABLE audit_auditseal ENABLE TRIGGER USER")


def test_events_are_sealed_in_batches_into_one_chain() -> None:
    events(7)
    assert seal_batch(batch_size=3)[0] == 3
    assert seal_all(batch_size=3) == 4
    seals = list(AuditSeal.objects.order_by("sequence"))
    assert [seal.sequence for seal in seals] == list(range(1, 8))
    assert seals[0].prev_hash == chain.GENESIS
    assert all(later.prev_hash == earlier.hash for earlier, later in itertools.pairwise(seals))
    result = verify()
    assert (result.intact, result.checked, result.unsealed) == (True, 7, 0)


def test_the_canonical_encoding_does_not_depend_on_key_order() -> None:
    assert chain.canonical({"b": 1, "a": [2, {"d": 3, "c": 4}]}) == chain.canonical(
        {"a": [2, {"c": 4, "d": 3}], "b": 1}
    )
    assert chain.link(chain.GENESIS, 1, {"a": 1}) != chain.link(chain.GENESIS, 2, {"a": 1})


def test_an_edited_event_is_named_by_its_sequence_number() -> None:
    made = events(5)
    seal_all()
    with behind_the_triggers_back() as cursor:
        cursor.execute("UPDATE audit_auditevent SET reason = 'nothing happened' WHERE id = %s", (made[2].pk,))
    result = verify()
    assert not result.intact
    assert result.checked == 2
    assert result.problem == (
        f"sequence 3 (event {made[2].pk}): its hash does not match the event (one of them was changed)"
    )
    with pytest.raises(CommandError, match="sequence 3"):
        call_command("verify_audit")


@pytest.mark.parametrize(
    ("statement", "problem"),
    [
        ("DELETE FROM audit_auditseal WHERE sequence = 2", "sequence 2 is missing (the next seal is 3)"),
        ("UPDATE audit_auditseal SET prev_hash = '{fake}' WHERE sequence = 4", "sequence 4: its previous hash"),
        ("UPDATE audit_auditseal SET hash = '{fake}' WHERE sequence = 4", "sequence 4 (event"),
    ],
)
def test_removed_or_forged_seals_break_the_chain_where_they_are(statement: str, problem: str) -> None:
    events(5)
    seal_all()
    with behind_the_triggers_back() as cursor:
        cursor.execute(statement.format(fake="f" * 64))
    result = verify()
    assert result.problem is not None and result.problem.startswith(problem)


def test_verify_audit_reports_an_intact_chain_and_what_waits(capsys: Any) -> None:
    events(3)
    seal_all()
    events(2)
    call_command("verify_audit")
    assert "Audit chain intact: 3 sealed events; 2 not yet sealed." in capsys.readouterr().out
    call_command("seal_audit")
    assert "Sealed 2 events." in capsys.readouterr().out


def test_beat_seals_through_the_worker(task_runner: str) -> None:
    events(4)
    seal_audit_events.delay()
    assert wait_for(lambda: AuditSeal.objects.count() == 4), task_runner
    assert verify().intact


def test_a_straggler_far_behind_the_tail_is_sealed_by_a_full_sweep(monkeypatch: pytest.MonkeyPatch) -> None:
    from audit import sealing

    straggler, *_later = events(4)
    seal_all()
    with behind_the_triggers_back() as cursor:  # as if its transaction had committed late
        cursor.execute("DELETE FROM audit_auditseal WHERE event_id = %s", (straggler.pk,))
    monkeypatch.setattr(sealing, "LOOKBACK", 1)
    new = events(1)[0]
    assert seal_all() == 1  # the tail only: the new event
    assert AuditSeal.objects.filter(event=new).exists()
    assert not AuditSeal.objects.filter(event=straggler).exists()
    assert seal_all(full=True) == 1
    assert AuditSeal.objects.filter(event=straggler).exists()
