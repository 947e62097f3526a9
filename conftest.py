"""Test set-up shared by every app: personas per role, the PostgreSQL marker and the skip rule.

With ``TESTS_FORBID_SKIPS=true`` (set by ``.ci/run``) a skipped test fails the run: CI must
exercise PostgreSQL-only and browser tests, never quietly pass without them.
"""

import base64
import os
from collections.abc import Iterator
from typing import Any

import pytest
from celery.signals import task_postrun
from django.conf import settings
from django.contrib.auth.models import Group, User
from django.db import connection, connections

from console.roles import ADMINISTRATOR, AUDITOR, REVIEWER

PASSWORD = "correct-horse-battery-staple"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "postgresql: needs PostgreSQL (DATABASE_URL=postgres://...)")
    config.addinivalue_line("markers", "browser: drives Debian's Chromium through Playwright")
    # Tests speak plain HTTP to the test client and live server, and never run collectstatic.
    settings.SECURE_SSL_REDIRECT = False
    # A throwaway signing key for audit checkpoints (production reads AUDIT_SIGNING_KEY).
    settings.AUDIT_SIGNING_KEY = base64.b64encode(os.urandom(32)).decode()
    # Every routing call sees the latest registry and policies, so tests need not wait.
    settings.ROUTING_SNAPSHOT_TTL_SECONDS = 0.0
    # Real hashing costs ~0.3 s a user; tests create many users and prove nothing about hashing.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.STATIC_ROOT = None
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if connection.vendor == "postgresql":
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL: set DATABASE_URL=postgres://...")
    for item in items:
        if "postgresql" in item.keywords:
            item.add_marker(skip)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("TESTS_FORBID_SKIPS", "").lower() not in {"1", "true", "yes"}:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if skipped:
        reporter.write_line(f"TESTS_FORBID_SKIPS: {len(skipped)} test(s) skipped; CI must run them all:", red=True)
        for report in skipped:
            reporter.write_line(
                f"  {report.nodeid}: {report.longrepr[-1] if isinstance(report.longrepr, tuple) else report.longrepr}"
            )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _person(username: str, role: str | None) -> User:
    user = User.objects.create_user(username=username, password=PASSWORD, email=f"{username}@example.test")
    if role:
        user.groups.add(Group.objects.get(name=role))
    return user


@pytest.fixture
def administrator(db: Any) -> User:
    return _person("alice", ADMINISTRATOR)


@pytest.fixture
def reviewer(db: Any) -> User:
    return _person("rob", REVIEWER)


@pytest.fixture
def auditor(db: Any) -> User:
    return _person("audrey", AUDITOR)


@pytest.fixture
def outsider(db: Any) -> User:
    """Signed in, but holds no role."""
    return _person("oscar", None)


@pytest.fixture
def personas(administrator: User, reviewer: User, auditor: User, outsider: User) -> dict[str, User]:
    return {ADMINISTRATOR: administrator, REVIEWER: reviewer, AUDITOR: auditor, "none": outsider}


@pytest.fixture
def vocabulary(db: Any) -> dict[str, Any]:
    from registry.tests.factories import vocabulary

    return vocabulary()


@pytest.fixture
def task_runner(transactional_db: Any) -> Iterator[str]:
    """Runs Celery tasks the way this configuration does: a real worker on the broker, or in process.

    With ``CELERY_BROKER_URL`` set, a worker thread consumes from the real broker (Redis in CI) and
    works on the committed test database; the test sees its effect by polling. Without a broker,
    ``.delay()`` runs the task eagerly, as the single-user default does.
    """
    from celery.contrib.testing.worker import start_worker

    from console.celery import app

    if not settings.CELERY_BROKER_URL:
        assert app.conf.task_always_eager
        yield "eager"
        return
    assert not app.conf.task_always_eager, "with a broker, tasks must go through it"

    def close_worker_connections(**kwargs: Any) -> None:
        # The worker thread's own connection would otherwise keep the test database from being dropped.
        connections.close_all()

    task_postrun.connect(close_worker_connections, weak=False)
    try:
        with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=20):
            yield "worker"
    finally:
        task_postrun.disconnect(close_worker_connections)


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def page(live_server: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A browser tab of Debian's Chromium on the live server; nothing is downloaded.

    Playwright's sync API keeps an event loop running on the test thread while it is open, so
    the browser starts after the database and stops before it is flushed, and the test's own ORM
    calls are explicitly allowed to run beside that loop.
    """
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"browser tests need Debian's chromium at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(base_url=live_server.url)
        context.set_default_timeout(10_000)
        yield context.new_page()
        context.close()
        browser.close()


def sign_in(page: Any, username: str) -> None:
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/")


@pytest.fixture(autouse=True)
def fresh_routing_snapshot() -> Iterator[None]:
    """Each test rolls its database back, counters included, so a snapshot or a spend reading
    cached by an earlier test could look current; every test starts without them."""
    from policies.counters import forget_spend_readings
    from policies.snapshot import holder

    holder.clear()
    forget_spend_readings()
    yield
    holder.clear()
    forget_spend_readings()


@pytest.fixture(scope="session", autouse=True)
def close_stray_connections(django_db_setup: Any, django_db_blocker: Any) -> Iterator[None]:
    """Threads (the live server's, the Celery worker's) can leave a connection open at the end,
    and PostgreSQL will not drop a database in use: end them before pytest-django drops it."""
    yield
    if connection.vendor != "postgresql":
        return
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup: Any, django_db_blocker: Any) -> None:
    """The audit tables refuse changes; the test database is flushed between transactional tests,
    so it runs in maintenance mode. Tests of the refusal turn maintenance off for themselves."""
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            name = connection.settings_dict["NAME"]
            cursor.execute(f"ALTER DATABASE {connection.ops.quote_name(name)} SET switchboard.audit_maintenance = 'on'")
            cursor.execute("SET switchboard.audit_maintenance = 'on'")
        else:
            cursor.execute("UPDATE audit_maintenance SET allowed = 1")
