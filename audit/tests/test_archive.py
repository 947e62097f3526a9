"""Archiving a month: a verified file first, then the month leaves the database as a prefix of the chain."""

import datetime
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.utils import timezone

from audit import chain
from audit.archive import ArchiveNotVerified, ArchiveRefused, archive_expired, archive_month, chain_start
from audit.export import manifest_path
from audit.models import AuditArchive, AuditEvent, AuditSeal
from audit.sealing import seal_all
from audit.services import record_event
from audit.tasks import archive_expired_months
from audit.tests.test_append_only import maintenance_off, refused
from audit.verification import verify
from audit.verify import verify_file

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]

SEPTEMBER = datetime.date(2026, 9, 1)
OCTOBER = datetime.date(2026, 10, 1)


def at(year: int, month: int, day: int, hour: int = 12) -> datetime.datetime:
    return timezone.make_aware(datetime.datetime(year, month, day, hour))


def events_at(moment: datetime.datetime, count: int, kind: str = "test.happened") -> list[AuditEvent]:
    with time_machine.travel(moment, tick=False):
        return [record_event(kind, reason=f"{kind} {number}") for number in range(count)]


@pytest.fixture
def archive_dir(settings: Any, tmp_path: Path) -> Path:
    path = tmp_path / "archive"
    settings.AUDIT_ARCHIVE_DIR = path
    return path


@pytest.fixture
def november() -> Iterator[None]:
    """Archiving runs in the middle of November 2026: September and October are over."""
    with time_machine.travel(at(2026, 11, 15), tick=False):
        yield


@pytest.fixture
def two_months() -> tuple[list[AuditEvent], list[AuditEvent]]:
    september = events_at(at(2026, 9, 3), 3)
    october = events_at(at(2026, 10, 5), 2)
    seal_all()
    return september, october


def rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def sealed_events() -> list[int]:
    return list(AuditSeal.objects.order_by("sequence").values_list("event_id", flat=True))


def test_archive_writes_a_file_that_verifies_and_holds_exactly_the_month(
    archive_dir: Path, two_months: tuple[list[AuditEvent], list[AuditEvent]], november: None
) -> None:
    september, _ = two_months
    archive = archive_month(SEPTEMBER)
    path = archive_dir / "audit-archive-2026-09.jsonl"
    notes = verify_file(path, manifest_path(path), complete=True)
    assert "OK: 3 rows, sequences 1..3" in notes
    # A checkpoint signed exactly at the archive's end, so its last row is vouched for offline.
    assert "checkpoint: sequence 3 matches the export" in notes
    assert "checkpoint signature: valid" in notes
    assert [row["id"] for row in rows(path)] == [event.pk for event in september]
    assert [row["_sequence"] for row in rows(path)] == [1, 2, 3]
    assert rows(path)[0]["_prev_hash"] == chain.GENESIS
    assert (archive.month, archive.first_sequence, archive.last_sequence, archive.rows) == (SEPTEMBER, 1, 3, 3)
    assert archive.file_name == path.name
    assert archive.last_hash == rows(path)[-1]["_hash"] == archive.manifest["last_hash"]
    assert archive.sha256 == json.loads(manifest_path(path).read_text())["sha256"]
    assert archive.created_by_name == "system"
    assert sorted(p.name for p in archive_dir.iterdir()) == [path.name, manifest_path(path).name]


def test_archived_month_leaves_the_database_and_the_rest_links_to_the_archive(
    archive_dir: Path, two_months: tuple[list[AuditEvent], list[AuditEvent]], november: None
) -> None:
    september, october = two_months
    archive = archive_month(SEPTEMBER)
    assert not AuditEvent.objects.filter(pk__in=[event.pk for event in september]).exists()
    assert not AuditSeal.objects.filter(sequence__lte=3).exists()
    assert sealed_events()[:2] == [event.pk for event in october]
    first_remaining = AuditSeal.objects.order_by("sequence").first()
    assert first_remaining is not None
    assert (first_remaining.sequence, first_remaining.prev_hash) == (archive.last_sequence + 1, archive.last_hash)
    assert chain_start() == (3, archive.last_hash)
    event = AuditEvent.objects.get(kind="audit.archived")
    assert (event.object_type, event.object_id) == ("audit.auditarchive", str(archive.pk))
    assert event.after == {
        "month": "2026-09",
        "first_sequence": 1,
        "last_sequence": 3,
        "rows": 3,
        "last_hash": archive.last_hash,
        "file_name": "audit-archive-2026-09.jsonl",
        "sha256": archive.sha256,
    }


