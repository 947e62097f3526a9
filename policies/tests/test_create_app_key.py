"""``create_app_key``: the raw key alone on standard output, for ``KEY=$(manage.py create_app_key app)``."""

import datetime
import io
import re
from typing import Any

import pytest
import time_machine
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from audit.models import AuditEvent
from policies.management.commands.create_app_key import DEFAULT_NAME
from policies.models import ApiKey, Application
from policies.services import hash_key
from policies.tests.factories import make_app, make_team

pytestmark = pytest.mark.django_db


@pytest.fixture
def app(vocabulary: dict[str, Any]) -> Application:
    return make_app(make_team(name="Support", slug="support"), name="Support assistant", slug="support-assistant")


def run(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("create_app_key", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_prints_only_the_key_on_stdout_and_details_on_stderr(app: Application) -> None:
    out, err = run("support-assistant")
    assert re.fullmatch(r"^sb_[0-9a-f]{8}_\S+\n$", out)
    raw = out.strip()
    key = ApiKey.objects.get(application=app)
    assert key.key_hash == hash_key(raw)
    assert key.name == DEFAULT_NAME
    assert key.expires_at is None
    assert "Support assistant" in err
    assert "support-assistant" in err
    assert key.prefix in err
    assert "expires never" in err
    assert raw not in err


def test_name_and_expiry_are_applied(app: Application) -> None:
    with time_machine.travel(datetime.datetime(2025, 3, 1, 12, 0, tzinfo=datetime.UTC), tick=False):
        out, err = run("support-assistant", "--name", "deploy pipeline", "--expires-days", "30")
    key = ApiKey.objects.get(application=app)
    assert key.name == "deploy pipeline"
    assert key.expires_at == datetime.datetime(2025, 3, 31, 12, 0, tzinfo=datetime.UTC)
    assert "2025-03-31T12:00" in err
    assert re.fullmatch(r"^sb_[0-9a-f]{8}_\S+\n$", out)


def test_key_is_audited_as_created_by_system(app: Application) -> None:
    out, _ = run("support-assistant")
    event = AuditEvent.objects.get(kind="apikey.created")
    key = ApiKey.objects.get(application=app)
    assert event.actor_name == "system"
    assert event.actor is None
    assert event.object_id == str(key.pk)
    assert key.created_by_name == "system"
    assert out.strip().split("_", 2)[2] not in str(event.after)


def test_unknown_slug_names_it_and_lists_known_slugs(app: Application) -> None:
    make_app(app.team, slug="claims-triage")
    with pytest.raises(CommandError) as error:
        run("support-asistant")
    assert "'support-asistant'" in str(error.value)
    assert "claims-triage, support-assistant" in str(error.value)
    assert not ApiKey.objects.exists()
    assert not AuditEvent.objects.filter(kind="apikey.created").exists()


def test_unknown_slug_without_any_application_says_none_yet(vocabulary: dict[str, Any]) -> None:
    with pytest.raises(CommandError, match="none yet"):
        run("anything")


@pytest.mark.parametrize("days", ["0", "-3"])
def test_expiry_must_be_at_least_a_day(app: Application, days: str) -> None:
    with pytest.raises(CommandError, match="at least 1"):
        run("support-assistant", "--expires-days", days)
    assert not ApiKey.objects.exists()


def test_absurd_expiry_is_a_clear_error(app: Application) -> None:
    with pytest.raises(CommandError, match="further away than dates go"):
        run("support-assistant", "--expires-days", "99999999")


@pytest.mark.parametrize(("name", "message"), [("   ", "Name the key"), ("x" * 101, "at most 100")])
def test_bad_name_is_refused_without_writing(app: Application, name: str, message: str) -> None:
    with pytest.raises(CommandError, match=message):
        run("support-assistant", "--name", name)
    assert not ApiKey.objects.exists()


def test_each_run_makes_a_new_key(app: Application) -> None:
    first, _ = run("support-assistant")
    second, _ = run("support-assistant")
    assert first != second
    assert ApiKey.objects.filter(application=app).count() == 2
    assert timezone.now() > ApiKey.objects.first().created_at - datetime.timedelta(seconds=5)
