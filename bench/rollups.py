"""Usage rollup benchmark on PostgreSQL, and a database of rollups for timing the dashboard.

    .venv/bin/python bench/rollups.py [--hour-events 100000] [--events 10000000] [--days 90]

Works in a database of its own, ``switchboard_rollup_bench``, dropped and made anew, then left in
place for the dashboard's benchmark:

1. the demo portfolio (``seed_demo``: providers, versions, teams, applications, policies, users);
2. three hours of routing traffic, ``--hour-events`` events each (decisions, refusals and outcomes,
   decided by the real engine on the demo's policies), loaded with COPY; then prints how long
   ``rebuild()`` of the middle hour takes (goal, issue 5: under 2 s for 100,000 events) and the
   throughput of ``refresh()`` over everything;
3. the rollup rows ``--events`` events would produce over ``--days`` days up to now (about half
   decisions, half outcomes, a few refusals; a day and night rhythm), drawn from the same engine's
   routing mix and written straight into ``audit_usagerollup`` with COPY. The hours of step 2 keep
   their real rollups; the demo's own week of traffic is not rolled up (the watermark is past it,
   so beat would not overwrite the generated rows);
4. the daily rollups of every day, added up from those hourly rows by ``rebuild_days()`` (what the
   rollup job does for a day whenever it rebuilds one of its hours), timed.
"""

import argparse
import bisect
import collections
import datetime
import hashlib
import json
import math
import os
import random
import time
import uuid
from decimal import Decimal
from typing import Any

from benchdb import configure, fresh_database

BENCH_DB = "switchboard_rollup_bench"
TASKS = ("summarization", "classification", "extraction", "reasoning", "code", "creative")
TOKENS_IN = {"summarization": 6000, "classification": 800, "extraction": 2500, "reasoning": 4000, "code": 3000}
OUTPUT_CHOICES = (256, 512, 1024, 2048)
OUTCOME_SHARE = 0.95  # decisions whose application reports back
FALLBACK_SHARE = 0.03  # of outcomes, answered by the first fallback
FORBIDDEN_SHARE = 0.02  # requests with a classification the application may not send (403)
STATUSES = (("ok", 0.96), ("error", 0.03), ("timeout", 0.01))
TIMEOUT_MS = 30_000


class Traffic:
    """Requests like the demo's, decided by the real engine on the real snapshot (nothing stored)."""

    def __init__(self, rng: random.Random) -> None:
        from policies.snapshot import compile_snapshot

        self.rng = rng
        self.snapshot = compile_snapshot()
        self.apps = sorted(
            {key.app.slug: key.app for key in self.snapshot.keys.values()}.values(), key=lambda a: a.slug
        )
        self.classifications = sorted(self.snapshot.classifications)
        self.today = datetime.date.today()

    def request(self) -> tuple[Any, dict[str, Any]]:
        rng = self.rng
        app = rng.choice(self.apps)
        task = rng.choice(TASKS)
        allowed = sorted(app.classifications)
        classification = rng.choice(self.classifications if rng.random() < FORBIDDEN_SHARE else allowed)
        stored = {
            "task_type": task,
            "data_classification": classification,
            "region": rng.choice(["eu", "eu", "us"]),
            "complexity": rng.choice(["low", "low", "medium", "high"]),
            "input_tokens": max(50, int(rng.lognormvariate(math.log(TOKENS_IN.get(task, 1500)), 0.6))),
            "max_output_tokens": rng.choice(OUTPUT_CHOICES),
        }
        return app, stored

    def decide(self, app: Any, stored: dict[str, Any]) -> Any:
        from policies import engine

        wanted = engine.Request.from_body(app, stored, request_id=uuid.UUID(int=self.rng.getrandbits(128)).hex)
        return engine.decide(self.snapshot, wanted, self.today)

    def latency(self, version: Any) -> int:
        return min(TIMEOUT_MS, max(5, int(self.rng.lognormvariate(math.log(version.latency_ms or 800), 0.45))))

    def status(self) -> str:
        draw = self.rng.random()
        for status, share in STATUSES:
            if draw < share:
                return status
            draw -= share
        return "ok"


