"""Celery tasks, run by a real worker when a broker is configured (CI: Redis)."""

import time
from typing import Any

from django.conf import settings
from django.utils import timezone

from audit.models import AuditEvent
from registry.models import ModelVersion
from registry.tasks import apply_scheduled_lifecycle
from registry.tests.factories import make_version


def wait_for(condition: Any, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return bool(condition())


def test_scheduled_lifecycle_task_deprecates_due_versions(task_runner: str) -> None:
    due = make_version(lifecycle="approved", deprecates_on=timezone.localdate())
    apply_scheduled_lifecycle.delay()

    assert wait_for(lambda: ModelVersion.objects.get(pk=due.pk).lifecycle == "deprecated"), task_runner
    event = AuditEvent.objects.get(kind="modelversion.lifecycle", object_id=str(due.pk), reason__startswith="Planned")
    assert event.actor_name == "system"


def test_beat_runs_the_lifecycle_task() -> None:
    schedule = settings.CELERY_BEAT_SCHEDULE["apply-scheduled-lifecycle"]
    assert schedule["task"] == apply_scheduled_lifecycle.name
