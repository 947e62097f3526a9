"""Dashboard benchmark: the home page's server render over 10,000,000 events' worth of rollups.

    .venv/bin/python bench/rollups.py      # once: builds switchboard_rollup_bench
    .venv/bin/python bench/dashboard.py [--runs 5]

Uses the database ``bench/rollups.py`` leaves behind (``switchboard_rollup_bench`` on the local
PostgreSQL: the demo portfolio, about 335,000 hourly rollup rows over 90 days and their daily
rollups), brings its schema up to date, signs in as the demo administrator and times the full
server render of ``/`` (every query, every plotly figure, the template) through Django's test
client: the default range (last 7 days), the last 30 days for everything and for one team, all 90
days, plus one CSV download. Prints the best, median and worst of ``--runs`` runs after one
warm-up (imports, template compilation) and the query count. Nothing is cached between requests
(see ``console/dashboard/queries.py``): every run sums the rollups anew.

Goal (issue 5): under 300 ms.
"""

import argparse
import statistics
import time
from urllib.parse import urlencode

from benchdb import configure

BENCH_DB = "switchboard_rollup_bench"
GOAL_MS = 300


def timed(client: object, url: str, runs: int) -> tuple[list[float], int, int]:
    """Milliseconds of each run, the query count and the response size of the last."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.get(url)  # type: ignore[attr-defined]  # warm-up: imports, templates, plotly's first figure
    times = []
    for _ in range(runs):
        with CaptureQueriesContext(connection) as queries:
            start = time.perf_counter()
            response = client.get(url)  # type: ignore[attr-defined]
            times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, (url, response.status_code)
    return times, len(queries.captured_queries), len(response.content)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    configure(BENCH_DB)
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.test import Client

    from audit.models import DailyUsageRollup, UsageRollup

    call_command("migrate", verbosity=0)  # the benchmark database may predate newer migrations
    call_command("collectstatic", "--no-input", verbosity=0)  # as a deployment does: DEBUG is off
    rows = UsageRollup.objects.count()
    if not rows:
        raise SystemExit(f"{BENCH_DB} holds no rollups: run bench/rollups.py first.")
    team = UsageRollup.objects.order_by().values_list("team_name", flat=True).first()
    client = Client()
    client.force_login(User.objects.get(username="admin"))
    days = DailyUsageRollup.objects.count()
    first, last = UsageRollup.objects.order_by("hour").first(), UsageRollup.objects.order_by("hour").last()
    assert first is not None and last is not None  # there are rows, checked above
    print(
        f"{BENCH_DB}: {rows:,} hourly and {days:,} daily rollup rows; "
        f"best / median / worst of {args.runs} runs after a warm-up"
    )
    month_of_team = urlencode({"range": "30d", "team": team})
    cases = [
        ("default range (last 7 days)", "/"),
        (f"last 30 days, team {team}", f"/?{month_of_team}"),
        ("last 30 days, everything", "/?range=30d"),
        (
            "every day of the rollups, everything",
            f"/?range=custom&since={first.hour:%Y-%m-%d}&until={last.hour:%Y-%m-%d}",
        ),
        (f"CSV of spend, last 30 days, team {team}", f"/dashboard/spend.csv?{month_of_team}"),
    ]
    for label, url in cases:
        times, queries, size = timed(client, url, args.runs)
        verdict = "ok" if max(times) < GOAL_MS else f"over the {GOAL_MS} ms goal"
        print(
            f"  {label:<48} {min(times):6.1f} / {statistics.median(times):6.1f} / {max(times):6.1f} ms"
            f"  {queries} queries, {size / 1024:,.0f} KiB  ({verdict})"
        )


if __name__ == "__main__":
    main()