def event_rows(traffic: Traffic, start: datetime.datetime, count: int) -> list[dict[str, Any]]:
    """``count`` routing events whose decisions fall in the hour from ``start``, as the API stores them."""
    from policies import engine

    rng = traffic.rng
    rows: list[dict[str, Any]] = []
    while len(rows) < count:
        app, stored = traffic.request()
        at = start + datetime.timedelta(seconds=rng.random() * 3600)
        routed = traffic.decide(app, stored)
        decision_id = uuid.UUID(int=rng.getrandbits(128))
        common = {
            "occurred_at": at,
            "actor_name": f"app:{app.slug}",
            "decision_id": str(decision_id),
            "application_id": app.id,
            "application_name": app.name,
            "team_name": app.team_name,
            "classification": stored["data_classification"],
            "region": stored["region"],
            "task_type": stored["task_type"],
            "compliance_revision": traffic.snapshot.compliance_revision,
        }
        if isinstance(routed, engine.Refusal):
            policy = routed.policy
            rows.append(
                {
                    **common,
                    "kind": "routing.refused",
                    "policy_slug": policy.slug if policy else "",
                    "policy_version": policy.version if policy else None,
                    "rule": routed.rule.name if routed.rule else "",
                    "reason": routed.detail,
                    "data": {"request": stored, "response": {"detail": routed.detail}, "status": 422},
                }
            )
            continue
        attribution = {
            **common,
            "policy_slug": routed.policy.slug,
            "policy_version": routed.policy.version,
            "rule": routed.rule.name,
        }
        response = {
            "decision_id": str(decision_id),
            "model": {"model_version_id": routed.model.id},
            "fallbacks": [{"model_version_id": v.id} for v in routed.fallbacks],
            "reasons": list(routed.reasons),
            "estimated_cost_usd": round(routed.estimated_cost_usd, 6),
        }
        rows.append(
            {
                **attribution,
                "kind": "routing.decision",
                "model_version_id": routed.model.id,
                "model_version_name": routed.model.ref,
                "data": {"request": stored, "response": response},
            }
        )
        if rng.random() >= OUTCOME_SHARE:
            continue
        answered = routed.fallbacks[0] if routed.fallbacks and rng.random() < FALLBACK_SHARE else routed.model
        latency = traffic.latency(answered)
        status = traffic.status()
        tokens_in = stored["input_tokens"]
        tokens_out = 0 if status != "ok" else rng.randint(20, stored["max_output_tokens"])
        rows.append(
            {
                **attribution,
                "occurred_at": at + datetime.timedelta(milliseconds=latency + rng.randint(5, 120_000)),
                "kind": "routing.outcome",
                "model_version_id": answered.id,
                "model_version_name": answered.ref,
                "data": {
                    "status": status,
                    "input_tokens": tokens_in,
                    "output_tokens": tokens_out,
                    "latency_ms": TIMEOUT_MS if status == "timeout" else latency,
                    "output_sha256": hashlib.sha256(decision_id.bytes).hexdigest(),
                    "reported_cost_usd": round(answered.cost(tokens_in, tokens_out), 6),
                    "fallback_used": answered.id != routed.model.id,
                },
            }
        )
    return rows[:count]


def copy_events(rows: list[dict[str, Any]]) -> float:
    """COPY the events in; returns seconds."""
    from django.db import connection

    from audit.models import AuditEvent

    fields = [f for f in AuditEvent._meta.concrete_fields if not f.primary_key]
    columns = ", ".join(f.column for f in fields if f.column is not None)
    defaults: dict[str, Any] = {"actor_id": None, "actor_ip": "10.0.0.1", "user_agent": "bench", "request_id": ""}
    defaults |= {"object_type": "", "object_id": "", "object_repr": "", "before": None, "after": None}
    defaults |= {"reason": "", "model_version_id": None, "model_version_name": "", "schema_version": 1}
    start = time.perf_counter()
    with (
        connection.cursor() as cursor,
        cursor.connection.cursor().copy(f"COPY audit_auditevent ({columns}) FROM STDIN") as copy,
    ):
        for row in rows:
            values = defaults | row
            copy.write_row([json.dumps(values["data"]) if f.attname == "data" else values[f.attname] for f in fields])
    return time.perf_counter() - start


def time_rebuild(hour: datetime.datetime) -> None:
    from django.db import connection

    from audit.models import AuditEvent
    from audit.rollups import HOUR, rebuild

    decided = AuditEvent.objects.filter(
        kind__in=["routing.decision", "routing.refused"], occurred_at__gte=hour, occurred_at__lt=hour + HOUR
    )
    answered = AuditEvent.objects.filter(
        kind="routing.outcome",
        decision_id__in=decided.filter(kind="routing.decision").values("decision_id"),
    )
    events = decided.count() + answered.count()
    timings, rows = [], 0
    for _ in range(3):
        start = time.perf_counter()
        rows = rebuild(hour, hour + HOUR)
        timings.append(time.perf_counter() - start)
    best = min(timings)
    print(
        f"rebuild() of one hour: {events:,} events -> {rows:,} rollup rows in {best:.2f} s best "
        f"({max(timings):.2f} s worst of 3) = {events / best:,.0f} events/s (goal: under 2 s for 100,000)"
    )
    connection.close()


