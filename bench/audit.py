"""Audit ledger benchmark on PostgreSQL.

    .venv/bin/python bench/audit.py [--events 1000000]

Loads routing-shaped events into a database of its own (``switchboard_audit_bench``, dropped and
made anew) with COPY, then prints: sealing throughput (events/s), ``verify_audit`` throughput
(events/s), export throughput for JSONL and CSV with the exporting process's peak memory, and
the time of the auditor page's first filtered page.

Goals (issue 4): export at least 100,000 rows/s under 200 MB; verification at least 200,000
events/s; a filtered page under 200 ms.
"""

import argparse
import datetime
import json
import random
import resource
import subprocess
import sys
import time
import uuid

from benchdb import configure, fresh_database

BENCH_DB = "switchboard_audit_bench"
APPS = ["support-assistant", "ticket-triage", "trial-summarizer"]
MODELS = [f"p{p}/m{m}/v{v}" for p in range(4) for m in range(3) for v in range(2)]


def load_events(count: int, rng: random.Random) -> float:
    """COPY ``count`` decision events in; returns seconds."""
    from django.db import connection

    from audit.models import AuditEvent

    fields = [f for f in AuditEvent._meta.concrete_fields if not f.primary_key]
    columns = ", ".join(f.column for f in fields if f.column is not None)
    start = time.perf_counter()
    base = datetime.datetime(2026, 10, 1, tzinfo=datetime.UTC)
    with (
        connection.cursor() as cursor,
        cursor.connection.cursor().copy(f"COPY audit_auditevent ({columns}) FROM STDIN") as copy,
    ):
        for i in range(count):
            app = rng.choice(APPS)
            model = rng.choice(MODELS)
            values = {
                "occurred_at": base + datetime.timedelta(seconds=i * 2.5),
                "kind": "routing.decision",
                "actor_id": None,
                "actor_name": f"app:{app}",
                "actor_ip": "10.0.0.1",
                "user_agent": "bench",
                "request_id": f"r{i}",
                "object_type": "",
                "object_id": "",
                "object_repr": "",
                "before": None,
                "after": None,
                "reason": "",
                "decision_id": str(uuid.UUID(int=rng.getrandbits(128))),
                "application_id": APPS.index(app) + 1,
                "application_name": app,
                "team_name": "Care",
                "policy_slug": "customer-care",
                "policy_version": 1,
                "rule": "everything-else",
                "compliance_revision": 65,
                "model_version_id": MODELS.index(model) + 1,
                "model_version_name": model,
                "classification": rng.choice(["public", "internal", "pii"]),
                "region": "eu",
                "task_type": "summarization",
                "data": json.dumps({"request": {"input_tokens": rng.randint(100, 9000)}, "estimated_cost_usd": 0.0123}),
                "schema_version": 1,
            }
            row = []
            for field in fields:
                value = values[field.attname]
                row.append(
                    json.dumps(value)
                    if value is not None and field.get_internal_type() == "JSONField" and not isinstance(value, str)
                    else value
                )
            copy.write_row(row)
    return time.perf_counter() - start


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--export", choices=["jsonl", "csv"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.export:
        export_only(args.export)
        return
    configure(BENCH_DB)
    fresh_database(BENCH_DB)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from django.db import connection

    with connection.cursor() as cursor:  # loading and sealing are maintenance, not application writes
        cursor.execute("SET switchboard.audit_maintenance = 'on'")
    rng = random.Random(4)
    seconds = load_events(args.events, rng)
    print(f"loaded {args.events:,} events with COPY in {seconds:.1f} s")

    from audit.sealing import seal_all
    from audit.verification import verify

    start = time.perf_counter()
    sealed = seal_all()
    seconds = time.perf_counter() - start
    print(f"sealing: {sealed:,} events in {seconds:.1f} s = {sealed / seconds:,.0f} events/s")
    with connection.cursor() as cursor:  # as autovacuum would, so the planner knows the new rows
        cursor.execute("ANALYZE")

    start = time.perf_counter()
    result = verify()
    seconds = time.perf_counter() - start
    print(
        f"verify_audit: {result.checked:,} events in {seconds:.1f} s = {result.checked / seconds:,.0f} events/s "
        f"({'intact' if result.intact else result.problem})"
    )
    print(f"peak memory of this process so far: {peak_rss_mb():.0f} MB")
    connection.close()
    for format in ("jsonl", "csv"):
        # A process of its own, so its peak memory is the export's alone.
        out = subprocess.run(
            [sys.executable, __file__, "--export", format], capture_output=True, text=True, check=True
        ).stdout
        print(out.strip())
    print(first_filtered_page())


def export_only(format: str) -> None:
    """Stream the whole ledger as ``format`` to nowhere; print rows/s and this process's peak memory."""
    configure(BENCH_DB)
    import django

    django.setup()
    from audit.export import ExportFilters, Summary, stream

    summary = Summary()
    start = time.perf_counter()
    size = sum(len(chunk) for chunk in stream(format, ExportFilters(), summary))
    seconds = time.perf_counter() - start
    print(
        f"export {format}: {summary.rows:,} rows, {size / 1e6:,.0f} MB in {seconds:.1f} s = "
        f"{summary.rows / seconds:,.0f} rows/s; peak memory of the exporting process {peak_rss_mb():.0f} MB"
    )


def first_filtered_page() -> str:
    """The auditor's log filtered by application and model version, timed through Django."""
    from django.contrib.auth.models import Group, User
    from django.core.management import call_command
    from django.test import Client

    call_command("collectstatic", interactive=False, verbosity=0)  # pages need the static manifest
    auditor = User.objects.create_user("bench-auditor")
    auditor.groups.add(Group.objects.get(name="auditor"))
    client = Client()
    client.force_login(auditor)
    url = f"/audit/?application={APPS[1]}&model_version=3"
    client.get(url)  # warm the connection and the templates
    timings = []
    for _ in range(5):
        start = time.perf_counter()
        response = client.get(url)
        timings.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200
    return f"first filtered page of the audit log: {min(timings):.0f} ms best, {max(timings):.0f} ms worst of 5"


if __name__ == "__main__":
    main()
