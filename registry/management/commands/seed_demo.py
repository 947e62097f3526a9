"""``manage.py seed_demo``: fill an empty installation with a realistic portfolio to try Switchboard on."""

import os
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.rollups import refresh as refresh_rollups
from registry.demo import DEFAULT_PASSWORD, USERS, DemoResult, load_demo

URL = "http://127.0.0.1:8000"


class Command(BaseCommand):
    help = (
        "Create demo providers, models, versions, compliance decisions, teams, applications and users. "
        "Safe to run again: only what is missing is created. The password of new demo users is "
        f"DEMO_PASSWORD, default {DEFAULT_PASSWORD!r}; existing users keep theirs unless DEMO_PASSWORD is set."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--allow-production",
            action="store_true",
            help="Seed even with DEBUG=false. The demo creates a superuser whose password is published.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG and not options["allow_production"]:
            raise CommandError(
                "Refusing to seed demo data with DEBUG=false: it creates a superuser with a published "
                "password. Use DEBUG=true (as `make demo` does) or pass --allow-production."
            )
        password, explicit = demo_password()
        try:
            result = load_demo(password=password, reset_passwords=explicit)
        except ValidationError as exc:
            # Existing data the demo cannot sit beside (a slug or sensitivity taken by something
            # else); nothing was written, say what clashed instead of a traceback.
            raise CommandError(f"The demo data clashes with existing data, nothing was created: {exc}") from exc
        # Without a broker no beat keeps the dashboard's rollups current: fold the demo's traffic in now.
        hours = refresh_rollups()
        self.stdout.write(summary(result))
        if hours:
            self.stdout.write(f"Usage rollups: {hours} hours of traffic summed for the dashboard.")
        self.stdout.write(logins(result, password=password, explicit=explicit))
        self.stdout.write(api_keys(result))


def demo_password() -> tuple[str, bool]:
    """The password for demo users and whether someone chose it (which allows resetting existing users)."""
    value = os.environ.get("DEMO_PASSWORD")
    if value is None:
        return DEFAULT_PASSWORD, False
    if not value.strip():
        raise CommandError("DEMO_PASSWORD is set but empty; unset it to use the default or give a password.")
    return value, True


def summary(result: DemoResult) -> str:
    if not result.created:
        return "Demo data already present: nothing created."
    counts = ", ".join(f"{kind}: {count}" for kind, count in result.created.items())
    return f"Demo data created ({counts}), recorded in {result.audit_events} audit events."


def logins(result: DemoResult, *, password: str, explicit: bool) -> str:
    """The block people copy from: who can sign in, as what, and where.

    A password chosen through DEMO_PASSWORD is not echoed, so it does not end up in logs.
    """
    shown = "the value of DEMO_PASSWORD" if explicit else password
    width = max(len(username) for username in USERS)
    lines = ["", f"Demo logins (password: {shown}):"]
    for username, (role, _email) in USERS.items():
        extra = ""
        if username in result.kept_passwords:
            extra = " (existing account, password unchanged)"
        elif username in result.passwords_reset:
            extra = " (existing account, password reset)"
        lines.append(f"  {username:<{width}}  {role}{extra}")
    lines.append(f"Open {URL} (python manage.py runserver); the Django admin is at {URL}/admin/ for admin.")
    return "\n".join(lines)


def api_keys(result: DemoResult) -> str:
    """The routing API keys made this time: shown once, as the console does; only hashes are kept."""
    if not result.keys:
        return "API keys: make one with `python manage.py create_app_key support-assistant`."
    lines = ["", "Routing API keys (shown once, only their hashes are stored):"]
    lines += [f"  {slug}: {key}" for slug, key in sorted(result.keys.items())]
    any_key = result.keys.get("support-assistant") or next(iter(result.keys.values()))
    lines.append(
        f"Try: curl -s {URL}/api/v1/route -H 'Authorization: Bearer {any_key}' -H 'Content-Type: application/json' "
        '-d \'{"task_type": "summarization", "data_classification": "pii", "region": "eu"}\''
    )
    return "\n".join(lines)