def test_next_archive_follows_the_previous_one(
    archive_dir: Path, two_months: tuple[list[AuditEvent], list[AuditEvent]]
) -> None:
    with time_machine.travel(at(2026, 11, 15), tick=False):
        first = archive_month(SEPTEMBER)
    with time_machine.travel(at(2026, 12, 2), tick=False):
        second = archive_month(OCTOBER)
    path = archive_dir / second.file_name
    assert verify_file(path, manifest_path(path), complete=True)[-1] == "OK: 2 rows, sequences 4..5"
    assert rows(path)[0]["_prev_hash"] == first.last_hash
    assert [row["id"] for row in rows(path)] == [event.pk for event in two_months[1]]
    first_remaining = AuditSeal.objects.order_by("sequence").first()
    assert first_remaining is not None
    assert (first_remaining.sequence, first_remaining.prev_hash) == (6, second.last_hash)
    assert chain_start() == (5, second.last_hash)


def test_a_straggler_of_the_month_sealed_after_a_later_event_stays(archive_dir: Path) -> None:
    on_time = events_at(at(2026, 9, 3), 2)
    seal_all()
    later = events_at(at(2026, 10, 5), 1)
    seal_all()
    # Written in September, but committed (and so sealed) after an October event.
    straggler = events_at(at(2026, 9, 30, 23), 1)
    with time_machine.travel(at(2026, 11, 15), tick=False):
        archive = archive_month(SEPTEMBER)
    assert (archive.first_sequence, archive.last_sequence) == (1, 2)
    assert [row["id"] for row in rows(archive_dir / archive.file_name)] == [event.pk for event in on_time]
    assert sealed_events()[:2] == [later[0].pk, straggler[0].pk]
    with time_machine.travel(at(2026, 12, 2), tick=False):
        october = archive_month(OCTOBER)
    assert [row["id"] for row in rows(archive_dir / october.file_name)] == [later[0].pk, straggler[0].pk]


def test_months_end_at_midnight_in_the_configured_time_zone(archive_dir: Path) -> None:
    with override_settings(TIME_ZONE="Europe/Berlin"):
        september = events_at(at(2026, 9, 30, 23), 1)  # 21:00 UTC
        october = events_at(at(2026, 10, 1, 0), 1)  # 22:00 UTC on 30 September, but October in Berlin
        seal_all()
        with time_machine.travel(at(2026, 11, 15), tick=False):
            archive = archive_month(SEPTEMBER)
    assert [row["id"] for row in rows(archive_dir / archive.file_name)] == [september[0].pk]
    assert sealed_events()[0] == october[0].pk


def test_refuses_a_month_that_is_not_over(archive_dir: Path) -> None:
    events_at(at(2026, 11, 2), 2)
    with time_machine.travel(at(2026, 11, 30, 23), tick=False), pytest.raises(ArchiveRefused, match="not over yet"):
        archive_month(datetime.date(2026, 11, 1))
    assert AuditSeal.objects.count() == 2  # sealed, nothing removed
    assert not AuditArchive.objects.exists()


def test_refuses_a_month_already_archived_or_before_the_newest_archive(
    archive_dir: Path, two_months: tuple[list[AuditEvent], list[AuditEvent]]
) -> None:
    with time_machine.travel(at(2026, 12, 2), tick=False):
        archive_month(SEPTEMBER)
        archive_month(OCTOBER)
        with pytest.raises(ArchiveRefused, match="2026-10 is already archived"):
            archive_month(OCTOBER)
        with pytest.raises(ArchiveRefused, match="before the newest archive"):
            archive_month(SEPTEMBER)
    assert AuditArchive.objects.count() == 2


def test_refuses_when_there_is_nothing_to_archive(archive_dir: Path) -> None:
    with time_machine.travel(at(2026, 11, 15), tick=False):
        with pytest.raises(ArchiveRefused, match="Nothing to archive"):
            archive_month(SEPTEMBER)  # an empty ledger
        events_at(at(2026, 10, 5), 2)
        with pytest.raises(ArchiveRefused, match="Nothing to archive for 2026-09"):
            archive_month(SEPTEMBER)  # a month without events
    assert not AuditArchive.objects.exists()
    assert not archive_dir.exists()


