"""Verify an audit export offline: ``python -m audit.verify FILE [--manifest MANIFEST] [--complete]``.

An auditor runs this on their own machine, away from the system that wrote the log, so it imports
nothing but the standard library and ``audit.chain`` (the same hashing code the sealer uses) and
needs no Django settings. It recomputes every row's link hash, checks that consecutive rows link,
and, given the manifest, that the file is the one the manifest describes. Exit status 0 means
consistent; 1 names the first inconsistency by sequence number and line.
"""

import argparse
import csv
import decimal
import hashlib
import json
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audit import chain

# How a CSV cell turns back into the value the seal covered, per AuditEvent column (the chain's
# own field list). CSV has only text, so without this an int, a null and an empty string would
# look alike. A column this verifier does not know is an error.
FIELDS = chain.FIELDS
SEAL_COLUMNS = ("_sequence", "_hash", "_prev_hash", "_format")
FORMATS = {".jsonl": "jsonl", ".csv": "csv"}


class Inconsistent(Exception):
    """The first thing in the export that does not hold; the message names sequence and line."""


@dataclass
class Row:
    line: int
    sequence: int
    hash: str
    prev_hash: str
    record: dict[str, Any]
    format: int = 1  # exports made before FORMAT 2 carry no _format: their rows are FORMAT 1


def encode_cell(kind: str, value: Any) -> str:
    """A record value as CSV text; the inverse of ``decode_cell``."""
    if value is None:
        return ""
    if kind.startswith("json"):
        return chain.render_json(value)
    return str(value)


def _json(text: str) -> Any:
    """JSON with its numbers kept exact, as FORMAT 2 hashes them."""
    return json.loads(text, parse_float=decimal.Decimal)


