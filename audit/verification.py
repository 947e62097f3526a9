"""Verifying the hash chain in the database: every seal recomputed from its event, every link checked.

On PostgreSQL the database prints each sealed event's record line through COPY and Python only
hashes it (FORMAT 2, ``audit.chain``); a long chain is split between two processes, one per core,
whose ends are then joined. Elsewhere, and for FORMAT 1 seals, the record is rebuilt from values.
The chain starts after the last archived sequence (``audit.archive.chain_start``).
"""

import hashlib
import multiprocessing
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from django.db import connection

from audit import chain, chain_sql
from audit.models import AuditEvent, AuditSeal, Checkpoint
from audit.sealing import RECORD_FIELDS

VERIFY_CHUNK = 5_000
# Below this many seals one process verifies the chain; above it, two do, each half of it.
PARALLEL_MIN = 200_000
PROCESSES = 2


@dataclass(frozen=True)
class Verification:
    checked: int
    unsealed: int
    problem: str | None  # the first inconsistency, naming its sequence number

    @property
    def intact(self) -> bool:
        return self.problem is None


@dataclass
class Stretch:
    """What walking a run of consecutive seals found: its ends, and the first problem in it."""

    first_prev_hash: str | None = None
    last_sequence: int = 0
    last_hash: str = ""
    problem: tuple[int, str] | None = None  # (sequence, message)
    legacy: list[int] = field(default_factory=list)  # FORMAT 1 seals, whose records are checked apart


def _missing(expected: int, found: int) -> tuple[int, str]:
    return expected, f"sequence {expected} is missing (the next seal is {found})"


def _changed(sequence: int, event_id: object) -> tuple[int, str]:
    return (
        sequence,
        f"sequence {sequence} (event {event_id}): its hash does not match the event (one of them was changed)",
    )


def _unlinked(sequence: int) -> tuple[int, str]:
    return sequence, f"sequence {sequence}: its previous hash does not match sequence {sequence - 1}"


def walk(lines: Iterable[bytes], after: int, previous: str | None) -> Stretch:
    """Check COPY lines "sequence, prev_hash, hash, format, record line…" that follow sequence
    ``after`` (whose hash is ``previous``, or None when another process checks that link)."""
    sha256 = hashlib.sha256
    stretch = Stretch(last_sequence=after, last_hash=previous or "")
    expected_previous = previous.encode() if previous is not None else None
    sequence = after
    for line in lines:
        sequence_text, prev_hash, digest, format, text = line.split(b"\t", 4)
        found = int(sequence_text)
        if found != sequence + 1:
            stretch.problem = _missing(sequence + 1, found)
            break
        if expected_previous is None:
            stretch.first_prev_hash = prev_hash.decode()
        elif prev_hash != expected_previous:
            stretch.problem = _unlinked(found)
            break
        if format == b"2":
            record_digest = sha256(text[:-1]).hexdigest().encode()
            if sha256(b"%b\n%b\n%b" % (prev_hash, sequence_text, record_digest)).hexdigest().encode() != digest:
                stretch.problem = _changed(found, text.split(b"\t", 1)[0].decode())
                break
        elif format == b"1":
            stretch.legacy.append(found)
        else:
            stretch.problem = (found, f"sequence {found}: unknown chain format {format.decode()}")
            break
        sequence, expected_previous = found, digest
    stretch.last_sequence, stretch.last_hash = sequence, (expected_previous or b"").decode()
    return stretch


def _lines(low: int, high: int) -> Iterator[bytes]:
    """The seals in (low, high] with their events' record lines, in sequence order."""
    seals = (
        AuditSeal.objects.filter(sequence__gt=low, sequence__lte=high)
        .order_by("sequence")
        .annotate(**chain_sql.LINE_COLUMNS)
    )
    return chain_sql.copy_lines(
        chain_sql.with_events(seals), "sequence", "prev_hash", "hash", "format", *chain_sql.LINE_COLUMNS
    )


def _walk_range(bounds: tuple[int, int]) -> Stretch:
    """One process's share: a fresh connection of its own (the parent's is not used after a fork)."""
    low, high = bounds
    try:
        return walk(_lines(low, high), low, None)
    finally:
        connection.close()


