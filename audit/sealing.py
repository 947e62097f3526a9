"""Sealing events into the hash chain, in batches off the hot path.

Writers only insert events; a sealer (Celery beat every few seconds, or ``manage.py seal_audit``)
gives the unsealed ones the next sequence numbers and their link hashes. Sealers run one at a
time, so the chain has one order. New seals are FORMAT 2 (``audit.chain``): on PostgreSQL the
database prints each event's record line through COPY and Python only hashes it.
"""

import hashlib
from collections.abc import Iterator
from typing import Any

from django.db import connection, transaction
from django.db.models import Max, QuerySet
from django.utils import timezone

from audit import chain, chain_sql
from audit.models import AuditEvent, AuditSeal

SEAL_BATCH = 5_000
# Events are sealed in id order, but a transaction can commit after later ids were sealed. The
# sealer looks this many ids behind the last sealed event for such stragglers, so a batch reads
# the table's tail, not all of it; a full sweep (seal_audit --full) finds anything older.
LOOKBACK = 100_000

RECORD_FIELDS = [field.attname for field in AuditEvent._meta.concrete_fields]


def record(event: AuditEvent) -> dict[str, Any]:
    """What a seal covers: every stored field of the event."""
    return {name: getattr(event, name) for name in RECORD_FIELDS}


def digests(events: QuerySet[AuditEvent]) -> Iterator[tuple[int, str]]:
    """(id, record digest) of each event, in the queryset's order."""
    if connection.vendor == "postgresql":
        sha256 = hashlib.sha256
        for line in chain_sql.copy_lines(events.annotate(**chain_sql.LINE_COLUMNS), "id", *chain_sql.LINE_COLUMNS):
            event_id, text = line.split(b"\t", 1)
            yield int(event_id), sha256(text[:-1]).hexdigest()  # the line without its "\n"
        return
    for row in events.values_list(*RECORD_FIELDS):
        yield row[0], chain.record_digest(dict(zip(RECORD_FIELDS, row, strict=True)))


def _insert(seals: list[tuple[int, int, str, str]]) -> None:
    """Store (sequence, event id, previous hash, hash) rows; COPY on PostgreSQL, a bulk INSERT elsewhere."""
    now = timezone.now()
    if connection.vendor != "postgresql":
        AuditSeal.objects.bulk_create(
            AuditSeal(
                sequence=sequence,
                event_id=event_id,
                prev_hash=previous,
                hash=digest,
                format=chain.FORMAT,
                sealed_at=now,
            )
            for sequence, event_id, previous, digest in seals
        )
        return
    columns = "sequence, event_id, prev_hash, hash, format, sealed_at"
    with (
        connection.cursor() as cursor,
        cursor.connection.cursor().copy(f"COPY {chain_sql.SEALS} ({columns}) FROM STDIN") as copy,
    ):
        for row in seals:
            copy.write_row((*row, chain.FORMAT, now))


@transaction.atomic
def seal_batch(batch_size: int = SEAL_BATCH, *, full: bool = False, after: int | None = None) -> tuple[int, int | None]:
    """Seal up to ``batch_size`` unsealed events, oldest first; returns how many, and the id to
    continue after (None while late commits are still being sealed).

    Events above the highest sealed event are unsealed by definition, so walking forward needs no
    join. Only late commits below it need one: within ``LOOKBACK`` ids (or, with ``full``, the
    whole table), checked when a run starts.
    """
    if connection.vendor == "postgresql":
        # One sealer at a time (a second waits), released at commit.
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext('switchboard.audit_seal'))")
    last = AuditSeal.objects.order_by("-sequence").only("sequence", "hash").first()
    if last is not None:
        previous, sequence = last.hash, last.sequence
    else:  # nothing sealed in the database: the chain goes on from the newest archive, if any
        from audit.archive import chain_start

        sequence, previous = chain_start()
    highest = AuditSeal.objects.aggregate(highest=Max("event_id"))["highest"] or 0
    if after is None:
        # Late commits: unsealed events below the highest sealed one, found with both sides of the
        # anti-join held to the window (never a scan of the whole table).
        low = 0 if full else max(0, highest - LOOKBACK)
        sealed_in_window = AuditSeal.objects.filter(event_id__gt=low, event_id__lte=highest).values("event_id")
        unsealed = AuditEvent.objects.filter(id__gt=low, id__lte=highest).exclude(id__in=sealed_in_window)
        if not unsealed.exists():
            unsealed = AuditEvent.objects.filter(id__gt=highest)
    else:
        # Everything above the highest sealed event is unsealed: no join at all.
        unsealed = AuditEvent.objects.filter(id__gt=max(after, highest))
    seals = []
    for event_id, digest in digests(unsealed.order_by("id")[:batch_size]):
        sequence += 1
        link = chain.link_digest(previous, sequence, digest)
        seals.append((sequence, event_id, previous, link))
        previous = link
    _insert(seals)
    walked_forward = bool(seals) and seals[-1][1] > highest
    return len(seals), (seals[-1][1] if walked_forward else None)


def seal_all(batch_size: int = SEAL_BATCH, *, full: bool = False) -> int:
    """Seal every unsealed event, batch by batch (``full``: look through the whole table)."""
    total, after = 0, None
    while True:
        sealed, after = seal_batch(batch_size, full=full, after=after)
        if not sealed:
            return total
        total += sealed
