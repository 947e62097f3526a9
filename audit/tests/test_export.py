"""Streamed exports: what goes out is exactly what the seals cover, in constant memory, for exporters only."""

import csv
import datetime
import decimal
import hashlib
import io
import json
import sys
import tracemalloc
import types
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import models
from django.test import Client
from django.urls import path
from django.utils import timezone

from audit import chain, export, verify
from audit.context import RequestContext, current_request
from audit.export_views import export_download, export_manifest
from audit.models import AuditEvent, AuditSeal
from audit.sealing import record, seal_all
from audit.services import insert, record_event

pytestmark = pytest.mark.django_db

# A test-only urlconf (this module), so the views are exercised through the whole middleware stack.
urlpatterns = [
    path("audit/export/", export_download, name="audit-export"),
    path("audit/export/manifest/", export_manifest, name="audit-export-manifest"),
]


def mixed_events(actor: Any = None) -> list[AuditEvent]:
    """Events with every kind of value: nulls and set ints, JSON of every shape, text that CSV must quote."""
    token = current_request.set(RequestContext(request=None, ip="203.0.113.7", user_agent="pytest", request_id="r-1"))
    try:
        changed = record_event(
            "registry.modelversion.changed",
            before={"cost": "1.50", "regions": ["eu", "us"], "nested": {"ok": True, "none": None}},
            after={"cost": "2.00", "regions": [], "nested": {"ok": False, "ratio": 0.25}},
            reason='Re-priced, "per contract"\nsecond line, ünïcödé ✓',
            actor=actor,
        )
    finally:
        current_request.reset(token)
    bare = record_event("policy.submitted", reason="")  # actor_ip None, before/after None
    odd_json = record_event("test.json", before={}, after=[1, "two", 3.5, None], reason="a,b;c\r\nd")  # type: ignore[arg-type]
    decision = insert(
        AuditEvent(
            kind="routing.decision",
            actor_name="app:billing",
            request_id=f"req-{uuid.uuid4().hex[:8]}",
            decision_id=uuid.uuid4(),
            application_id=7,
            application_name="billing",
            team_name="Finance",
            policy_slug="default",
            policy_version=3,
            rule="pii-to-approved",
            compliance_revision=12,
            model_version_id=99,
            model_version_name="acme/large 2025-01",
            classification="pii",
            region="eu",
            task_type="summarization",
            data={"request": {"tokens": 1200, "prompt_sha256": "ab" * 32}, "fallbacks": [], "cost": "0.0031"},
        )
    )
    outcome = insert(
        AuditEvent(
            kind="routing.outcome",
            actor_name="app:billing",
            decision_id=decision.decision_id,
            application_id=7,
            application_name="billing",
            model_version_id=99,
            classification="pii",
            data="plain JSON string",
        )
    )
    return [changed, bare, odd_json, decision, outcome]


@pytest.fixture
def sealed() -> list[AuditEvent]:
    events = mixed_events()
    seal_all()
    return events


def stored_records() -> dict[int, dict[str, Any]]:
    """What the seals cover, rendered as exports render it, by sequence."""
    return {
        seal.sequence: json.loads(chain.record_json(record(seal.event)), parse_float=decimal.Decimal)
        for seal in AuditSeal.objects.select_related("event")
    }


def jsonl_rows(filters: export.ExportFilters) -> list[dict[str, Any]]:
    text = b"".join(export.stream("jsonl", filters)).decode()
    return [json.loads(line, parse_float=decimal.Decimal) for line in text.splitlines()]


def test_verifier_type_map_follows_the_model() -> None:
    """The offline verifier cannot read the model, so its CSV type map is kept in step here."""
    expected = {}
    for field in AuditEvent._meta.concrete_fields:
        kind = "int" if isinstance(field, models.IntegerField | models.ForeignKey) else "str"
        kind = "json" if isinstance(field, models.JSONField) else kind
        expected[field.attname] = kind + ("?" if field.null else "")
    assert expected == chain.FIELDS
    assert list(chain.FIELDS) == export.RECORD_FIELDS


def test_jsonl_export_is_exactly_what_the_seals_cover(sealed: list[AuditEvent]) -> None:
    rows = jsonl_rows(export.ExportFilters())

    assert [list(row) for row in rows] == [export.COLUMNS] * len(sealed)
    stored = stored_records()
    seals = {seal.sequence: seal for seal in AuditSeal.objects.all()}
    for row in rows:
        sequence = row["_sequence"]
        assert {key: row[key] for key in export.RECORD_FIELDS} == stored[sequence]
        assert (row["_hash"], row["_prev_hash"]) == (seals[sequence].hash, seals[sequence].prev_hash)
        assert row["_format"] == chain.FORMAT == 2
        record_ = {k: row[k] for k in export.RECORD_FIELDS}
        assert chain.seal_hash(2, row["_prev_hash"], sequence, record_) == row["_hash"]
    decision = next(row for row in rows if row["kind"] == "routing.decision")
    assert decision["occurred_at"].endswith("Z")
    assert isinstance(decision["data"], dict)
    assert decision["actor_ip"] is None


