"""Test set-up shared by every app: personas per role, the PostgreSQL marker and the skip rule.

With ``TESTS_FORBID_SKIPS=true`` (set by ``.ci/run``) a skipped test fails the run: CI must
exercise PostgreSQL-only and browser tests, never quietly pass without them.
"""

import os
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import Group, User
from django.db import connection

from console.roles import ADMINISTRATOR, AUDITOR, REVIEWER

PASSWORD = "correct-horse-battery-staple"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "postgresql: needs PostgreSQL (DATABASE_URL=postgres://...)")
    config.addinivalue_line("markers", "browser: drives Debian's Chromium through Playwright")
    # Tests render pages without running collectstatic first.
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
