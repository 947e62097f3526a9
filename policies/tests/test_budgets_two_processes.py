"""Quotas and budgets shared by two real web processes (gunicorn) on the same PostgreSQL database.

Each test starts two gunicorn servers on 127.0.0.1 against the test database (committed data:
``transactional_db``), once counting in the database and once in Redis, and splits its requests
between them: the quota and the budget stop at the same totals as with one process.
"""

import datetime
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import redis
from django.contrib.auth.models import User
from django.db import connection

from audit.models import AuditEvent
from policies.models import MonthlySpend
from policies.tests.conftest import TEST_REDIS_URL
from policies.tests.test_budgets import BODY, FRONTIER_COST, build

pytestmark = [pytest.mark.postgresql, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 30.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _database_url() -> str:
    settings = connection.settings_dict
    user, host, port = settings["USER"] or "postgres", settings["HOST"] or "127.0.0.1", settings["PORT"] or 5432
    password = f":{settings['PASSWORD']}" if settings["PASSWORD"] else ""
    return f"postgres://{user}{password}@{host}:{port}/{settings['NAME']}"


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - our own local server
            return int(response.status)
    except OSError:  # refused, reset or timed out: not serving yet
        return 0


class Servers:
    """Two gunicorn processes (one worker each) serving the routing API from the test database."""

    def __init__(self, counters_url: str, *, spend_fresh_seconds: float = 0) -> None:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "console.settings",
            "SECRET_KEY": "test-only-two-processes",
            "DATABASE_URL": _database_url(),
            "DEBUG": "false",
            "SECURE_SSL_REDIRECT": "false",
            "ALLOWED_HOSTS": "127.0.0.1",
            "ROUTING_SNAPSHOT_TTL_SECONDS": "0",
            # Read the spends on every request unless a test says otherwise: exact budgets.
            "ROUTING_SPEND_FRESH_SECONDS": str(spend_fresh_seconds),
            "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
            "LOG_LEVEL": "WARNING",
        }
        env.pop("CELERY_BROKER_URL", None)
        env.pop("ROUTING_COUNTERS_URL", None)
        if counters_url:
            env["ROUTING_COUNTERS_URL"] = counters_url
        self.ports = [_free_port(), _free_port()]
        self.processes = [
            subprocess.Popen(  # noqa: S603 - our own interpreter running gunicorn, fixed arguments
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "console.wsgi",
                    "-b",
                    f"127.0.0.1:{port}",
                    "-w",
                    "1",
                    "--threads",
                    "8",
                ],
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            for port in self.ports
        ]
        deadline = time.monotonic() + START_TIMEOUT
        for port, process in zip(self.ports, self.processes, strict=True):
            while _get(f"http://127.0.0.1:{port}/health/") != 200:
                if process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"gunicorn on {port} did not start: {process.stderr.read().decode()[-2000:]}")
                time.sleep(0.1)

    def route(self, index: int, key: str, **body: Any) -> tuple[int, dict[str, Any]]:
        """POST /api/v1/route to server ``index``: its status and JSON body."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.ports[index]}/api/v1/route",
            data=json.dumps({**BODY, **body}).encode(),
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                return int(response.status), json.loads(response.read())
        except urllib.error.HTTPError as error:
            return int(error.code), json.loads(error.read())

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture(params=["database", "redis"])
def servers(request: pytest.FixtureRequest) -> Iterator[tuple[str, Servers]]:
    url = TEST_REDIS_URL if request.param == "redis" else ""
    client = redis.Redis.from_url(TEST_REDIS_URL)
    client.flushdb()
    started = Servers(url)
    yield str(request.param), started
    started.stop()
    client.flushdb()
    client.close()


def _start_of_a_fresh_minute() -> None:
    """The quota counts clock minutes: begin early in one so the whole test falls inside it."""
    if datetime.datetime.now().second >= 45:
        time.sleep(61 - datetime.datetime.now().second)


def test_two_processes_share_one_quota(servers: tuple[str, Servers], administrator: User, reviewer: User) -> None:
    _, two = servers
    quota = 10
    shop = build(administrator, reviewer, rpm=quota)
    _start_of_a_fresh_minute()
    # Alternating one by one: each server sees every other request, and the 429s start after the
    # tenth whichever server gets it.
    sequential = [two.route(n % 2, shop.key)[0] for n in range(6)]
    assert sequential == [200] * 6
    # Then a concurrent burst split across both: the counter is atomic, so exactly the rest pass.
    with ThreadPoolExecutor(max_workers=12) as pool:
        burst = list(pool.map(lambda n: (n % 2, two.route(n % 2, shop.key)), range(24)))
    statuses = Counter(status for _, (status, _) in burst)
    assert statuses == {200: quota - 6, 429: 24 - (quota - 6)}
    assert {index for index, (status, _) in burst if status == 429} == {0, 1}  # both processes throttle
    throttled = next(body for _, (status, body) in burst if status == 429)
    assert throttled["quota"]["requests_per_minute"] == quota
    assert AuditEvent.objects.filter(kind="routing.decision").count() == quota


def test_two_processes_share_one_budget(servers: tuple[str, Servers], administrator: User, reviewer: User) -> None:
    backend, two = servers
    shop = build(administrator, reviewer, team_budget="0.10")  # three frontier decisions: 0.12
    answers = [two.route(n % 2, shop.key) for n in range(6)]
    assert [status for status, _ in answers] == [200, 200, 200, 429, 429, 429]
    assert answers[3][1]["detail"].startswith("team Care is over its monthly budget of $0.10: refused")
    assert answers[4][1]["detail"] == answers[3][1]["detail"]  # the other process refuses alike
    assert AuditEvent.objects.filter(kind="routing.refused").count() == 3
    if backend == "database":
        team = MonthlySpend.objects.get(scope="team", owner_id=shop.team.pk)
        assert Decimal(team.spent_micro_usd) / 1_000_000 == 3 * FRONTIER_COST
    else:
        month = datetime.date.today().replace(day=1)
        client = redis.Redis.from_url(TEST_REDIS_URL)
        assert int(client.get(f"switchboard:spend:{month:%Y-%m}:team:{shop.team.pk}")) == 120_000
        assert not MonthlySpend.objects.exists()  # Redis counts; the database does not


def test_within_the_fresh_window_a_process_reuses_its_spend_reading(administrator: User, reviewer: User) -> None:
    """With the database's counters, each process trusts the spends it last read or wrote for
    ``ROUTING_SPEND_FRESH_SECONDS``: the overshoot is what the other process charged meanwhile,
    here one decision, and both refuse from then on."""
    shop = build(administrator, reviewer, team_budget="0.10")  # three frontier decisions: 0.12
    two = Servers("", spend_fresh_seconds=30)
    try:
        statuses = [two.route(n % 2, shop.key)[0] for n in range(6)]
    finally:
        two.stop()
    # A reads $0 and charges; B reads $0.04 and charges; A still trusts the $0.04 its store
    # returned and charges ($0.12); B trusts its $0.08 and charges once more ($0.16). Each store
    # returned the team's new total, so both now know the budget is spent.
    assert statuses == [200, 200, 200, 200, 429, 429]
    spent = MonthlySpend.objects.get(scope="team", owner_id=shop.team.pk).spent_micro_usd
    assert Decimal(spent) / 1_000_000 == 4 * FRONTIER_COST
