"""What quotas and budgets cost the routing endpoint: µs per POST /api/v1/route, sequentially.

    .venv/bin/python bench/budgets.py [--requests 2000] [--rounds 5] [--database-url postgres://...]

Builds a small portfolio in the given database (default: the local PostgreSQL database
``sb_budgets``; it is flushed first), then times ``--requests`` sequential routing requests
through Django's test client (the whole request: middleware, view, engine, counters, the audit
insert; no HTTP) for each way of counting, the variants interleaved round by round (in a different order
each round) so that a busy machine disturbs them alike:

- no counters: the hot path as it was before budgets (engine, then the plain audit INSERT);
- ``database`` / ``redis``: ``ROUTING_COUNTERS_URL`` unset, or Redis database 12;
- ``team budget``: the team's budget only (always there), or ``quota + budgets``: a
  requests-per-minute quota and an application budget too.

``--baseline`` runs the code of an export of an older commit (``--root``) with no variants, to
check that "no counters" is a fair stand-in for it.
"""

import argparse
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/sb_budgets"
BENCH_REDIS = "redis://127.0.0.1:6379/12"
BODY = {"task_type": "code", "data_classification": "internal", "input_tokens": 800, "max_output_tokens": 400}


def setup(root: Path, database_url: str) -> None:
    sys.path.insert(0, str(root))
    os.chdir(root)
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "console.settings",
            "SECRET_KEY": "benchmark-only-secret-key-not-for-production-0123456789",
            "DATABASE_URL": database_url,
            "DEBUG": "false",
            "SECURE_SSL_REDIRECT": "false",
            "ALLOWED_HOSTS": "testserver,127.0.0.1",
            "ROUTING_SNAPSHOT_TTL_SECONDS": "1",
            "LOG_LEVEL": "WARNING",
        }
    )
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET switchboard.audit_maintenance = 'on'")  # flush empties the audit log too
    else:
        with connection.cursor() as cursor:
            cursor.execute("UPDATE audit_maintenance SET allowed = 1")
    call_command("flush", interactive=False, verbosity=0)


def build() -> tuple[Any, str]:
    """One application on a two-rule policy over six versions; returns it and its key."""
    from decimal import Decimal

    from django.contrib.auth.models import User

    from policies import services
    from policies.models import Application, Team
    from registry import services as registry_services
    from registry.models import Capability, DataClassification, Model, ModelVersion, Provider, Region

    author = User.objects.create_user("bench-author")
    approver = User.objects.create_user("bench-reviewer")
    region = Region.objects.create(slug="eu", name="EU")
    Capability.objects.create(slug="code", name="Code")
    internal = DataClassification.objects.create(slug="internal", name="Internal", sensitivity=20)
    provider = Provider.objects.create(
        name="Acme", slug="acme", kind=Provider.Kind.OPENAI_COMPATIBLE, base_url="https://x.test", credentials_env="K"
    )
    refs = []
    for n, tier in enumerate(["economy", "economy", "workhorse", "workhorse", "frontier", "frontier"]):
        model = Model.objects.create(provider=provider, name=f"M{n}", slug=f"m{n}", family="f", tier=tier)
        version = registry_services.create_version(
            data={
                "model": model,
                "label": "1",
                "api_model_id": f"m{n}",
                "context_window": 128_000,
                "input_cost_per_mtok": Decimal(n + 1),
                "output_cost_per_mtok": Decimal(4 * (n + 1)),
                "typical_latency_ms": 900 - n * 50,
                "quality_scores": {"code": 60 + n * 5},
            },
            regions=[region],
        )
        version = registry_services.transition_version(version, to="approved")
        registry_services.set_compliance(
            model_version=version, classification=internal, decision="approved", reason="bench", evidence="bench"
        )
        refs.append(services.version_ref(version))
    document = {
        "rules": [
            {"name": "hard", "match": {"complexity": ["high"]}, "action": {"tier": "frontier"}},
            {"name": "default", "action": {"cheapest": {"min_quality": 70}}, "fallbacks": [refs[-1]]},
        ]
    }
    policy_version = services.create_policy(name="Bench", slug="bench", document=document, actor=author)
    policy_version = services.submit(policy_version, actor=author)
    services.review(policy_version, reviewer=approver, verdict="approve")
    team = Team.objects.create(name="Bench", slug="bench", monthly_budget_usd=Decimal("1000000"))
    app = Application.objects.create(name="Bench", slug="bench", team=team, policy=policy_version.policy)
    app.allowed_classifications.set([internal])
    registry_services.increment("routing_generation")
    _, key = services.generate_key(app, name="bench")
    assert ModelVersion.objects.count() == 6
    return app, key


def configure(app: Any, *, quota: bool) -> None:
    from policies.models import Application
    from registry import services as registry_services

    Application.objects.filter(pk=app.pk).update(
        requests_per_minute=10_000_000 if quota else None, monthly_budget_usd=1_000_000 if quota else None
    )
    registry_services.increment("routing_generation")


class NoCounters:
    """The hot path as it was before budgets: no counters, the plain audit insert. Benchmark only."""

    charges_in_check = False

    def check(self, window: Any, *, within: int, over: int) -> Any:
        from policies.counters import Usage

        return Usage(requests=0, team_spent=0, app_spent=0)

    def store(self, event: Any, window: Any, charge: int) -> None:
        from audit.services import insert

        insert(event)

    def refund(self, window: Any, charge: int) -> None:
        pass