def test_csv_export_round_trips_every_value_exactly(sealed: list[AuditEvent], tmp_path: Path) -> None:
    text = b"".join(export.stream("csv", export.ExportFilters())).decode()
    reader = csv.reader(io.StringIO(text, newline=""))
    assert next(reader) == export.COLUMNS

    target = tmp_path / "log.csv"
    target.write_bytes(text.encode())
    rows = list(verify.read_csv(target))
    stored = stored_records()
    assert [row.sequence for row in rows] == sorted(stored)
    for row in rows:
        assert row.record == stored[row.sequence]
    by_kind = {row.record["kind"]: row.record for row in rows}
    assert by_kind["policy.submitted"]["actor_ip"] is None
    assert by_kind["policy.submitted"]["before"] is None
    assert by_kind["registry.modelversion.changed"]["actor_ip"] == "203.0.113.7"
    assert by_kind["test.json"]["before"] == {}
    assert by_kind["routing.outcome"]["data"] == "plain JSON string"
    assert by_kind["routing.decision"]["policy_version"] == 3


def test_only_sealed_events_are_exported(sealed: list[AuditEvent]) -> None:
    record_event("test.unsealed")
    assert len(jsonl_rows(export.ExportFilters())) == len(sealed)


@pytest.mark.parametrize(
    ("params", "kinds"),
    [
        ({"kind": "routing.decision"}, ["routing.decision"]),
        ({"application_name": "billing"}, ["routing.decision", "routing.outcome"]),
        ({"model_version_id": "99", "kind": "routing.outcome"}, ["routing.outcome"]),
        ({"classification": "pii"}, ["routing.decision", "routing.outcome"]),
        ({"sequence_from": "2", "sequence_to": "3"}, ["policy.submitted", "test.json"]),
        ({"until": "2000-01-01T00:00:00Z"}, []),
        ({"since": "2000-01-01T00:00:00"}, None),  # everything
    ],
)
def test_filters_select_events(sealed: list[AuditEvent], params: dict[str, str], kinds: list[str] | None) -> None:
    filters = export.ExportFilters.from_params(params)
    rows = jsonl_rows(filters)
    assert [row["kind"] for row in rows] == (kinds if kinds is not None else [e.kind for e in sealed])


def test_bad_filter_names_the_parameter() -> None:
    with pytest.raises(ValueError, match="since"):
        export.ExportFilters.from_params({"since": "yesterday"})
    with pytest.raises(ValueError, match="sequence_from"):
        export.ExportFilters.from_params({"sequence_from": "-1"})


def test_write_export_writes_file_manifest_and_audits_itself(sealed: list[AuditEvent], tmp_path: Path) -> None:
    target = tmp_path / "log.jsonl"
    filters = export.ExportFilters(kind="routing.decision", since=timezone.now() - datetime.timedelta(days=1))
    manifest = export.write_export(target, "jsonl", filters)

    assert json.loads(export.manifest_path(target).read_text()) == manifest
    decision = AuditSeal.objects.get(event__kind="routing.decision")
    assert manifest["rows"] == 1
    assert (manifest["first_sequence"], manifest["first_hash"]) == (decision.sequence, decision.hash)
    assert (manifest["last_sequence"], manifest["last_hash"]) == (decision.sequence, decision.hash)
    assert manifest["sha256"] == verify.file_sha256(target)
    assert manifest["filters"]["kind"] == "routing.decision"
    assert manifest["filters"]["since"].endswith("Z")
    audited = AuditEvent.objects.get(kind="audit.exported")
    assert audited.after == {"format": "jsonl", "filters": manifest["filters"]}
    assert "kind=routing.decision" in audited.reason


def test_manifest_carries_the_covering_checkpoint(
    sealed: list[AuditEvent], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    last = AuditSeal.objects.order_by("-sequence").first()
    assert last is not None
    checkpoint = types.SimpleNamespace(
        sequence=last.sequence, hash=last.hash, count=last.sequence, created_at="2025-01-01T00:00:00Z",
        signature="ab" * 64, public_key="cd" * 32,
    )  # fmt: skip
    fake = types.ModuleType("audit.checkpoints")
    fake.covering = lambda sequence: checkpoint if sequence == last.sequence else None  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "audit.checkpoints", fake)

    manifest = export.write_export(tmp_path / "log.csv", "csv", export.ExportFilters())
    assert manifest["checkpoint"] == {
        "sequence": last.sequence,
        "hash": last.hash,
        "count": last.sequence,
        "created_at": "2025-01-01T00:00:00Z",
        "signature": "ab" * 64,
        "public_key": "cd" * 32,
    }


