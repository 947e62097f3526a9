"""Streaming exports of the sealed audit log, as JSONL or CSV, with a manifest to verify them offline.

Only sealed events are exported: an unsealed event has no place in the chain yet, so nothing in
the file could prove it was not changed. Rows are read through a server-side cursor (on
PostgreSQL) and encoded one at a time, so an export of any size runs in constant memory. Each row
is the exact record the seal covers plus ``_sequence``, ``_hash`` and ``_prev_hash``, which is
everything ``python -m audit.verify`` needs.
"""

import concurrent.futures
import csv
import dataclasses
import datetime
import hashlib
import io
import json
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any, ClassVar

from django.db import connection
from django.db.models import Max, Min, Q, QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from audit import chain, chain_sql, verify
from audit.models import AuditEvent, AuditSeal
from audit.services import record_event

CHUNK_SIZE = 2_000
FORMATS = ("jsonl", "csv")
RECORD_FIELDS = [field.attname for field in AuditEvent._meta.concrete_fields]
COLUMNS = [*verify.SEAL_COLUMNS, *RECORD_FIELDS]


@dataclasses.dataclass(frozen=True)
class ExportFilters:
    """What to export. Times are a half-open range [since, until); sequences are inclusive."""

    since: datetime.datetime | None = None
    until: datetime.datetime | None = None
    kind: str = ""
    application_name: str = ""
    team_name: str = ""
    model: str = ""  # contained in the model version's name, as on the audit log page
    model_version_id: int | None = None
    policy_slug: str = ""
    policy_version: int | None = None
    classification: str = ""
    decision_id: str = ""
    sequence_from: int | None = None
    sequence_to: int | None = None

    # The audit log page's parameter names, so "Export" exports exactly what the page lists.
    ALIASES: ClassVar[dict[str, str]] = {
        "occurred_after": "since",
        "occurred_before": "until",
        "application": "application_name",
        "team": "team_name",
        "model_version": "model_version_id",
        "policy": "policy_slug",
    }

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> "ExportFilters":
        """Read filters from query parameters; a bad value raises ``ValueError`` naming the parameter."""
        values: dict[str, Any] = {}
        params = {cls.ALIASES.get(key, key): value for key, value in params.items()}
        for item in dataclasses.fields(cls):
            text = str(params.get(item.name) or "").strip()
            if not text:
                continue
            if item.name in {"since", "until"}:
                moment = parse_datetime(text)
                if moment is None:
                    raise ValueError(f"{item.name}: not a date and time (use ISO 8601)")
                values[item.name] = moment if timezone.is_aware(moment) else timezone.make_aware(moment)
            elif item.name == "decision_id":
                try:
                    values[item.name] = str(uuid.UUID(text))
                except ValueError as exc:
                    raise ValueError("decision_id: not a decision id (a UUID)") from exc
            elif item.name in {"model_version_id", "policy_version", "sequence_from", "sequence_to"}:
                if not text.isdigit():
                    raise ValueError(f"{item.name}: not a whole number")
                values[item.name] = int(text)
            else:
                values[item.name] = text
        return cls(**values)

    def as_dict(self) -> dict[str, Any]:
        """The filters that are set, as JSON values (for the audit event and the manifest)."""
        return {
            key: chain_value(value)
            for key, value in dataclasses.asdict(self).items()
            if value is not None and value != ""
        }

    def describe(self) -> str:
        return ", ".join(f"{key}={value}" for key, value in self.as_dict().items()) or "everything sealed"

    def query(self) -> Q:
        q = Q()
        for name, lookup in (("since", "event__occurred_at__gte"), ("until", "event__occurred_at__lt")):
            if getattr(self, name) is not None:
                q &= Q(**{lookup: getattr(self, name)})
        lookups = {
            "kind": "event__kind",
            "application_name": "event__application_name__iexact",
            "team_name": "event__team_name__iexact",
            "model": "event__model_version_name__icontains",
            "model_version_id": "event__model_version_id",
            "policy_slug": "event__policy_slug",
            "policy_version": "event__policy_version",
            "classification": "event__classification__iexact",
            "decision_id": "event__decision_id",
        }
        for name, lookup in lookups.items():
            value = getattr(self, name)
            if value is not None and value != "":
                q &= Q(**{lookup: value})
        if self.sequence_from is not None:
            q &= Q(sequence__gte=self.sequence_from)
        if self.sequence_to is not None:
            q &= Q(sequence__lte=self.sequence_to)
        return q


PROGRESS_EVERY = 10_000  # rows between progress reports of a background export
ROWS_PER_CHUNK = 1_000  # rows joined into one piece of output (one write, one hash update)
PARALLEL_MIN = 200_000  # sequences from which an export is rendered by two database processes
SPOOL_BLOCK = 1 << 20


