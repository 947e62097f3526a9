"""The offline verifier, run as an auditor would: ``python -m audit.verify`` with no Django at all."""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from audit import export
from audit.models import AuditSeal
from audit.sealing import seal_all
from audit.tests.test_export import mixed_events

pytestmark = pytest.mark.django_db

PROJECT = Path(__file__).resolve().parents[2]


@pytest.fixture
def no_django(tmp_path: Path) -> dict[str, str]:
    """An environment in which importing Django fails, and no settings are named."""
    blocker = tmp_path / "blocker" / "django"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('the offline verifier must not import Django')\n")
    env = {key: value for key, value in os.environ.items() if not key.startswith("DJANGO")}
    env["PYTHONPATH"] = os.pathsep.join([str(blocker.parent), str(PROJECT)])
    return env


def run_verifier(env: dict[str, str], *args: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own interpreter on our own module
        [sys.executable, "-m", "audit.verify", *map(str, args)],
        env=env,
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(params=["jsonl", "csv"])
def exported(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, Path]:
    """A fresh export of a dozen mixed events, and its manifest."""
    for _ in range(3):
        mixed_events()
    seal_all()
    target = tmp_path / f"log.{request.param}"
    export.write_export(target, request.param, export.ExportFilters())
    return target, export.manifest_path(target)


def lines_of(path: Path) -> list[str]:
    """JSONL lines with their endings; JSON escapes line breaks inside strings, so "\n" ends a row."""
    return [line + "\n" for line in path.read_bytes().decode().split("\n")[:-1]]


def data_lines(path: Path) -> tuple[list[str], list[str]]:
    """(header lines, one entry per row), keeping CSV rows whose cells span lines together."""
    if path.suffix == ".jsonl":
        return [], lines_of(path)
    import csv

    text = path.read_bytes().decode()  # not read_text: it would turn a quoted "\r\n" into "\n"
    physical = [line + "\n" for line in text.split("\n")[:-1]]
    reader = csv.reader(physical)  # quoted line breaks join physical lines into one row
    rendered, end = [], 0
    for _cells in reader:
        rendered.append("".join(physical[end : reader.line_num]))
        end = reader.line_num
    assert "".join(rendered) == text
    return rendered[:1], rendered[1:]


def write_rows(path: Path, header: list[str], rows: list[str]) -> None:
    path.write_text("".join(header + rows), encoding="utf-8", newline="")


def test_fresh_export_verifies_without_django(exported: tuple[Path, Path], no_django: dict[str, str]) -> None:
    target, manifest = exported
    result = run_verifier(no_django, target, "--manifest", manifest, "--complete")

    assert result.returncode == 0, result.stdout + result.stderr
    count = AuditSeal.objects.count()
    assert f"OK: {count} rows, sequences 1..{count}" in result.stdout
    assert "checkpoint" in result.stdout


def test_edited_field_is_named_by_sequence(exported: tuple[Path, Path], no_django: dict[str, str]) -> None:
    target, _ = exported
    header, rows = data_lines(target)
    assert "policy.submitted" in rows[1]
    rows[1] = rows[1].replace("policy.submitted", "policy.approved")
    write_rows(target, header, rows)

    result = run_verifier(no_django, target)
    assert result.returncode == 1
    assert "FAILED: sequence 2 (line " in result.stdout
    assert "hash does not match" in result.stdout


def test_deleted_row_fails_a_complete_check_and_is_noted_otherwise(
    exported: tuple[Path, Path], no_django: dict[str, str]
) -> None:
    target, _ = exported
    header, rows = data_lines(target)
    del rows[4]
    write_rows(target, header, rows)

    strict = run_verifier(no_django, target, "--complete")
    assert strict.returncode == 1
    assert "FAILED: sequence 6 (line " in strict.stdout
    assert "follows sequence 4" in strict.stdout

    lenient = run_verifier(no_django, target)
    assert lenient.returncode == 0, lenient.stdout
    assert "filtered: sequence 6 follows 4" in lenient.stdout


def test_swapped_rows_fail(exported: tuple[Path, Path], no_django: dict[str, str]) -> None:
    target, _ = exported
    header, rows = data_lines(target)
    rows[2], rows[3] = rows[3], rows[2]
    write_rows(target, header, rows)

    result = run_verifier(no_django, target)
    assert result.returncode == 1
    assert "FAILED: sequence 3 (line " in result.stdout
    assert "out of order" in result.stdout


def test_row_with_recomputed_hash_breaks_the_next_link(exported: tuple[Path, Path], no_django: dict[str, str]) -> None:
    """A forger who rehashes an edited row still breaks the link to the row after it."""
    from audit import chain, verify

    target, _ = exported
    rows = list(verify.read_jsonl(target)) if target.suffix == ".jsonl" else list(verify.read_csv(target))
    header, lines = data_lines(target)
    forged = rows[2]
    forged.record["reason"] = "nothing to see"
    new_hash = chain.seal_hash(forged.format, forged.prev_hash, forged.sequence, forged.record)
    lines[2] = _rewrite(target, forged, new_hash)
    write_rows(target, header, lines)

    result = run_verifier(no_django, target)
    assert result.returncode == 1
    assert "FAILED: sequence 4 (line " in result.stdout
    assert "previous hash is not the hash of sequence 3" in result.stdout


def _rewrite(target: Path, row: Any, new_hash: str) -> str:
    from audit import chain, verify

    values = {**row.record, "_sequence": row.sequence, "_hash": new_hash, "_prev_hash": row.prev_hash, "_format": 2}
    if target.suffix == ".jsonl":
        return chain.render_json(values) + "\n"  # JSON that keeps the exact decimals it was read with
    import csv
    import io

    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(
        [verify.encode_cell(verify.FIELDS.get(name, "str"), values[name]) for name in export.COLUMNS]
    )
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("rows", 999, "manifest rows is 999"),
        ("last_hash", "0" * 64, "manifest last_hash"),
        ("sha256", "f" * 64, "SHA-256 does not match"),
    ],
)
def test_manifest_mismatch_fails(
    exported: tuple[Path, Path], no_django: dict[str, str], key: str, value: Any, message: str
) -> None:
    target, manifest_file = exported
    manifest = json.loads(manifest_file.read_text())
    manifest[key] = value
    manifest_file.write_text(json.dumps(manifest))

    result = run_verifier(no_django, target, "--manifest", manifest_file)
    assert result.returncode == 1
    assert message in result.stdout