def test_export_streams_in_constant_memory() -> None:
    now = timezone.now()
    AuditEvent.objects.bulk_create(
        AuditEvent(
            occurred_at=now,
            kind="routing.decision",
            actor_name="app:load",
            application_id=1,
            application_name="load",
            model_version_id=5,
            classification="internal",
            data={"request": {"tokens": i, "note": "x" * 200}, "fallbacks": [1, 2, 3]},
        )
        for i in range(20_000)
    )
    assert seal_all() == 20_000

    tracemalloc.start()
    try:
        count = size = 0
        for chunk in export.stream("csv", export.ExportFilters()):
            count += chunk.count(b"\n")  # no value here holds a line break
            size += len(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 20_001  # the header and every event
    assert size > 20 * 1024 * 1024 / 4  # the file is several MB: holding it all would show in the peak
    assert peak < 20 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"


@pytest.fixture
def as_user() -> Iterator[Any]:
    def client_for(user: User) -> Client:
        client = Client()
        client.force_login(user)
        return client

    yield client_for


@pytest.mark.urls(__name__)
@pytest.mark.parametrize(
    ("role", "status"), [("administrator", 200), ("auditor", 200), ("reviewer", 403), ("none", 403)]
)
def test_download_is_for_administrators_and_auditors(
    sealed: list[AuditEvent], personas: dict[str, User], as_user: Any, role: str, status: int
) -> None:
    client = as_user(personas[role])
    for url in ("/audit/export/?format=csv", "/audit/export/manifest/?format=csv"):
        response = client.get(url)
        assert response.status_code == status, url
    if status == 403:
        assert not AuditEvent.objects.filter(kind="audit.exported").exists()


@pytest.mark.urls(__name__)
def test_download_streams_and_is_audited(sealed: list[AuditEvent], auditor: User, as_user: Any) -> None:
    client = as_user(auditor)
    response = client.get("/audit/export/", {"format": "jsonl", "kind": "routing.decision"})

    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"].startswith("application/x-ndjson")
    last = AuditSeal.objects.order_by("-sequence").first()
    assert last is not None
    assert response["X-Audit-Sequence-To"] == str(last.sequence)
    body = b"".join(response.streaming_content)
    assert [json.loads(line)["kind"] for line in body.splitlines()] == ["routing.decision"]

    audited = AuditEvent.objects.get(kind="audit.exported")
    assert audited.actor_name == "audrey"
    assert audited.after == {"format": "jsonl", "filters": {"kind": "routing.decision", "sequence_to": last.sequence}}

    # Asked with the pinned end, the manifest describes these very bytes, even after more events.
    record_event("test.later")
    seal_all()
    manifest = client.get(
        "/audit/export/manifest/", {"format": "jsonl", "kind": "routing.decision", "sequence_to": last.sequence}
    ).json()
    assert manifest["rows"] == 1
    assert manifest["sha256"] == hashlib.sha256(body).hexdigest()


@pytest.mark.urls(__name__)
def test_download_rejects_bad_parameters(auditor: User, as_user: Any) -> None:
    client = as_user(auditor)
    assert client.get("/audit/export/", {"format": "xml"}).status_code == 400
    response = client.get("/audit/export/", {"since": "soon"})
    assert response.status_code == 400
    assert b"since" in response.content
    assert not AuditEvent.objects.filter(kind="audit.exported").exists()


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("format", export.FORMATS)
def test_a_long_export_rendered_in_two_halves_is_the_same_file(format: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for _ in range(8):
        mixed_events()
    seal_all()
    filters = export.ExportFilters(sequence_from=3)
    whole_summary = export.Summary()
    whole = b"".join(export.stream(format, filters, whole_summary))
    monkeypatch.setattr(export, "PARALLEL_MIN", 5)
    assert export._halves(filters) is not None
    halves_summary = export.Summary()
    halves = b"".join(export.stream(format, filters, halves_summary))
    assert len(halves.splitlines()) == len(whole.splitlines()), (halves.count(b"\n"), whole.count(b"\n"))
    assert halves == whole

    def ends(summary: export.Summary) -> tuple[Any, ...]:
        return (summary.rows, summary.first_sequence, summary.first_hash, summary.last_sequence, summary.last_hash)

    last = AuditSeal.objects.get(sequence=40)
    assert ends(halves_summary) == ends(whole_summary) == (38, 3, AuditSeal.objects.get(sequence=3).hash, 40, last.hash)
    assert halves_summary.sha256.hexdigest() == hashlib.sha256(whole).hexdigest()
