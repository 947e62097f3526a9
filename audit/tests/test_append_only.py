"""The database itself refuses to change or remove audit events and seals."""

import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from django.db import DatabaseError, connection, transaction

from audit.checkpoints import make_checkpoint
from audit.models import AuditEvent, AuditSeal
from audit.sealing import seal_all
from audit.services import record_event

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def maintenance_off() -> Iterator[None]:
    """Production behaviour inside this block (the test database otherwise allows its flushes)."""
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL switchboard.audit_maintenance = 'off'")
        else:
            cursor.execute("UPDATE audit_maintenance SET allowed = 0")
        yield
        transaction.set_rollback(True)


def refused(statement: str, params: tuple[Any, ...] = ()) -> bool:
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(statement, params)
    except DatabaseError as error:
        return "append-only" in str(error)
    return False


def test_events_and_seals_can_be_neither_updated_nor_deleted() -> None:
    event = record_event("test.happened", reason="original")
    seal_all()
    make_checkpoint()
    with maintenance_off():
        assert refused("UPDATE audit_checkpoint SET hash = 'x'")
        assert refused("DELETE FROM audit_checkpoint")
        assert refused("UPDATE audit_auditevent SET reason = 'rewritten' WHERE id = %s", (event.pk,))
        assert refused("DELETE FROM audit_auditevent WHERE id = %s", (event.pk,))
        assert refused("UPDATE audit_auditseal SET hash = 'x'")
        assert refused("DELETE FROM audit_auditseal")
    assert AuditEvent.objects.get(pk=event.pk).reason == "original"
    assert AuditSeal.objects.count() == 1


@pytest.mark.postgresql
def test_postgresql_refuses_truncate() -> None:
    record_event("test.happened")
    with maintenance_off():
        assert refused("TRUNCATE audit_auditseal, audit_auditevent")
    assert AuditEvent.objects.exists()


def test_sqlite_triggers_refuse_update_and_delete(tmp_path: Path) -> None:
    """Checked on a SQLite file of its own, so the SQLite triggers are proven whatever database
    the suite runs on."""
    database = tmp_path / "audit.sqlite3"
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{database}", "SECRET_KEY": "test-only"}
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "audit", "--no-input", "-v0"], cwd=ROOT, env=env, check=True
    )
    db = sqlite3.connect(database)
    db.execute(
        "INSERT INTO audit_auditevent (occurred_at, kind, actor_name, actor_ip, user_agent, request_id, object_type,"
        " object_id, object_repr, reason, application_name, team_name, policy_slug, rule, model_version_name,"
        " classification, region, task_type, schema_version) VALUES ('2026-11-24 10:00:00', 'test', 'system', NULL,"
        " '', '', '', '', '', '', '', '', '', '', '', '', '', '', 1)"
    )
    db.commit()
    for statement in ("UPDATE audit_auditevent SET reason = 'rewritten'", "DELETE FROM audit_auditevent"):
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            db.execute(statement)
    assert db.execute("SELECT reason FROM audit_auditevent").fetchall() == [("",)]