def test_refuses_to_skip_a_month_that_is_not_archived(
    archive_dir: Path, two_months: tuple[list[AuditEvent], list[AuditEvent]], november: None
) -> None:
    with pytest.raises(ArchiveRefused, match="Events of 2026-09 are not archived yet"):
        archive_month(OCTOBER)
    assert AuditSeal.objects.count() == 5


def test_a_file_that_does_not_verify_deletes_nothing(
    archive_dir: Path, two_months: tuple[list[AuditEvent], list[AuditEvent]], november: None
) -> None:
    """The ledger was tampered with after sealing (the test database is in maintenance mode, so it
    can be): the export carries the changed record, the file does not verify, nothing is removed."""
    september, _ = two_months
    AuditEvent.objects.filter(pk=september[1].pk).update(reason="rewritten")
    events, seals = AuditEvent.objects.count(), AuditSeal.objects.count()
    with pytest.raises(ArchiveNotVerified, match=r"sequence 2 .*the row was changed.*Nothing was deleted"):
        archive_month(SEPTEMBER)
    assert AuditSeal.objects.filter(sequence__lte=3).count() == 3
    assert AuditEvent.objects.filter(pk__in=[event.pk for event in september]).count() == 3
    assert AuditSeal.objects.count() >= seals and AuditEvent.objects.count() >= events
    assert not AuditArchive.objects.exists()
    assert not AuditEvent.objects.filter(kind="audit.archived").exists()
    # No file under the archive's name; the rejected one is left for inspection.
    left = sorted(p.name for p in archive_dir.iterdir())
    assert len(left) == 2
    assert left[0].startswith("audit-archive-2026-09.") and left[0].endswith(".partial.jsonl")
    assert left[1] == left[0] + ".manifest.json"


def test_refuses_to_overwrite_a_file_no_archive_names(
    archive_dir: Path, two_months: tuple[list[AuditEvent], list[AuditEvent]], november: None
) -> None:
    archive_dir.mkdir()
    (archive_dir / "audit-archive-2026-09.jsonl").write_text("the only copy\n")
    with pytest.raises(ArchiveRefused, match="already exists"):
        archive_month(SEPTEMBER)
    assert (archive_dir / "audit-archive-2026-09.jsonl").read_text() == "the only copy\n"
    assert AuditSeal.objects.filter(sequence__lte=3).count() == 3


def test_archive_rows_can_be_neither_updated_nor_deleted(
    archive_dir: Path, two_months: tuple[list[AuditEvent], list[AuditEvent]], november: None
) -> None:
    archive = archive_month(SEPTEMBER)
    with maintenance_off():
        assert refused("UPDATE audit_auditarchive SET last_hash = 'x' WHERE id = %s", (archive.pk,))
        assert refused("DELETE FROM audit_auditarchive WHERE id = %s", (archive.pk,))
    assert AuditArchive.objects.get().last_hash == archive.last_hash


@pytest.mark.postgresql
def test_postgresql_refuses_truncating_archives(
    archive_dir: Path, two_months: tuple[list[AuditEvent], list[AuditEvent]], november: None
) -> None:
    archive_month(SEPTEMBER)
    with maintenance_off():
        assert refused("TRUNCATE audit_auditarchive")
    assert AuditArchive.objects.exists()


def test_archiving_puts_the_maintenance_switch_back(
    archive_dir: Path, two_months: tuple[list[AuditEvent], list[AuditEvent]], november: None
) -> None:
    """Maintenance is on only while the month is deleted; afterwards the tables refuse changes again."""
    with maintenance_off():
        archive_month(SEPTEMBER)
        assert refused("DELETE FROM audit_auditevent")
        assert refused("DELETE FROM audit_auditseal")


def test_dry_run_changes_nothing(
    archive_dir: Path, two_months: tuple[list[AuditEvent], list[AuditEvent]], november: None, settings: Any
) -> None:
    events_at(at(2026, 9, 29), 1)  # not sealed yet: a dry run does not seal
    settings.AUDIT_RETENTION_MONTHS = 1
    before = (AuditEvent.objects.count(), AuditSeal.objects.count())
    out = io.StringIO()
    call_command("archive_audit", "--month", "2026-09", "--dry-run", stdout=out)
    assert "Would archive 2026-09: sequences 1–3 (3 events) → audit-archive-2026-09.jsonl" in out.getvalue()
    assert "1 events are not sealed yet" in out.getvalue()
    out = io.StringIO()
    call_command("archive_audit", "--expired", "--dry-run", stdout=out)
    assert "Would archive 2026-09: sequences 1–3" in out.getvalue()
    assert "2026-10" not in out.getvalue()
    assert (AuditEvent.objects.count(), AuditSeal.objects.count()) == before
    assert not AuditArchive.objects.exists()
    assert not archive_dir.exists()


