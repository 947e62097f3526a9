"""Archiving whole months of the audit ledger into verified files, then removing them from the database.

Why not PostgreSQL partitions by month: a partitioned table's unique constraints must include the
partition key, and the ledger needs uniqueness without it (each seal points at exactly one event,
and a decision id or a repeated request id must stay unique across months). So the equivalent is
done by hand: a month is exported with ``write_export``, the file is verified offline, and only
then are its events and seals deleted, in one transaction under maintenance mode, beside an
insert-only ``AuditArchive`` row that remembers where the chain now starts.

The chain is archived as a contiguous prefix only, so what stays in the database remains a chain
that verifies from the last archived hash (``chain_start``), and every archive file verifies on
its own with ``python -m audit.verify FILE --manifest FILE.manifest.json --complete``.
"""

import dataclasses
import datetime
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone

from audit import chain
from audit.export import ExportFilters, manifest_path, write_export
from audit.models import AuditArchive, AuditEvent, AuditSeal, Checkpoint
from audit.sealing import seal_all
from audit.services import record_event, resolve_actor
from audit.verify import Inconsistent, verify_file

FORMAT = "jsonl"
# Sequences deleted per pair of DELETE statements: large enough that a month of routing decisions
# takes few round trips, small enough that no statement holds millions of row locks at once.
DELETE_BATCH = 10_000


class ArchiveRefused(ValueError):
    """The month cannot be archived (not over, already archived, nothing to archive, chain broken)."""


class ArchiveNotVerified(ArchiveRefused):
    """The written file did not verify, so nothing was deleted; the file is left for inspection."""


@dataclasses.dataclass(frozen=True)
class Plan:
    """What archiving a month would move out of the database: sequences first..last, inclusive."""

    month: datetime.date
    first_sequence: int
    last_sequence: int
    previous_hash: str  # the hash the first archived row must follow
    last_hash: str

    @property
    def rows(self) -> int:
        return self.last_sequence - self.first_sequence + 1

    @property
    def file_name(self) -> str:
        return file_name(self.month)


@dataclasses.dataclass(frozen=True)
class _Start:
    """Where the chain in the database begins: after the last archived sequence."""

    sequence: int
    hash: str
    month: datetime.date | None  # the newest archived month


def file_name(month: datetime.date) -> str:
    return f"audit-archive-{month:%Y-%m}.{FORMAT}"


def month_of(moment: datetime.datetime) -> datetime.date:
    """The month a moment falls in, in the configured time zone (months end at local midnight)."""
    return timezone.localtime(moment).date().replace(day=1)


