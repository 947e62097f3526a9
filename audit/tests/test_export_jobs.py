"""Large exports as background jobs, and exports that match what the audit log page lists."""

import json
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.http import StreamingHttpResponse
from django.test import Client
from django.urls import reverse

from audit import verify
from audit.models import ExportJob
from audit.sealing import seal_all
from audit.services import record_event
from registry.tests.test_tasks import wait_for


def sealed_events(count: int, application: str = "support") -> None:
    from audit.models import AuditEvent

    for i in range(count):
        event = record_event("routing.decision", reason=f"decision {i}")
        AuditEvent.objects.filter(pk=event.pk).update(application_name=application)  # test database: maintenance on
    seal_all()


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.django_db
def test_a_small_export_streams_at_once(auditor: User) -> None:
    sealed_events(3)
    response = client_for(auditor).post(reverse("audit-export-jobs"), {"format": "jsonl"})
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("audit-export") + "?")
    assert not ExportJob.objects.exists()


def test_a_large_export_is_written_by_a_worker_and_verifies(
    task_runner: str, auditor: User, settings: Any, tmp_path: Path
) -> None:
    settings.AUDIT_EXPORT_INLINE_LIMIT = 2
    settings.AUDIT_EXPORT_DIR = tmp_path
    sealed_events(4, application="support")
    sealed_events(2, application="triage")
    client = client_for(auditor)
    response = client.post(reverse("audit-export-jobs"), {"format": "csv", "application": "support"})
    assert response.status_code == 302
    job = ExportJob.objects.get()
    assert (job.rows_total, job.requested_by_name, job.filters) == (4, "audrey", {"application_name": "support"})
    assert wait_for(lambda: ExportJob.objects.get(pk=job.pk).status == "done"), task_runner
    job.refresh_from_db()
    assert (job.rows_done, job.percent, job.manifest["rows"]) == (4, 100, 4)

    page = client.get(reverse("audit-export-jobs")).content.decode()
    assert "4 of 4 rows" in page
    file = client.get(reverse("audit-export-job-file", args=[job.pk, "file"]))
    manifest = client.get(reverse("audit-export-job-file", args=[job.pk, "manifest"]))
    assert isinstance(file, StreamingHttpResponse) and isinstance(manifest, StreamingHttpResponse)
    exported = tmp_path / "download.csv"
    exported.write_bytes(b"".join(file.streaming_content))
    manifest_path = tmp_path / "download.csv.manifest.json"
    manifest_path.write_bytes(b"".join(manifest.streaming_content))
    assert json.loads(manifest_path.read_text())["rows"] == 4
    assert verify.main([str(exported), "--manifest", str(manifest_path)]) == 0


@pytest.mark.django_db
def test_the_export_understands_the_audit_log_pages_filters(auditor: User) -> None:
    sealed_events(2, application="support")
    sealed_events(3, application="triage")
    response = client_for(auditor).get(reverse("audit-export") + "?format=jsonl&application=TRIAGE")
    assert isinstance(response, StreamingHttpResponse)
    rows = [json.loads(line) for line in b"".join(response.streaming_content).splitlines()]
    assert len(rows) == 3 and {row["application_name"] for row in rows} == {"triage"}
    bad = client_for(auditor).get(reverse("audit-export") + "?decision_id=nope")
    assert bad.status_code == 400 and b"decision_id" in bad.content


@pytest.mark.django_db
def test_reviewers_cannot_export(reviewer: User) -> None:
    assert client_for(reviewer).get(reverse("audit-export-jobs")).status_code == 403
    assert client_for(reviewer).post(reverse("audit-export-jobs"), {"format": "csv"}).status_code == 403


@pytest.mark.django_db
def test_applications_cannot_export_with_their_key(vocabulary: Any) -> None:
    from audit.models import AuditEvent
    from policies.services import generate_key
    from policies.tests.factories import make_app

    sealed_events(2)
    _, key = generate_key(make_app(), name="app")
    client = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
    for url in (reverse("audit-export") + "?format=csv", reverse("audit-export-jobs"), "/api/v1/audit/events"):
        response = client.get(url)
        assert response.status_code in (302, 401), url
        assert b"routing.decision" not in b"".join(getattr(response, "streaming_content", [response.content])), url
    assert not AuditEvent.objects.filter(kind="audit.exported").exists()