def _floats(value: Any) -> Any:
    """FORMAT 1 hashed numbers as Python floats: turn exact decimals back into them."""
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, dict):
        return {key: _floats(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_floats(item) for item in value]
    return value


def decode_cell(kind: str, text: str) -> Any:
    if text == "" and kind.endswith("?"):
        return None
    if kind.startswith("int"):
        return int(text)
    if kind.startswith("json"):
        return _json(text)
    return text


def _seal_values(row: dict[str, Any], line: int) -> tuple[int, str, str, int]:
    try:
        return int(row["_sequence"]), str(row["_hash"]), str(row["_prev_hash"]), int(row.get("_format") or 1)
    except (KeyError, TypeError, ValueError) as error:
        raise Inconsistent(f"line {line}: the row has no readable _sequence, _hash and _prev_hash ({error})") from None


def read_jsonl(path: Path) -> Iterator[Row]:
    with path.open(encoding="utf-8") as lines:
        for number, text in enumerate(lines, start=1):
            if not text.strip():
                continue
            try:
                row = _json(text)
            except json.JSONDecodeError as error:
                raise Inconsistent(f"line {number}: not a JSON object ({error})") from None
            if not isinstance(row, dict):
                raise Inconsistent(f"line {number}: not a JSON object")
            sequence, digest, previous, format = _seal_values(row, number)
            record = {key: value for key, value in row.items() if key not in SEAL_COLUMNS}
            yield Row(number, sequence, digest, previous, record, format)


def read_csv(path: Path) -> Iterator[Row]:
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            return
        unknown = [name for name in header if name not in FIELDS and name not in SEAL_COLUMNS]
        if unknown:
            raise Inconsistent(f"line 1: columns this verifier does not know: {', '.join(unknown)}")
        end_of_previous = reader.line_num
        for cells in reader:
            line = end_of_previous + 1  # the row's first physical line (a quoted cell may span several)
            end_of_previous = reader.line_num
            if not cells:
                continue  # a blank line holds no row (the manifest's file hash still covers it)
            if len(cells) != len(header):
                raise Inconsistent(f"line {line}: {len(cells)} cells for {len(header)} columns")
            row = dict(zip(header, cells, strict=True))
            sequence, digest, previous, format = _seal_values(row, line)
            try:
                record = {name: decode_cell(FIELDS[name], row[name]) for name in header if name in FIELDS}
            except ValueError as error:
                raise Inconsistent(f"sequence {sequence} (line {line}): a cell cannot be read ({error})") from None
            yield Row(line, sequence, digest, previous, record, format)


@dataclass
class Result:
    rows: int = 0
    first: Row | None = None
    last: Row | None = None
    hashes: dict[int, str] = field(default_factory=dict)  # only the ones a checkpoint may ask about
    notes: list[str] = field(default_factory=list)


def _recomputed(row: Row, where: str) -> str:
    """The hash the row's seal must have, by the row's chain format."""
    if row.format == 1:
        return chain.link(row.prev_hash, row.sequence, _floats(row.record))
    unknown = sorted(set(row.record) - set(FIELDS))
    if unknown:
        raise Inconsistent(f"{where}: fields no seal covers: {', '.join(unknown)}")
    try:
        return chain.seal_hash(row.format, row.prev_hash, row.sequence, row.record)
    except KeyError as missing:
        raise Inconsistent(f"{where}: the row lacks the field {missing}") from None
    except (ValueError, TypeError) as error:
        raise Inconsistent(f"{where}: {error}") from None


def check_rows(rows: Iterator[Row], *, complete: bool, keep: frozenset[int] = frozenset()) -> Result:
    """Every row hashes to its seal, and each row links to the one before it when they are consecutive."""
    result = Result()
    previous: Row | None = None
    for row in rows:
        where = f"sequence {row.sequence} (line {row.line})"
        if _recomputed(row, where) != row.hash:
            raise Inconsistent(f"{where}: its hash does not match its record (the row was changed)")
        if row.sequence == 1 and row.prev_hash != chain.GENESIS:
            raise Inconsistent(f"{where}: the first event of the chain must follow the genesis hash")
        if previous is not None:
            if row.sequence <= previous.sequence:
                raise Inconsistent(f"{where}: follows sequence {previous.sequence}; rows are out of order")
            if row.sequence == previous.sequence + 1:
                if row.prev_hash != previous.hash:
                    raise Inconsistent(f"{where}: its previous hash is not the hash of sequence {previous.sequence}")
            elif complete:
                raise Inconsistent(f"{where}: follows sequence {previous.sequence}; rows are missing")
            else:
                result.notes.append(f"filtered: sequence {row.sequence} follows {previous.sequence}")
        if row.sequence in keep:
            result.hashes[row.sequence] = row.hash
        result.first = result.first or row
        result.last, previous = row, row
        result.rows += 1
    return result


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def check_manifest(manifest: dict[str, Any], result: Result, path: Path, format: str) -> list[str]:
    """The file is the one the manifest describes; returns notes about what could not be checked."""
    expected = {
        "format": format,
        "rows": result.rows,
        "first_sequence": result.first.sequence if result.first else None,
        "first_hash": result.first.hash if result.first else None,
        "last_sequence": result.last.sequence if result.last else None,
        "last_hash": result.last.hash if result.last else None,
    }
    for key, found in expected.items():
        if manifest.get(key) != found:
            where = f"sequence {result.last.sequence}: " if result.last and key.startswith("last") else ""
            raise Inconsistent(f"{where}manifest {key} is {manifest.get(key)!r}, the file has {found!r}")
    if manifest.get("sha256") != file_sha256(path):
        raise Inconsistent("the file's SHA-256 does not match the manifest (the file was changed)")
    checkpoint = manifest.get("checkpoint")
    return check_checkpoint(checkpoint, result) if checkpoint else ["checkpoint: none in the manifest"]


def check_checkpoint(checkpoint: dict[str, Any], result: Result) -> list[str]:
    notes = []
    sequence = checkpoint.get("sequence")
    if sequence in result.hashes:
        if result.hashes[sequence] != checkpoint.get("hash"):
            raise Inconsistent(f"sequence {sequence}: its hash is not the one the checkpoint signed")
        notes.append(f"checkpoint: sequence {sequence} matches the export")
    else:
        notes.append(f"checkpoint: sequence {sequence} is not in this export; its hash was not compared")
    notes.append(check_signature(checkpoint))
    return notes


def check_signature(checkpoint: dict[str, Any]) -> str:
    """Ed25519 over "sequence:hash:count:created_at", when the manifest and this machine allow it."""
    signature, public_key = checkpoint.get("signature"), checkpoint.get("public_key")
    if not signature or not public_key:
        return "checkpoint signature: not checked (the checkpoint carries no signature)"
    try:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    except ImportError:
        return "checkpoint signature: not checked (install the cryptography package to check it)"
    message = f"{checkpoint['sequence']}:{checkpoint['hash']}:{checkpoint['count']}:{checkpoint['created_at']}"
    try:
        key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key))
        key.verify(bytes.fromhex(signature), message.encode())
    except (InvalidSignature, ValueError):
        raise Inconsistent(f"sequence {checkpoint['sequence']}: the checkpoint signature does not verify") from None
    return "checkpoint signature: valid"


def verify_file(path: Path, manifest_path: Path | None = None, *, complete: bool = False) -> list[str]:
    """Check an export (and its manifest); returns the report lines, raises ``Inconsistent``."""
    format = FORMATS.get(path.suffix.lower())
    if format is None:
        raise Inconsistent(f"{path.name}: unknown format (expected {' or '.join(FORMATS)})")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8")) if manifest_path else None
    checkpoint = (manifest or {}).get("checkpoint") or {}
    keep = frozenset([checkpoint["sequence"]]) if isinstance(checkpoint.get("sequence"), int) else frozenset()
    rows = read_jsonl(path) if format == "jsonl" else read_csv(path)
    result = check_rows(rows, complete=complete, keep=keep)
    notes = list(result.notes)
    if manifest is not None:
        notes += check_manifest(manifest, result, path, format)
    if result.first and result.last:
        notes.append(f"OK: {result.rows} rows, sequences {result.first.sequence}..{result.last.sequence}")
    else:
        notes.append("OK: 0 rows")
    return notes


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m audit.verify", description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path, help="the export, .jsonl or .csv")
    parser.add_argument("--manifest", type=Path, help="the export's manifest (JSON)")
    parser.add_argument("--complete", action="store_true", help="a gap in sequences is an error")
    args = parser.parse_args(argv)
    try:
        notes = verify_file(args.file, args.manifest, complete=args.complete)
    except Inconsistent as problem:
        print(f"FAILED: {problem}")
        return 1
    print("\n".join(notes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