def time_refresh() -> None:
    from audit.models import AuditEvent
    from audit.rollups import refresh

    events = AuditEvent.objects.count()
    start = time.perf_counter()
    hours = refresh()
    seconds = time.perf_counter() - start
    print(
        f"refresh() from an empty watermark: {events:,} events, {hours} hours rebuilt in {seconds:.2f} s "
        f"= {events / seconds:,.0f} events/s"
    )


def hourly_events(total: int, hours: list[datetime.datetime], rng: random.Random) -> list[int]:
    """``total`` events spread over the hours: busy working days, quiet nights and weekends."""
    weights = []
    for hour in hours:
        daytime = 0.25 + math.exp(-(((hour.hour - 13) / 4.5) ** 2))
        weekend = 0.45 if hour.weekday() >= 5 else 1.0
        weights.append(daytime * weekend * rng.uniform(0.85, 1.15))
    scale = total / sum(weights)
    return [round(weight * scale) for weight in weights]


def routing_mix(
    traffic: Traffic, samples: int
) -> tuple[list[tuple[Any, ...]], list[float], dict[tuple[Any, ...], Any]]:
    """The keys decisions and refusals fall under, with their shares and what they carry, from the engine."""
    from policies import engine

    found: dict[tuple[Any, ...], dict[str, Any]] = {}
    for _ in range(samples):
        app, stored = traffic.request()
        routed = traffic.decide(app, stored)
        head = (app.name, app.team_name)
        tail = (stored["task_type"], stored["data_classification"])
        key: tuple[Any, ...]
        if isinstance(routed, engine.Refusal):
            key = (*head, routed.policy.slug if routed.policy else "", routed.rule.name if routed.rule else "")
            key = (*key, None, "", *tail)
            entry = found.setdefault(key, {"count": 0, "refused": True})
        else:
            key = (*head, routed.policy.slug, routed.rule.name, routed.model.id, routed.model.ref, *tail)
            entry = found.setdefault(key, {"count": 0, "refused": False, "cost": 0.0, "tokens": 0, "out": 0})
            entry["cost"] += routed.estimated_cost_usd
            entry["tokens"] += stored["input_tokens"]
            entry["out"] += stored["max_output_tokens"]
            entry.setdefault("fallback", routed.fallbacks[0] if routed.fallbacks else None)
            entry["model"] = routed.model
        entry["count"] += 1
    keys = sorted(found, key=lambda key: tuple("" if part is None else str(part) for part in key))
    return keys, [found[key]["count"] for key in keys], found


