"""Routing benchmark: the engine alone, then end to end through gunicorn and PostgreSQL.

    .venv/bin/python bench/route.py [--duration 10] [--workers 4] [--threads 2]

Builds a portfolio of 200 model versions and a 50-rule policy in a database of its own
(``switchboard_bench`` on the local PostgreSQL, dropped and made anew), then prints:

- engine only: microseconds per decision over 20,000 varied requests;
- end to end: gunicorn serving ``POST /api/v1/route`` with every decision stored, driven by wrk
  (``apt-get install wrk``) at concurrency 1, 8 and 32: decisions/s, p50 and p99 latency, and a
  check that every 2xx answer left its audit row.

Goals (issue 3): engine under 50 µs; at concurrency 32, 1,200 decisions/s with p99 under 30 ms.
"""

import argparse
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from decimal import Decimal
from pathlib import Path
from typing import Any

from benchdb import fresh_database

ROOT = Path(__file__).resolve().parents[1]
BENCH_DB = "switchboard_bench"
PORT = 8765
CLASSES = ["public", "internal", "confidential", "pii", "phi"]
TASKS = ["reasoning", "code", "summarization", "classification", "extraction", "creative", "multilingual"]
TIERS = ["economy", "workhorse", "frontier"]


def configure(database_url: str) -> dict[str, str]:
    env = {
        "DJANGO_SETTINGS_MODULE": "console.settings",
        "SECRET_KEY": "benchmark-only-secret-key-not-for-production-0123456789",
        "DATABASE_URL": database_url,
        "DATABASE_CONN_MAX_AGE": "60",
        "DEBUG": "false",
        "SECURE_SSL_REDIRECT": "false",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "ROUTING_SNAPSHOT_TTL_SECONDS": "1",
        "LOG_LEVEL": "WARNING",
        "WHITENOISE_AUTOREFRESH": "false",
    }
    os.environ.update(env)
    return env