def test_appended_byte_fails_the_file_hash(exported: tuple[Path, Path], no_django: dict[str, str]) -> None:
    target, manifest_file = exported
    with target.open("a", encoding="utf-8") as handle:
        handle.write("\n")
    result = run_verifier(no_django, target, "--manifest", manifest_file)
    assert result.returncode == 1
    assert "SHA-256 does not match" in result.stdout


def test_dropped_last_row_fails_against_the_manifest(exported: tuple[Path, Path], no_django: dict[str, str]) -> None:
    target, manifest_file = exported
    header, rows = data_lines(target)
    write_rows(target, header, rows[:-1])
    result = run_verifier(no_django, target, "--manifest", manifest_file)
    assert result.returncode == 1
    assert "manifest rows is" in result.stdout


def test_checkpoint_hash_is_compared_and_signature_left_unchecked_without_a_key(
    exported: tuple[Path, Path], no_django: dict[str, str]
) -> None:
    target, manifest_file = exported
    manifest = json.loads(manifest_file.read_text())
    manifest["checkpoint"] = {
        "sequence": 5, "hash": manifest["last_hash"], "count": 5, "created_at": "2025-01-01 00:00:00+00:00",
        "signature": "", "public_key": "",
    }  # fmt: skip
    manifest_file.write_text(json.dumps(manifest))
    result = run_verifier(no_django, target, "--manifest", manifest_file)
    assert result.returncode == 1
    assert "sequence 5: its hash is not the one the checkpoint signed" in result.stdout

    manifest["checkpoint"]["hash"] = AuditSeal.objects.get(sequence=5).hash
    manifest_file.write_text(json.dumps(manifest))
    result = run_verifier(no_django, target, "--manifest", manifest_file)
    assert result.returncode == 0, result.stdout
    assert "checkpoint: sequence 5 matches the export" in result.stdout
    assert "signature: not checked" in result.stdout


def test_filtered_export_verifies_with_its_gaps_noted(tmp_path: Path, no_django: dict[str, str]) -> None:
    for _ in range(2):
        mixed_events()
    seal_all()
    target = tmp_path / "decisions.csv"
    export.write_export(target, "csv", export.ExportFilters(kind="routing.decision"))

    result = run_verifier(no_django, target, "--manifest", export.manifest_path(target))
    assert result.returncode == 0, result.stdout
    assert "filtered: sequence 9 follows 4" in result.stdout
    assert "OK: 2 rows, sequences 4..9" in result.stdout


def test_unknown_extension_is_refused(tmp_path: Path, no_django: dict[str, str]) -> None:
    target = tmp_path / "log.txt"
    target.write_text("")
    result = run_verifier(no_django, target)
    assert result.returncode == 1
    assert "unknown format" in result.stdout


def test_the_offline_verifier_checks_a_real_checkpoint_signature(tmp_path: Path, no_django: dict[str, str]) -> None:
    """End to end with a real Ed25519 checkpoint and no Django: valid as exported, refused once forged."""
    from audit.checkpoints import make_checkpoint
    from audit.services import record_event

    for i in range(3):
        record_event("test.happened", reason=f"event {i}")
    seal_all()
    make_checkpoint()
    path = tmp_path / "ledger.jsonl"
    manifest = export.write_export(path, "jsonl", export.ExportFilters())
    manifest_path = Path(f"{path}.manifest.json")
    good = run_verifier(no_django, path, "--manifest", manifest_path)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "checkpoint signature: valid" in good.stdout
    forged = {**manifest, "checkpoint": {**manifest["checkpoint"], "count": manifest["checkpoint"]["count"] + 1}}
    manifest_path.write_text(json.dumps(forged))
    bad = run_verifier(no_django, path, "--manifest", manifest_path)
    assert bad.returncode != 0
    assert "signature" in bad.stdout + bad.stderr