def generate_rollups(traffic: Traffic, total: int, days: int, skip: set[datetime.datetime]) -> tuple[int, float]:
    """COPY the rollup rows ``total`` events would make over ``days`` days to now; returns (rows, seconds)."""
    from django.db import connection

    from audit.models import UsageRollup
    from audit.rollups import HOUR, KEY, LATENCY_BUCKETS_MS, hour_of, merged_percentiles

    rng = traffic.rng
    end = hour_of(datetime.datetime.now(datetime.UTC))
    hours = [end - HOUR * back for back in range(days * 24, 0, -1)]
    keys, weights, mix = routing_mix(traffic, 40_000)
    refused_share = sum(w for key, w in zip(keys, weights, strict=True) if mix[key]["refused"]) / sum(weights)
    events_per_decision = 1 + OUTCOME_SHARE * (1 - refused_share)
    fields = [f for f in UsageRollup._meta.concrete_fields if not f.primary_key]
    columns = ", ".join(f.column for f in fields if f.column is not None)
    written, start = 0, time.perf_counter()
    with (
        connection.cursor() as cursor,
        cursor.connection.cursor().copy(f"COPY audit_usagerollup ({columns}) FROM STDIN") as copy,
    ):
        for hour, events in zip(hours, hourly_events(total, hours, rng), strict=True):
            if hour in skip:
                continue
            rows: dict[tuple[Any, ...], dict[str, Any]] = {}
            for key, count in collections.Counter(
                rng.choices(keys, weights, k=round(events / events_per_decision))
            ).items():
                entry = mix[key]
                row = rows.setdefault(key, {})
                if entry["refused"]:
                    row["refusals"] = count
                    continue
                samples = entry["count"]
                row["decisions"] = count
                row["estimated_cost_usd"] = Decimal(entry["cost"] / samples * count).quantize(Decimal("0.000001"))
                answered = sum(rng.random() < OUTCOME_SHARE for _ in range(count))
                moved = sum(rng.random() < FALLBACK_SHARE for _ in range(answered)) if entry["fallback"] else 0
                for version, outcomes in ((entry["model"], answered - moved), (entry["fallback"], moved)):
                    if not outcomes:
                        continue
                    target = rows.setdefault((*key[:4], version.id, version.ref, *key[6:]), {})
                    statuses = collections.Counter(traffic.status() for _ in range(outcomes))
                    tokens_in = round(entry["tokens"] / samples * outcomes)
                    tokens_out = round(entry["out"] / samples * 0.5 * statuses["ok"])
                    histogram = target.get("latency_histogram") or [0] * (len(LATENCY_BUCKETS_MS) + 1)
                    for _ in range(outcomes - statuses["timeout"]):
                        histogram[bisect.bisect_left(LATENCY_BUCKETS_MS, traffic.latency(version))] += 1
                    histogram[LATENCY_BUCKETS_MS.index(TIMEOUT_MS)] += statuses["timeout"]
                    target["latency_histogram"] = histogram
                    for status in ("ok", "error", "timeout"):
                        target[f"outcomes_{status}"] = target.get(f"outcomes_{status}", 0) + statuses[status]
                    target["input_tokens"] = target.get("input_tokens", 0) + tokens_in
                    target["output_tokens"] = target.get("output_tokens", 0) + tokens_out
                    cost = Decimal(version.cost(tokens_in, tokens_out)).quantize(Decimal("0.000001"))
                    target["reported_cost_usd"] = target.get("reported_cost_usd", Decimal(0)) + cost
            for key, row in rows.items():
                if row.get("latency_histogram"):
                    estimates = merged_percentiles([row["latency_histogram"]], [50, 95, 99])
                    row |= {f"latency_p{p}_ms": estimates[p] for p in (50, 95, 99)}
                values = {"hour": hour, **dict(zip(KEY, key, strict=True)), **row}
                copy.write_row([_copy_value(values, field) for field in fields])
                written += 1
    return written, time.perf_counter() - start


def _copy_value(values: dict[str, Any], field: Any) -> Any:
    if field.attname in values:
        value = values[field.attname]
        return json.dumps(value) if field.attname == "latency_histogram" else value
    if field.null:
        return None
    default = field.get_default()
    return json.dumps(default) if field.attname == "latency_histogram" else default


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hour-events", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=90)
    args = parser.parse_args()
    configure(BENCH_DB)
    fresh_database(BENCH_DB)
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    call_command("seed_demo", "--allow-production", stdout=open(os.devnull, "w"))  # noqa: SIM115
    from audit.models import UsageRollup
    from audit.rollups import HOUR, day_of, hour_of, rebuild_days

    rng = random.Random(5)
    traffic = Traffic(rng)
    middle = (hour_of(datetime.datetime.now(datetime.UTC)) - datetime.timedelta(days=2)).replace(hour=14)
    bench_hours = [middle - HOUR, middle, middle + HOUR]
    rows = [row for hour in bench_hours for row in event_rows(traffic, hour, args.hour_events)]
    seconds = copy_events(rows)
    print(f"loaded {len(rows):,} routing events ({args.hour_events:,} an hour, 3 hours) with COPY in {seconds:.1f} s")
    with connection.cursor() as cursor:  # as autovacuum would, so the planner knows the new rows
        cursor.execute("ANALYZE")
    time_refresh()
    time_rebuild(middle)

    UsageRollup.objects.exclude(hour__in=bench_hours).delete()  # the demo week's few rows make way
    written, seconds = generate_rollups(traffic, args.events, args.days, set(bench_hours))
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE audit_usagerollup")
    total = UsageRollup.objects.count()
    print(f"generated {written:,} rollup rows for {args.events:,} events over {args.days} days in {seconds:.1f} s")
    days = sorted({day_of(hour) for hour in UsageRollup.objects.order_by().values_list("hour", flat=True).distinct()})
    start = time.perf_counter()
    daily = rebuild_days(days)
    seconds = time.perf_counter() - start
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE audit_dailyusagerollup")
    print(
        f"rebuild_days() of {len(days)} days: {total:,} hourly rows -> {daily:,} daily rows in {seconds:.1f} s "
        f"({seconds / len(days) * 1000:.0f} ms a day); {BENCH_DB} is left in place for the dashboard benchmark"
    )


if __name__ == "__main__":
    main()