def add_months(month: datetime.date, count: int) -> datetime.date:
    index = month.year * 12 + month.month - 1 + count
    return datetime.date(index // 12, index % 12 + 1, 1)


def month_start(month: datetime.date) -> datetime.datetime:
    return timezone.make_aware(datetime.datetime(month.year, month.month, 1))


def chain_start() -> tuple[int, str]:
    """The last archived sequence and its hash: the remaining chain's first seal must follow them.

    ``(0, GENESIS)`` while nothing is archived, which is where an unarchived chain starts anyway.
    """
    start = _start()
    return start.sequence, start.hash


def _start() -> _Start:
    newest = AuditArchive.objects.order_by("-last_sequence").first()
    if newest is None:
        return _Start(0, chain.GENESIS, None)
    return _Start(newest.last_sequence, newest.last_hash, newest.month)


def plan_month(month: datetime.date, *, now: datetime.datetime | None = None) -> Plan:
    """What ``archive_month`` would archive now, from the chain as sealed so far; raises ``ArchiveRefused``."""
    return _plan(month.replace(day=1), _start(), now or timezone.now())


def _plan(month: datetime.date, start: _Start, now: datetime.datetime) -> Plan:
    end = month_start(add_months(month, 1))
    if end > now:
        raise ArchiveRefused(f"{month:%Y-%m} is not over yet; it can be archived from {end:%Y-%m-%d %H:%M %Z}.")
    if start.month is not None and start.month >= month:
        if start.month == month:
            raise ArchiveRefused(f"{month:%Y-%m} is already archived.")
        raise ArchiveRefused(
            f"{month:%Y-%m} lies before the newest archive ({start.month:%Y-%m}), which holds what was left of it."
        )
    first = (
        AuditSeal.objects.filter(sequence__gt=start.sequence)
        .order_by("sequence")
        .values_list("sequence", "prev_hash", "event__occurred_at")
        .first()
    )
    if first is None:
        raise ArchiveRefused(f"Nothing to archive for {month:%Y-%m}: no sealed events after sequence {start.sequence}.")
    sequence, prev_hash, occurred_at = first
    if sequence != start.sequence + 1 or prev_hash != start.hash:
        raise ArchiveRefused(
            f"The chain does not continue from sequence {start.sequence} (the next seal is {sequence}); "
            "run verify_audit before archiving anything."
        )
    if occurred_at < month_start(month):
        raise ArchiveRefused(
            f"Events of {month_of(occurred_at):%Y-%m} are not archived yet (from sequence {sequence}); "
            "archive that month first, or use --expired, which goes month by month."
        )
    if occurred_at >= end:
        raise ArchiveRefused(
            f"Nothing to archive for {month:%Y-%m}: the next sealed event (sequence {sequence}) occurred "
            f"{timezone.localtime(occurred_at):%Y-%m-%d}, after the month; any event of the month sealed "
            "after it goes with a later month's archive."
        )
    # The prefix ends before the first seal whose event happened after the month.
    after = (
        AuditSeal.objects.filter(sequence__gt=start.sequence, event__occurred_at__gte=end)
        .order_by("sequence")
        .values_list("sequence", flat=True)
        .first()
    )
    if after is None:
        after = (AuditSeal.objects.aggregate(highest=Max("sequence"))["highest"] or 0) + 1
    last_hash = AuditSeal.objects.values_list("hash", flat=True).get(sequence=after - 1)
    return Plan(month, sequence, after - 1, start.hash, last_hash)


def expired_before(now: datetime.datetime | None = None) -> datetime.date | None:
    """The first month retention keeps (every month before it has expired); None keeps everything."""
    months = settings.AUDIT_RETENTION_MONTHS
    if months is None:
        return None
    return add_months(month_of(now or timezone.now()), -months)


def plan_expired(now: datetime.datetime | None = None) -> list[Plan]:
    """The archives retention calls for, month by month, from the chain as sealed so far."""
    now = now or timezone.now()
    keep_from = expired_before(now)
    if keep_from is None:
        return []
    plans: list[Plan] = []
    start = _start()
    while True:
        occurred_at = (
            AuditSeal.objects.filter(sequence=start.sequence + 1).values_list("event__occurred_at", flat=True).first()
        )
        if occurred_at is None or month_of(occurred_at) >= keep_from:
            return plans
        plan = _plan(month_of(occurred_at), start, now)
        plans.append(plan)
        start = _Start(plan.last_sequence, plan.last_hash, plan.month)


def archive_expired(now: datetime.datetime | None = None, *, actor: Any = None) -> list[AuditArchive]:
    """Archive every month older than ``AUDIT_RETENTION_MONTHS`` whole months, oldest first, one
    file each. Does nothing while the setting is unset (the default keeps everything)."""
    if settings.AUDIT_RETENTION_MONTHS is None:
        return []
    archives: list[AuditArchive] = []
    seal_all()
    # Planned again after each archive: sealing in between may have moved where the next one starts.
    while plans := plan_expired(now):
        archives.append(archive_month(plans[0].month, actor=actor))
    return archives


def archive_month(month: datetime.date, *, actor: Any = None) -> AuditArchive:
    """Move one month out of the database into ``AUDIT_ARCHIVE_DIR/audit-archive-YYYY-MM.jsonl``.

    Everything is sealed first. The archive is the longest run of sealed sequences, following the
    previous archive, whose events all occurred before the month ended: the chain can only leave
    the database as a prefix, or what remains would no longer verify. So an event of the month
    that was sealed after an event of a later month (a late commit) stays, and goes with the next
    month's archive. The file is verified (hashes, links, manifest, and that it follows the previous
    archive) before anything is deleted; if it does not verify, nothing is, and ``ArchiveNotVerified``
    says where the file was left. A month not yet over, one already archived, or one with nothing
    left to archive is refused with ``ArchiveRefused``.
    """
    month = month.replace(day=1)
    seal_all()
    plan = _plan(month, _start(), timezone.now())
    directory = Path(settings.AUDIT_ARCHIVE_DIR)
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / plan.file_name
    if final.exists() or manifest_path(final).exists():
        raise ArchiveRefused(
            f"{final} already exists, but no archive names it: it may be the only copy of archived events. "
            "Move it away, then archive again."
        )
    # Written under a name of its own (two archivers never share a file) and renamed only once
    # verified and committed to, so a file with an archive's name is always a verified one.
    descriptor, name = tempfile.mkstemp(
        dir=directory, prefix=f"audit-archive-{month:%Y-%m}.", suffix=f".partial.{FORMAT}"
    )
    os.close(descriptor)
    partial = Path(name)
    _sign_end(plan)
    manifest = write_export(
        partial,
        FORMAT,
        ExportFilters(sequence_from=plan.first_sequence, sequence_to=plan.last_sequence),
        actor=actor,
    )
    _check(partial, manifest, plan)
    for written in (partial, manifest_path(partial)):
        _fsync(written)
    # The export's own audit event is sealed after the archive's last sequence, so a seal remains in
    # the database to carry the chain on from the archive.
    seal_all()
    with transaction.atomic():
        if connection.vendor == "postgresql":
            # One archiver at a time (a second waits, then finds the chain moved on), released at commit.
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(hashtext('switchboard.audit_archive'))")
        if chain_start() != (plan.first_sequence - 1, plan.previous_hash):
            raise ArchiveRefused("Another archive was made meanwhile; nothing was deleted. Archive again.")
        following = (
            AuditSeal.objects.filter(sequence__gt=plan.last_sequence)
            .order_by("sequence")
            .values_list("sequence", "prev_hash")
            .first()
        )
        if following != (plan.last_sequence + 1, plan.last_hash):
            raise ArchiveRefused(
                f"The seal after sequence {plan.last_sequence} does not link to it ({following!r}); nothing was "
                "deleted. Run verify_audit."
            )
        with _maintenance():
            events, seals = _delete(plan.first_sequence, plan.last_sequence)
        if events != plan.rows or seals != plan.rows:
            raise ArchiveRefused(
                f"Expected to remove {plan.rows} events and seals, found {events} and {seals}; nothing was deleted."
            )
        archive = AuditArchive.objects.create(
            month=month,
            first_sequence=plan.first_sequence,
            last_sequence=plan.last_sequence,
            last_hash=plan.last_hash,
            rows=plan.rows,
            file_name=final.name,
            sha256=manifest["sha256"],
            manifest=manifest,
            created_by_name=resolve_actor(actor)[1],
        )
        record_event(
            "audit.archived",
            obj=archive,
            reason=f"{month:%Y-%m}: sequences {plan.first_sequence}–{plan.last_sequence} moved to {final.name}",
            after={
                "month": f"{month:%Y-%m}",
                "first_sequence": plan.first_sequence,
                "last_sequence": plan.last_sequence,
                "rows": plan.rows,
                "last_hash": plan.last_hash,
                "file_name": final.name,
                "sha256": manifest["sha256"],
            },
            actor=actor,
        )
        # Last, so a failure anywhere above leaves the partial file and deletes nothing.
        os.replace(manifest_path(partial), manifest_path(final))
        os.replace(partial, final)
        _fsync(directory)
    return archive


def _sign_end(plan: Plan) -> None:
    """A signed checkpoint exactly at the archive's last sequence, so its manifest carries a signature
    over the very row the remaining chain continues from."""
    from audit.checkpoints import sign

    if not Checkpoint.objects.filter(sequence=plan.last_sequence).exists():
        sign(plan.last_sequence, plan.last_hash)


def _check(path: Path, manifest: dict[str, Any], plan: Plan) -> None:
    """The file verifies on its own and holds exactly the planned range, following the previous archive."""

    def refuse(problem: str) -> ArchiveNotVerified:
        return ArchiveNotVerified(
            f"The archive of {plan.month:%Y-%m} does not verify: {problem}. Nothing was deleted; "
            f"the file is left at {path}."
        )

    try:
        verify_file(path, manifest_path(path), complete=True)
    except Inconsistent as problem:
        raise refuse(str(problem)) from None
    expected = {
        "rows": plan.rows,
        "first_sequence": plan.first_sequence,
        "last_sequence": plan.last_sequence,
        "last_hash": plan.last_hash,
    }
    for key, value in expected.items():
        if manifest.get(key) != value:
            raise refuse(f"its manifest has {key} {manifest.get(key)!r}, expected {value!r}")
    with path.open(encoding="utf-8") as handle:
        first_prev_hash = json.loads(handle.readline()).get("_prev_hash")
    if first_prev_hash != plan.previous_hash:
        raise refuse(f"sequence {plan.first_sequence} does not follow the previous archive's last hash")


def _delete(first: int, last: int) -> tuple[int, int]:
    """Delete the seals first..last and their events, a batch of sequences at a time.

    Events go first, found through their seals; the seals' foreign key is checked at commit
    (Django makes it deferrable), by when both are gone.
    """
    events_table = connection.ops.quote_name(AuditEvent._meta.db_table)
    seals_table = connection.ops.quote_name(AuditSeal._meta.db_table)
    events = seals = 0
    with connection.cursor() as cursor:
        for low in range(first, last + 1, DELETE_BATCH):
            high = min(low + DELETE_BATCH - 1, last)
            cursor.execute(
                f"DELETE FROM {events_table} WHERE id IN "  # noqa: S608 - table names from the models
                f"(SELECT event_id FROM {seals_table} WHERE sequence BETWEEN %s AND %s)",
                [low, high],
            )
            events += cursor.rowcount
            cursor.execute(f"DELETE FROM {seals_table} WHERE sequence BETWEEN %s AND %s", [low, high])  # noqa: S608
            seals += cursor.rowcount
    return events, seals


@contextmanager
def _maintenance() -> Iterator[None]:
    """Let this transaction delete from the append-only tables, then put the switch back as it was.

    On an error the switch is not put back by hand: rolling back the savepoint undoes it.
    """
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT current_setting('switchboard.audit_maintenance', true)")
            previous = cursor.fetchone()[0] or ""
            cursor.execute("SELECT set_config('switchboard.audit_maintenance', 'on', true)")
            yield
            cursor.execute("SELECT set_config('switchboard.audit_maintenance', %s, true)", [previous])
        else:
            cursor.execute("SELECT allowed FROM audit_maintenance")
            previous = cursor.fetchone()[0]
            cursor.execute("UPDATE audit_maintenance SET allowed = 1")
            yield
            cursor.execute("UPDATE audit_maintenance SET allowed = %s", [previous])


def _fsync(path: Path) -> None:
    """The archive is the only copy once the rows are deleted: make sure it is on disk first."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