def test_command_archives_a_month(
    archive_dir: Path, two_months: tuple[list[AuditEvent], list[AuditEvent]], november: None
) -> None:
    out = io.StringIO()
    call_command("archive_audit", "--month", "2026-09", stdout=out)
    assert "Archived 2026-09: sequences 1–3 (3 events)" in out.getvalue()
    assert AuditArchive.objects.get().month == SEPTEMBER
    with pytest.raises(CommandError, match="already archived"):
        call_command("archive_audit", "--month", "2026-09")


@pytest.mark.parametrize("text", ["2026-13", "2026-9", "September", "2026-00"])
def test_a_bad_month_names_the_fix(text: str) -> None:
    with pytest.raises(CommandError, match="give it as YYYY-MM"):
        call_command("archive_audit", "--month", text)


def test_expired_without_retention_says_how_to_set_it(settings: Any) -> None:
    settings.AUDIT_RETENTION_MONTHS = None
    with pytest.raises(CommandError, match="AUDIT_RETENTION_MONTHS is not set"):
        call_command("archive_audit", "--expired")


def test_without_retention_nothing_is_archived(
    archive_dir: Path, two_months: tuple[list[AuditEvent], list[AuditEvent]], settings: Any
) -> None:
    settings.AUDIT_RETENTION_MONTHS = None
    with time_machine.travel(at(2030, 1, 1), tick=False):
        assert archive_expired() == []
        assert archive_expired_months() == []
    assert AuditSeal.objects.count() == 5
    assert not AuditArchive.objects.exists()


def test_retention_of_one_month_archives_the_months_before_last_month(archive_dir: Path, settings: Any) -> None:
    settings.AUDIT_RETENTION_MONTHS = 1
    august = events_at(at(2026, 8, 20), 2)
    september = events_at(at(2026, 9, 3), 3)
    kept = events_at(at(2026, 10, 5), 2) + events_at(at(2026, 11, 2), 1)
    with time_machine.travel(at(2026, 11, 15), tick=False):
        assert archive_expired_months() == ["2026-08", "2026-09"]  # sealing first is part of it
        assert archive_expired() == []  # nothing else has expired
    august_archive, september_archive = AuditArchive.objects.all()
    assert [row["id"] for row in rows(archive_dir / august_archive.file_name)] == [event.pk for event in august]
    assert [row["id"] for row in rows(archive_dir / september_archive.file_name)] == [event.pk for event in september]
    assert sealed_events()[:3] == [event.pk for event in kept]
    assert chain_start() == (5, september_archive.last_hash)


def test_retention_must_be_a_positive_whole_number_of_months() -> None:
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    for value, message in (("0", "must be at least 1"), ("six", "is not an integer")):
        result = subprocess.run(
            [sys.executable, "manage.py", "check"],
            cwd=ROOT,
            env={**env, "SECRET_KEY": "test-only", "AUDIT_RETENTION_MONTHS": value},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode != 0
        assert message in result.stderr


def test_verify_audit_passes_after_archiving(
    archive_dir: Path, two_months: tuple[list[AuditEvent], list[AuditEvent]], november: None
) -> None:
    archive_month(SEPTEMBER)
    seal_all()
    out = io.StringIO()
    call_command("verify_audit", stdout=out)
    assert "Audit chain intact" in out.getvalue()


def test_sealing_goes_on_from_the_archive_when_no_seal_is_left() -> None:
    """If a whole chain was archived, new events continue it rather than starting a second one."""
    AuditArchive.objects.create(
        month=datetime.date(2026, 1, 1),
        first_sequence=1,
        last_sequence=10,
        last_hash="a" * 64,
        rows=10,
        file_name="audit-archive-2026-01.jsonl",
        sha256="b" * 64,
        manifest={},
        created_by_name="test",
    )
    record_event("test.after.archive")
    seal_all()
    seal = AuditSeal.objects.get()
    assert (seal.sequence, seal.prev_hash) == (11, "a" * 64)
    result = verify()
    assert (result.intact, result.checked) == (True, 1)