def _walk_postgresql(start: int, start_hash: str, end: int) -> Stretch:
    if end - start < PARALLEL_MIN or connection.in_atomic_block:
        return walk(_lines(start, end), start, start_hash)
    step = -(-(end - start) // PROCESSES)
    bounds = [(low, min(low + step, end)) for low in range(start, end, step)]
    connection.close()  # a forked child must not share the parent's socket
    with multiprocessing.get_context("fork").Pool(len(bounds)) as pool:
        stretches = pool.map(_walk_range, bounds)
    joined = Stretch(last_sequence=start, last_hash=start_hash)
    for stretch, (low, _high) in zip(stretches, bounds, strict=True):
        if (
            joined.problem is None
            and stretch.first_prev_hash is not None
            and stretch.first_prev_hash != joined.last_hash
        ):
            joined.problem = _unlinked(low + 1)
        if joined.problem is None:
            joined.problem = stretch.problem
        joined.legacy += stretch.legacy
        joined.last_sequence, joined.last_hash = stretch.last_sequence, stretch.last_hash
    return joined


def _walk_python(start: int, start_hash: str, end: int) -> Stretch:
    """Rebuild every record from its values: for SQLite, and for ``--portable`` checks."""
    stretch = Stretch(last_sequence=start, last_hash=start_hash)
    previous, sequence = start_hash, start
    columns = ["sequence", "prev_hash", "hash", "format", *(f"event__{name}" for name in RECORD_FIELDS)]
    rows = (
        AuditSeal.objects.filter(sequence__gt=start, sequence__lte=end)
        .order_by("sequence")
        .values_list(*columns)
        .iterator(chunk_size=VERIFY_CHUNK)
    )
    for found, prev_hash, digest, format, *values in rows:
        if found != sequence + 1:
            stretch.problem = _missing(sequence + 1, found)
            break
        if prev_hash != previous:
            stretch.problem = _unlinked(found)
            break
        try:
            recomputed = chain.seal_hash(format, previous, found, dict(zip(RECORD_FIELDS, values, strict=True)))
        except ValueError as error:
            stretch.problem = (found, f"sequence {found}: {error}")
            break
        if recomputed != digest:
            stretch.problem = _changed(found, values[0])
            break
        previous, sequence = digest, found
    stretch.last_sequence, stretch.last_hash = sequence, previous
    return stretch


def _legacy_problem(sequences: list[int]) -> tuple[int, str] | None:
    """FORMAT 1 seals: their links were checked with the rest; their records are rebuilt here."""
    columns = ["sequence", "prev_hash", "hash", *(f"event__{name}" for name in RECORD_FIELDS)]
    for index in range(0, len(sequences), VERIFY_CHUNK):
        chunk = sequences[index : index + VERIFY_CHUNK]
        rows = AuditSeal.objects.filter(sequence__in=chunk).order_by("sequence").values_list(*columns)
        for found, prev_hash, digest, *values in rows:
            if chain.link(prev_hash, found, dict(zip(RECORD_FIELDS, values, strict=True))) != digest:
                return _changed(found, values[0])
    return None


def verify(*, portable: bool = False) -> Verification:
    """Recompute the chain from where the archive ends; stop at the first sequence that does not hold.

    ``portable`` rebuilds every record in Python even on PostgreSQL: an independent check of the
    database's own rendering.
    """
    from audit.archive import chain_start

    start, start_hash = chain_start()
    end = AuditSeal.objects.order_by("-sequence").values_list("sequence", flat=True).first() or start
    if connection.vendor == "postgresql" and not portable:
        stretch = _walk_postgresql(start, start_hash, end)
    else:
        stretch = _walk_python(start, start_hash, end)
    problems = [stretch.problem] if stretch.problem else []
    legacy = [sequence for sequence in stretch.legacy if not problems or sequence < problems[0][0]]
    if legacy and (found := _legacy_problem(legacy)):
        problems.append(found)
    if problems:
        sequence, message = min(problems)
        return Verification(sequence - start - 1, _unsealed(), message)
    return Verification(end - start, _unsealed(), _checkpoint_problem(start, start_hash))


def _checkpoint_problem(start: int, start_hash: str) -> str | None:
    """Each checkpoint must name a sealed event's hash and carry a valid signature by the key
    configured outside the database (not merely the key stored beside it, which a rewriter
    could replace with their own). Checkpoints inside the archive are checked by its export."""
    from audit.checkpoints import public_key_hex, signature_holds

    key = public_key_hex()
    hashes = dict(
        AuditSeal.objects.filter(sequence__in=Checkpoint.objects.values("sequence")).values_list("sequence", "hash")
    )
    hashes[start] = start_hash
    for checkpoint in Checkpoint.objects.filter(sequence__gte=start).order_by("sequence"):
        if hashes.get(checkpoint.sequence) != checkpoint.hash:
            return f"checkpoint at sequence {checkpoint.sequence}: the chain there has another hash"
        if not signature_holds(checkpoint, key):
            return f"checkpoint at sequence {checkpoint.sequence}: the signature does not hold for the configured key"
    return None


def _unsealed() -> int:
    return AuditEvent.objects.filter(seal__isnull=True).count()