def build_portfolio(rng: random.Random) -> str:
    """200 versions, a compliance matrix, a 50-rule active policy, one application; returns its key."""
    from django.contrib.auth.models import Group, User
    from django.core.management import call_command

    from policies import document, services
    from policies.models import Application, Policy, PolicyVersion, Team
    from registry.models import (
        Capability,
        ComplianceCell,
        DataClassification,
        Lifecycle,
        Model,
        ModelVersion,
        Provider,
        Region,
    )

    call_command("migrate", verbosity=0)
    regions = [Region.objects.create(slug=slug, name=slug.upper()) for slug in ("eu", "us")]
    for slug in TASKS:
        Capability.objects.create(slug=slug, name=slug.title())
    classes = {
        slug: DataClassification.objects.create(slug=slug, name=slug.upper(), sensitivity=10 * (i + 1))
        for i, slug in enumerate(CLASSES)
    }
    versions = []
    for p in range(10):
        provider = Provider.objects.create(name=f"Provider {p}", slug=f"p{p}", kind="openai_compatible")
        provider.regions.set(regions)
        for m in range(4):
            model = Model.objects.create(
                provider=provider, name=f"Model {p}.{m}", slug=f"m{m}", tier=TIERS[(p + m) % 3]
            )
            for v in range(5):
                versions.append(
                    ModelVersion(
                        model=model,
                        label=f"v{v}",
                        api_model_id=f"p{p}-m{m}-v{v}",
                        context_window=rng.choice([32_000, 128_000, 200_000]),
                        input_cost_per_mtok=Decimal(rng.randint(5, 1500)) / 100,
                        output_cost_per_mtok=Decimal(rng.randint(20, 6000)) / 100,
                        typical_latency_ms=rng.randint(150, 4000),
                        quality_scores={task: rng.randint(40, 99) for task in TASKS},
                        lifecycle=rng.choice([Lifecycle.APPROVED] * 8 + [Lifecycle.DEPRECATED, Lifecycle.RETIRED]),
                    )
                )
    versions = ModelVersion.objects.bulk_create(versions)
    through = ModelVersion.regions.through
    through.objects.bulk_create(
        through(modelversion_id=version.pk, region_id=region.pk) for version in versions for region in regions
    )
    cells = []
    for version in versions:
        for slug, share in (("public", 1.0), ("internal", 0.95), ("confidential", 0.6), ("pii", 0.4), ("phi", 0.1)):
            if rng.random() < share:
                cells.append(
                    ComplianceCell(
                        model_version=version,
                        classification=classes[slug],
                        decision="approved",
                        evidence="benchmark",
                        decided_by_name="bench",
                        revision=1,
                    )
                )
    ComplianceCell.objects.bulk_create(cells)
    refs = [f"p{i // 20}/m{(i // 5) % 4}/v{i % 5}" for i in range(200)]

    def action(i: int) -> dict[str, Any]:
        kind = i % 5
        if kind == 0:
            return {"pinned": rng.choice(refs)}
        if kind == 1:
            return {"tier": TIERS[i % 3]}
        if kind == 2:
            return {"cheapest": {"min_quality": rng.randint(60, 85)}}
        if kind == 3:
            return {"fastest": {"max_cost_usd": 0.05}}
        return {
            "split": [{"model_version": a, "weight": 70} for a in [rng.choice(refs)]]
            + [{"model_version": b, "weight": 30} for b in [rng.choice(refs)]]
        }

    rules: list[dict[str, Any]] = []
    for i in range(49):
        task = TASKS[i % len(TASKS)]
        klass = CLASSES[(i // len(TASKS)) % len(CLASSES)]
        complexity = ["low", "medium", "high"][(i // 35) % 3]
        rules.append(
            {
                "name": f"rule-{i}",
                "match": {"task_types": [task], "classifications": [klass], "complexity": [complexity]},
                "action": action(i),
                "fallbacks": rng.sample(refs, 3),
            }
        )
    rules.append(
        {"name": "everything-else", "action": {"cheapest": {"min_quality": 50}}, "fallbacks": rng.sample(refs, 3)}
    )
    for rule in rules:  # splits must name two different versions
        split = rule["action"].get("split")
        if split and split[0]["model_version"] == split[1]["model_version"]:
            split[1]["model_version"] = refs[(refs.index(split[0]["model_version"]) + 1) % 200]
    doc = document.check({"rules": rules}, services.catalog())
    author = User.objects.create_user("bench-admin")
    author.groups.add(Group.objects.get(name="administrator"))
    policy = Policy.objects.create(name="Bench", slug="bench")
    PolicyVersion.objects.create(policy=policy, number=1, state="active", document=doc, author_name=author.username)
    team = Team.objects.create(name="Bench team", slug="bench-team", monthly_budget_usd=100000)
    app = Application.objects.create(name="Bench app", slug="bench-app", team=team, policy=policy)
    app.allowed_classifications.set(classes.values())
    _, key = services.generate_key(app, name="bench")
    return key


def bodies(rng: random.Random, count: int) -> list[dict[str, Any]]:
    return [
        {
            "task_type": rng.choice(TASKS),
            "data_classification": rng.choice(CLASSES),
            "complexity": rng.choice(["low", "medium", "high"]),
            "region": rng.choice(["eu", "us"]),
            "input_tokens": rng.randint(100, 20_000),
            "max_output_tokens": rng.randint(100, 4_000),
        }
        for _ in range(count)
    ]


def bench_engine(rng: random.Random) -> tuple[float, int]:
    from django.utils import timezone

    from policies import engine
    from policies.snapshot import compile_snapshot

    snapshot = compile_snapshot()
    app = next(iter(snapshot.keys.values())).app
    requests = [
        engine.Request(
            app=app,
            task_type=b["task_type"],
            classification=b["data_classification"],
            region=b["region"],
            complexity=b["complexity"],
            input_tokens=b["input_tokens"],
            max_output_tokens=b["max_output_tokens"],
            request_id=f"r{i}",
        )
        for i, b in enumerate(bodies(rng, 20_000))
    ]
    today = timezone.localdate()
    timings = []
    for _ in range(5):
        start = time.perf_counter()
        results = [engine.decide(snapshot, request, today) for request in requests]
        timings.append((time.perf_counter() - start) / len(requests) * 1e6)
    refused = sum(isinstance(result, engine.Refusal) for result in results)
    return statistics.median(timings), refused


WRK_SCRIPT = """
local bodies = {BODIES}
local key = "{KEY}"
request = function()
  return wrk.format("POST", "/api/v1/route", {{["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. key}}, bodies[math.random(#bodies)])
end
done = function(summary, latency, requests)
  io.write(string.format("NON2XX %d\\n", summary.errors.status))
  io.write(string.format("P50 %.3f\\nP99 %.3f\\n", latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
"""


def lua_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def run_wrk(script: Path, connections: int, duration: int) -> dict[str, float]:
    threads = min(connections, 2)
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "-s", str(script), f"http://127.0.0.1:{PORT}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    return {
        "requests": total,
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "p50": float(re.search(r"P50 ([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "p99": float(re.search(r"P99 ([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "non2xx": int(re.search(r"NON2XX (\d+)", out).group(1)),  # type: ignore[union-attr]
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10, help="seconds per concurrency level")
    parser.add_argument("--workers", type=int, default=3, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed for the end-to-end part: apt-get install wrk")

    sys.path.insert(0, str(ROOT))
    env = configure(f"postgres://postgres@127.0.0.1:5432/{BENCH_DB}")
    fresh_database(BENCH_DB)
    import django

    django.setup()
    rng = random.Random(42)
    started = time.perf_counter()
    key = build_portfolio(rng)
    print(f"portfolio: 200 model versions, 50 rules, built in {time.perf_counter() - started:.1f} s")

    micros, refused = bench_engine(rng)
    print(f"engine only: {micros:.1f} µs per decision (20,000 varied requests; {refused} refused, fail closed)")

    from django.db import connections

    from audit.models import AuditEvent

    connections.close_all()
    gunicorn = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("gunicorn")),
            "console.wsgi:application",
            "--bind",
            f"127.0.0.1:{PORT}",
            "--workers",
            str(args.workers),
            "--worker-class",
            "gthread",
            "--threads",
            str(args.threads),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env={**os.environ, **env},
    )
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{PORT}/health/", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        with tempfile.TemporaryDirectory() as tmp:
            script = Path(tmp) / "route.lua"
            table = "{" + ", ".join(lua_string(json.dumps(b)) for b in bodies(rng, 200)) + "}"
            script.write_text(WRK_SCRIPT.format(BODIES=table, KEY=key))
            run_wrk(script, 8, 2)  # warm every worker's snapshot and connection
            print(
                f"end to end: gunicorn {args.workers} workers × {args.threads} threads, "
                "PostgreSQL, every decision stored"
            )
            print(f"{'concurrency':>11} {'decisions/s':>12} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8} {'rows ok':>8}")
            for connections_count in (1, 8, 32):
                before = AuditEvent.objects.filter(kind__startswith="routing.").count()
                result = run_wrk(script, connections_count, args.duration)
                stored = AuditEvent.objects.filter(kind__startswith="routing.").count() - before
                ok = "yes" if stored >= result["requests"] else f"{stored}/{result['requests']:.0f}"
                print(
                    f"{connections_count:>11} {result['rps']:>12.0f} {result['p50']:>8.2f} {result['p99']:>8.2f} "
                    f"{result['non2xx']:>8} {ok:>8}"
                )
                connections.close_all()
    finally:
        gunicorn.terminate()
        gunicorn.wait(timeout=20)


if __name__ == "__main__":
    main()