def chain_value(value: Any) -> Any:
    """A value as the canonical encoding renders it (datetimes in UTC with microseconds, UUIDs as text)."""
    return json.loads(chain.canonical({"v": value}))["v"]


def seals(filters: ExportFilters) -> "QuerySet[AuditSeal]":
    return AuditSeal.objects.filter(filters.query()).order_by("sequence")


# A row's (sequence, hash), as its source gives them: numbers and text, or COPY's bytes.
Mark = tuple[int | bytes, str | bytes]


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


class _Unhashed:
    """Stands in for a hash where the bytes are hashed elsewhere."""

    def update(self, data: bytes) -> None:
        pass


@dataclasses.dataclass
class Summary:
    """What the manifest says about the bytes that went out, gathered while they stream."""

    rows: int = 0
    first_sequence: int | None = None
    first_hash: str | None = None
    last_sequence: int | None = None
    last_hash: str | None = None
    sha256: Any = dataclasses.field(default_factory=hashlib.sha256)

    def add(self, chunk: bytes, rows: int = 0, first: Mark | None = None, last: Mark | None = None) -> None:
        """Count ``chunk`` in: ``rows`` rows, the first and last of them as (sequence, hash) marks."""
        self.sha256.update(chunk)
        if not rows or first is None or last is None:
            return
        if self.first_sequence is None:
            self.first_sequence, self.first_hash = int(first[0]), _text(first[1])
        self.last_sequence, self.last_hash = int(last[0]), _text(last[1])
        self.rows += rows

    def extend(self, later: "Summary") -> None:
        """Count in the rows of ``later``, whose bytes were added here already."""
        if later.rows:
            if self.first_sequence is None:
                self.first_sequence, self.first_hash = later.first_sequence, later.first_hash
            self.last_sequence, self.last_hash = later.last_sequence, later.last_hash
            self.rows += later.rows