VARIANTS = [
    ("no counters (as before budgets)", None, False),
    ("database counters, team budget", "database", False),
    ("database counters, quota + budgets", "database", True),
    ("redis counters, team budget", "redis", False),
    ("redis counters, quota + budgets", "redis", True),
]


def run(key: str, requests: int) -> tuple[float, float]:
    """µs per request over ``requests`` sequential routing calls, after a short warm-up: wall
    clock, and this process's CPU (the Python work, without the waits for the servers)."""
    import json

    from django.test import Client

    client = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
    body = json.dumps(BODY)
    for _ in range(50):  # the snapshot reloads after a switch; prepared statements, Redis's script
        assert client.post("/api/v1/route", body, content_type="application/json").status_code == 200
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(requests):
        response = client.post("/api/v1/route", body, content_type="application/json")
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    assert response.status_code == 200, response.content
    return elapsed / requests * 1e6, cpu / requests * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--baseline", action="store_true", help="code from before budgets: one line, no variants")
    args = parser.parse_args()
    setup(args.root, args.database_url)
    from django.db import connection

    app, key = build()
    print(f"{args.requests} sequential POST /api/v1/route on {connection.vendor}; {args.rounds} rounds, interleaved")
    if args.baseline:
        runs = [run(key, args.requests) for _ in range(args.rounds)]
        walls, cpus = [w for w, _ in runs], [c for _, c in runs]
        print(
            f"  {'baseline code':<36}median {statistics.median(walls):6.0f}  min {min(walls):6.0f} µs/request,"
            f" CPU {statistics.median(cpus):5.0f}"
        )
        return
    import redis

    from policies import counters

    client = redis.Redis.from_url(BENCH_REDIS)
    times: dict[str, list[tuple[float, float]]] = {label: [] for label, _, _ in VARIANTS}
    real = counters.get_counters
    for round_number in range(args.rounds):
        # A different order each round, so that whatever the machine does meanwhile (autovacuum,
        # checkpoints, other processes) does not always fall on the same variant.
        order = list(VARIANTS)
        random.Random(round_number).shuffle(order)
        for label, backend, quota in order:
            client.flushdb()
            configure(app, quota=quota)
            counters_for: Any = NoCounters()
            if backend == "database":
                counters_for = counters.DatabaseCounters()
            elif backend == "redis":
                counters_for = counters.RedisCounters(BENCH_REDIS)
            # The decision code asks this function for the backend; the benchmark chooses it.
            counters.get_counters = lambda chosen=counters_for: chosen  # type: ignore[misc]
            import policies.decisions

            policies.decisions.get_counters = counters.get_counters  # type: ignore[attr-defined]
            times[label].append(run(key, args.requests))
    counters.get_counters = real
    client.flushdb()
    base = statistics.median(wall for wall, _ in times[VARIANTS[0][0]])
    base_cpu = statistics.median(cpu for _, cpu in times[VARIANTS[0][0]])
    for label, values in times.items():
        median, cpu = statistics.median(w for w, _ in values), statistics.median(c for _, c in values)
        print(
            f"  {label:<36}median {median:6.0f}  min {min(w for w, _ in values):6.0f} µs/request"
            f" (+{median - base:4.0f}),  CPU {cpu:5.0f} (+{cpu - base_cpu:3.0f})"
        )
    statements(args.rounds)


def statements(rounds: int) -> None:
    """The counters' own statements, alone, interleaved: what a request pays for each."""
    import datetime
    import uuid

    from django.db import connection

    from audit.models import AuditEvent
    from audit.services import insert
    from policies.counters import DatabaseCounters, RedisCounters, Window

    database, redis_counters = DatabaseCounters(), RedisCounters(BENCH_REDIS)
    month = datetime.date.today().replace(day=1)
    team_only = Window(1, 1, 1, month, None, 10**12, None)
    everything = Window(1, 1, 1, month, 10**9, 10**12, 10**12)

    def event() -> AuditEvent:
        return AuditEvent(kind="routing.decision", actor_name="app:bench", decision_id=uuid.uuid4(), data={})

    def select_one() -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()

    operations: dict[str, Callable[[], object]] = {
        "SELECT 1 (a bare round trip)": select_one,
        "plain audit INSERT (before budgets)": lambda: insert(event()),
        "audit INSERT carrying the spend UPSERT": lambda: database.store(event(), team_only, 1234),
        "check: team spend read": lambda: database.check(team_only, within=0, over=0),
        "check: quota UPSERT + both spends": lambda: database.check(everything, within=0, over=0),
        "check: Redis script, quota + both": lambda: redis_counters.check(everything, within=10, over=0),
    }
    for operation in operations.values():
        for _ in range(100):
            operation()
    times: dict[str, list[float]] = {label: [] for label in operations}
    for _ in range(max(rounds, 5) * 2):
        for label, operation in operations.items():
            start = time.perf_counter()
            for _ in range(200):
                operation()
            times[label].append((time.perf_counter() - start) / 200 * 1e6)
    redis_counters.client.flushdb()
    print(f"Statements on {connection.vendor}, each alone, 200 calls a round, interleaved:")
    for label, values in times.items():
        print(f"  {label:<40}median {statistics.median(values):6.0f}  min {min(values):6.0f} µs")


if __name__ == "__main__":
    main()
