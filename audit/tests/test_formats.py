"""FORMAT 2 of the chain: PostgreSQL's own rendering and Python's agree byte for byte, and older
FORMAT 1 seals keep verifying beside new ones."""

import decimal
import json
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from hypothesis import given, settings
from hypothesis import strategies as st

from audit import chain, chain_sql, export, verification
from audit.models import AuditEvent, AuditSeal
from audit.sealing import RECORD_FIELDS, record, seal_all
from audit.services import insert
from audit.tests.test_chain import behind_the_triggers_back, events
from audit.verification import verify

AWKWARD_TEXT = 'tab\there, new\nline, cr\r, back\\slash, "quotes", \x01\x1f, ünï ✓ 𝄞'
AWKWARD_JSON: Any = {
    "b": 1,
    "aa": [0.1, 1e-07, 1e16, -0.0, 2.5, 10**20, True, None, "x"],
    "ü": {"": {}, "zz": [], "z": AWKWARD_TEXT},
    "a": -7,
}


def awkward_event() -> AuditEvent:
    return insert(
        AuditEvent(
            kind="test.awkward",
            actor_name=AWKWARD_TEXT,
            actor_ip="2001:db8::1",
            reason=AWKWARD_TEXT,
            before=AWKWARD_JSON,
            after=[AWKWARD_JSON, "plain"],
            data="just a string",
            application_id=2**40,
        )
    )


@pytest.mark.postgresql
@pytest.mark.django_db
def test_postgresql_prints_exactly_the_record_line_python_builds() -> None:
    made = [awkward_event(), *events(2)]
    lines = list(
        chain_sql.copy_lines(
            AuditEvent.objects.filter(pk__in=[e.pk for e in made]).order_by("id").annotate(**chain_sql.LINE_COLUMNS),
            *chain_sql.LINE_COLUMNS,
        )
    )
    stored = AuditEvent.objects.filter(pk__in=[e.pk for e in made]).order_by("id").values(*RECORD_FIELDS)
    assert [chain.record_line(values) + b"\n" for values in stored] == lines


@pytest.mark.django_db
def test_an_exported_row_rebuilds_the_record_line_it_was_sealed_with() -> None:
    """What the database (or Python, on SQLite) writes into an export reads back to the same bytes."""
    awkward_event()
    seal_all()
    text = b"".join(export.stream("jsonl", export.ExportFilters())).decode()
    row = json.loads(text, parse_float=decimal.Decimal)
    event = AuditEvent.objects.get(kind="test.awkward")
    assert chain.record_line(row) == chain.record_line(record(event))
    assert chain.seal_hash(2, row["_prev_hash"], row["_sequence"], row) == row["_hash"]


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_characters="\x00", exclude_categories=["Cs"])),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.text(st.characters(exclude_characters="\x00", exclude_categories=["Cs"])), children, max_size=4
        )
    ),
    max_leaves=12,
)


@pytest.mark.postgresql
@pytest.mark.django_db
@settings(max_examples=300, deadline=None)
@given(value=json_values)
def test_python_renders_json_exactly_as_postgresql_prints_jsonb(value: Any) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT %s::jsonb::text", [json.dumps(value)])
        printed = cursor.fetchone()[0]
    assert chain.render_json(value) == printed
    assert chain.render_json(json.loads(printed, parse_float=decimal.Decimal)) == printed


@pytest.mark.django_db
def test_portable_and_database_verification_name_the_same_sequence() -> None:
    made = events(6)
    seal_all()
    assert verify(portable=True).intact and verify().intact
    with behind_the_triggers_back() as cursor:
        cursor.execute("UPDATE audit_auditevent SET reason = 'changed' WHERE id = %s", (made[3].pk,))
    database, portable = verify(), verify(portable=True)
    assert database.problem == portable.problem
    assert database.problem is not None and database.problem.startswith("sequence 4 (event ")
    assert database.checked == portable.checked == 3


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_two_processes_verify_a_long_chain_and_find_a_break_in_either_half(monkeypatch: pytest.MonkeyPatch) -> None:
    made = events(40)
    seal_all()
    monkeypatch.setattr(verification, "PARALLEL_MIN", 10)
    assert verify().intact and verify().checked == 40
    with behind_the_triggers_back() as cursor:
        cursor.execute("UPDATE audit_auditevent SET reason = 'changed' WHERE id = %s", (made[30].pk,))
    assert verify().problem == verify(portable=True).problem
    assert str(verify().problem).startswith("sequence 31 (event ")
    with behind_the_triggers_back() as cursor:  # a forged link where the halves meet
        cursor.execute("UPDATE audit_auditseal SET prev_hash = %s WHERE sequence = 21", ["f" * 64])
    assert str(verify().problem).startswith("sequence 21: its previous hash")


@pytest.mark.django_db
def test_format_1_seals_still_verify_and_their_tampering_is_named() -> None:
    """Seals made before FORMAT 2 keep their encoding; a chain may hold both."""
    old = events(3)
    with behind_the_triggers_back():
        previous = chain.GENESIS
        for sequence, event in enumerate(old, start=1):
            event.refresh_from_db()
            digest = chain.link(previous, sequence, record(event))
            AuditSeal.objects.create(sequence=sequence, event=event, prev_hash=previous, hash=digest, format=1)
            previous = digest
    events(2)
    seal_all()
    assert list(AuditSeal.objects.order_by("sequence").values_list("format", flat=True)) == [1, 1, 1, 2, 2]
    assert verify().intact and verify(portable=True).intact
    with behind_the_triggers_back() as cursor:
        cursor.execute("UPDATE audit_auditevent SET reason = 'changed' WHERE id = %s", (old[1].pk,))
    assert str(verify().problem).startswith("sequence 2 (event ")
    with pytest.raises(CommandError, match="sequence 2"):
        call_command("verify_audit", "--portable")