def _csv(cells: list[Any]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(cells)
    return buffer.getvalue().encode()


def _seal_json(sequence: int, hash: str, prev_hash: str, format: int) -> str:
    return f'{{"_sequence":{sequence},"_hash":"{hash}","_prev_hash":"{prev_hash}","_format":{format},'


def _python_rows(format: str, filters: ExportFilters) -> Iterator[tuple[Mark, bytes]]:
    """((sequence, hash), line) rendered in Python from values: for databases other than PostgreSQL."""
    columns = ["sequence", "hash", "prev_hash", "format", *(f"event__{name}" for name in RECORD_FIELDS)]
    rows = seals(filters).values_list(*columns).iterator(chunk_size=CHUNK_SIZE)
    for sequence, digest, prev_hash, seal_format, *values in rows:
        record = dict(zip(RECORD_FIELDS, values, strict=True))
        if format == "jsonl":
            line = (
                _seal_json(sequence, digest, prev_hash, seal_format) + chain.record_json(record)[1:] + "\n"
            ).encode()
        else:
            line = _csv([sequence, digest, prev_hash, seal_format, *chain.record_cells(record)])
        yield (sequence, digest), line


def _postgresql_rows(format: str, filters: ExportFilters) -> Iterator[tuple[Mark, bytes]]:
    """((sequence, hash), line) rendered by PostgreSQL itself and streamed out through COPY."""
    selected = chain_sql.with_events(seals(filters))
    if format == "jsonl":
        lines = chain_sql.copy_lines(selected.annotate(line=chain_sql.JSON_LINE_COLUMN), "sequence", "hash", "line")
        for text in lines:
            sequence, digest, line = text.split(b"\t", 2)
            if b"\\" in line:
                line = line.replace(b"\\\\", b"\\")  # COPY doubles backslashes; JSON has no other escapes for it
            yield (sequence, digest), line
        return
    columns = ("sequence", "hash", "prev_hash", "format", *chain_sql.LINE_COLUMNS)
    for line in chain_sql.copy_lines(selected.annotate(**chain_sql.LINE_COLUMNS), *columns, options="(FORMAT csv)"):
        sequence, digest, _rest = line.split(b",", 2)  # numbers and hex digits: never quoted
        yield (sequence, digest), line


def _chunks(rows: Iterator[tuple[Mark, bytes]], summary: Summary) -> Iterator[bytes]:
    """Rows joined a thousand at a time, each piece counted into ``summary`` (by its first and last row)."""
    lines: list[bytes] = []
    first = last = None
    for last, line in rows:
        if not lines:
            first = last
        lines.append(line)
        if len(lines) == ROWS_PER_CHUNK:
            chunk = b"".join(lines)
            summary.add(chunk, len(lines), first, last)
            yield chunk
            lines = []
    if lines:
        chunk = b"".join(lines)
        summary.add(chunk, len(lines), first, last)
        yield chunk


def _halves(filters: ExportFilters) -> tuple[ExportFilters, ExportFilters] | None:
    """The export cut in two by sequence, when it is long enough for two database processes to pay."""
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        return None  # a second connection would not see this transaction's rows
    bounds = seals(filters).aggregate(low=Min("sequence"), high=Max("sequence"))
    low, high = bounds["low"], bounds["high"]
    if low is None or high - low < PARALLEL_MIN:
        return None
    middle = (low + high) // 2
    return (
        dataclasses.replace(filters, sequence_from=low, sequence_to=middle),
        dataclasses.replace(filters, sequence_from=middle + 1, sequence_to=high),
    )


def _spool(format: str, filters: ExportFilters, spool: IO[bytes], summary: Summary) -> None:
    """Write the later half to a temporary file on a connection of this thread's own."""
    try:
        for chunk in _chunks(_postgresql_rows(format, filters), summary):
            spool.write(chunk)
    finally:
        connection.close()


def stream(format: str, filters: ExportFilters, summary: Summary | None = None) -> Iterator[bytes]:
    """The export's bytes in sequence order, a thousand rows at a time; fills ``summary`` as it goes.

    PostgreSQL renders the rows, one row at a time on one core. A long export is cut in two: a
    thread has a second database process render the later half into a temporary file while
    the first half streams, then the file follows (memory stays constant; the disk holds half).
    """
    if format not in FORMATS:
        raise ValueError(f"format: one of {', '.join(FORMATS)}")
    summary = summary if summary is not None else Summary()
    if format == "csv":
        header = _csv(COLUMNS)
        summary.add(header)
        yield header
    if connection.vendor != "postgresql":
        yield from _chunks(_python_rows(format, filters), summary)
        return
    halves = _halves(filters)
    if halves is None:
        yield from _chunks(_postgresql_rows(format, filters), summary)
        return
    first, later = halves
    # The spooled bytes are hashed once, into ``summary``, as they are read back: not here too.
    later_summary = Summary(sha256=_Unhashed())
    with tempfile.TemporaryFile() as spool:
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            spooled = pool.submit(_spool, format, later, spool, later_summary)
            yield from _chunks(_postgresql_rows(format, first), summary)
            spooled.result()  # re-raises whatever stopped the later half
        spool.seek(0)
        while block := spool.read(SPOOL_BLOCK):
            summary.add(block)
            yield block
    summary.extend(later_summary)


def start_export(format: str, filters: ExportFilters, actor: Any = None) -> AuditEvent:
    """Every export is itself audited, when it starts (so an export cut off halfway still shows)."""
    return record_event(
        "audit.exported",
        reason=f"{format} export of {filters.describe()}",
        after={"format": format, "filters": filters.as_dict()},
        actor=actor,
    )


def _checkpoint(last_sequence: int | None) -> dict[str, Any] | None:
    """The signed checkpoint covering the export's last event, when checkpoints exist."""
    try:
        from audit.checkpoints import covering  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    if last_sequence is None:
        return None
    found = covering(last_sequence)
    if found is None:
        return None
    return {
        "sequence": found.sequence,
        "hash": found.hash,
        "count": found.count,
        # Exactly as the signed message spells it (audit.chain.checkpoint_message).
        "created_at": (
            chain.timestamp(found.created_at)
            if isinstance(found.created_at, datetime.datetime)
            else str(found.created_at)
        ),
        "signature": found.signature,
        "public_key": found.public_key,
    }


def manifest(format: str, filters: ExportFilters, summary: Summary) -> dict[str, Any]:
    return {
        "format": format,
        "filters": filters.as_dict(),
        "rows": summary.rows,
        "first_sequence": summary.first_sequence,
        "first_hash": summary.first_hash,
        "last_sequence": summary.last_sequence,
        "last_hash": summary.last_hash,
        "sha256": summary.sha256.hexdigest(),
        "created_at": chain.timestamp(timezone.now()),
        "chain_format": chain.FORMAT,
        "checkpoint": _checkpoint(summary.last_sequence),
    }


def manifest_path(path: Path) -> Path:
    return path.with_name(path.name + ".manifest.json")


def write_export(
    path: str | Path,
    format: str,
    filters: ExportFilters,
    actor: Any = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Write the export to ``path`` and its manifest beside it (``<path>.manifest.json``); return the manifest.

    For large exports run as a background job. The caller picks the file name; the verifier
    reads the format from its extension, so it should end in ``.jsonl`` or ``.csv``.
    """
    path = Path(path)
    if format not in FORMATS:
        raise ValueError(f"format: one of {', '.join(FORMATS)}")
    start_export(format, filters, actor=actor)
    summary = Summary()
    with path.open("wb") as handle:
        for chunk in stream(format, filters, summary):
            handle.write(chunk)
            if progress is not None and summary.rows and summary.rows % PROGRESS_EVERY == 0:
                progress(summary.rows)
    result = manifest(format, filters, summary)
    manifest_path(path).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result
