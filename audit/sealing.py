"""Sealing events into the hash chain, in batches off the hot path, and verifying the chain.

Writers only insert events; a sealer (Celery beat every few seconds, or ``manage.py seal_audit``)
gives the unsealed ones the next sequence numbers and their link hashes. Sealers run one at a
time, so the chain has one order.
"""

from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction
from django.db.models import Max

from audit import chain
from audit.models import AuditEvent, AuditSeal, Checkpoint

SEAL_BATCH = 5_000
VERIFY_CHUNK = 5_000
# Events are sealed in id order, but a transaction can commit after later ids were sealed. The
# sealer looks this many ids behind the last sealed event for such stragglers, so a batch reads
# the table's tail, not all of it; a full sweep (seal_audit --full) finds anything older.
LOOKBACK = 100_000


RECORD_FIELDS = [field.attname for field in AuditEvent._meta.concrete_fields]


def record(event: AuditEvent) -> dict[str, Any]:
    """What a seal covers: every stored field of the event."""
    return {name: getattr(event, name) for name in RECORD_FIELDS}


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
    previous, sequence = (last.hash, last.sequence) if last else (chain.GENESIS, 0)
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
    for row in unsealed.order_by("id").values_list(*RECORD_FIELDS)[:batch_size]:
        sequence += 1
        event = dict(zip(RECORD_FIELDS, row, strict=True))  # plain rows: no model instances to build
        digest = chain.link(previous, sequence, event)
        seals.append(
            AuditSeal(sequence=sequence, event_id=event["id"], prev_hash=previous, hash=digest, format=chain.FORMAT)
        )
        previous = digest
    AuditSeal.objects.bulk_create(seals)
    walked_forward = bool(seals) and seals[-1].event_id > highest
    return len(seals), (seals[-1].event_id if walked_forward else None)


def seal_all(batch_size: int = SEAL_BATCH, *, full: bool = False) -> int:
    """Seal every unsealed event, batch by batch (``full``: look through the whole table)."""
    total, after = 0, None
    while True:
        sealed, after = seal_batch(batch_size, full=full, after=after)
        if not sealed:
            return total
        total += sealed


@dataclass(frozen=True)
class Verification:
    checked: int
    unsealed: int
    problem: str | None  # the first inconsistency, naming its sequence number

    @property
    def intact(self) -> bool:
        return self.problem is None


def verify() -> Verification:
    """Recompute the chain from the start; stop at the first sequence that does not hold."""
    previous, expected, checked = chain.GENESIS, 1, 0
    columns = ["sequence", "prev_hash", "hash", *(f"event__{name}" for name in RECORD_FIELDS)]
    rows = AuditSeal.objects.order_by("sequence").values_list(*columns).iterator(chunk_size=VERIFY_CHUNK)
    for sequence, prev_hash, digest, *values in rows:
        problem = None
        if sequence != expected:
            problem = f"sequence {expected} is missing (the next seal is {sequence})"
        elif prev_hash != previous:
            problem = f"sequence {sequence}: its previous hash does not match sequence {expected - 1}"
        elif chain.link(previous, sequence, dict(zip(RECORD_FIELDS, values, strict=True))) != digest:
            problem = (
                f"sequence {sequence} (event {values[0]}): its hash does not match the event (one of them was changed)"
            )
        if problem:
            return Verification(checked, _unsealed(), problem)
        previous, expected, checked = digest, expected + 1, checked + 1
    return Verification(checked, _unsealed(), _checkpoint_problem())


def _checkpoint_problem() -> str | None:
    """Each checkpoint must name a sealed event's hash and carry a valid signature by the key
    configured outside the database (not merely the key stored beside it, which a rewriter
    could replace with their own)."""
    from audit.checkpoints import public_key_hex, signature_holds

    key = public_key_hex()
    hashes = dict(
        AuditSeal.objects.filter(sequence__in=Checkpoint.objects.values("sequence")).values_list("sequence", "hash")
    )
    for checkpoint in Checkpoint.objects.order_by("sequence"):
        if hashes.get(checkpoint.sequence) != checkpoint.hash:
            return f"checkpoint at sequence {checkpoint.sequence}: the chain there has another hash"
        if not signature_holds(checkpoint, key):
            return f"checkpoint at sequence {checkpoint.sequence}: the signature does not hold for the configured key"
    return None


def _unsealed() -> int:
    return AuditEvent.objects.filter(seal__isnull=True).count()
