"""Fixtures for the budget and quota tests: the counters each backend keeps, started clean."""

from collections.abc import Iterator
from typing import Any

import pytest
import redis

from policies import budgets

# A Redis database of its own, flushed around each test that uses it; other work uses other numbers.
TEST_REDIS_URL = "redis://127.0.0.1:6379/13"


@pytest.fixture(autouse=True)
def forget_noticed_alerts() -> Iterator[None]:
    """Each process hands an alert to the task once; tests reuse ids after rollbacks, so forget."""
    budgets.noticed.clear()
    yield
    budgets.noticed.clear()


@pytest.fixture
def redis_counters(settings: Any) -> Iterator[redis.Redis]:
    """Routing counts in a real Redis (database 13), empty at the start and the end of the test."""
    client = redis.Redis.from_url(TEST_REDIS_URL)
    client.flushdb()
    settings.ROUTING_COUNTERS_URL = TEST_REDIS_URL
    yield client
    client.flushdb()
    client.close()


@pytest.fixture(params=["database", "redis"])
def counters(request: pytest.FixtureRequest, settings: Any) -> str:
    """Run the test once with each backend: the database's counters, then Redis's."""
    if request.param == "redis":
        request.getfixturevalue("redis_counters")
    else:
        settings.ROUTING_COUNTERS_URL = None
    return str(request.param)
