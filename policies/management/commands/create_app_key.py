"""``manage.py create_app_key <application-slug>``: a new API key for scripts and deployments.

Standard output carries the raw key and nothing else, so ``KEY=$(manage.py create_app_key app)``
captures exactly the key; everything meant for a person goes to standard error.
"""

import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from policies.models import ApiKey, Application
from policies.services import generate_key

DEFAULT_NAME = "created with create_app_key"


def _unstyled(text: str) -> str:
    """Details on standard error are information, not errors, so they are not painted red."""
    return text


class Command(BaseCommand):
    help = (
        "Create an API key for an application. Prints only the key on standard output, e.g. "
        "KEY=$(python manage.py create_app_key support-assistant); details go to standard error. "
        "The key is shown this once: Switchboard stores only its hash."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("application", help="The application's slug.")
        parser.add_argument("--name", default=DEFAULT_NAME, help=f"What uses the key (default: {DEFAULT_NAME!r}).")
        parser.add_argument(
            "--expires-days", type=int, default=None, metavar="N", help="Expire the key after N days (default: never)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        application = find_application(options["application"])
        name: str = options["name"]
        max_length = ApiKey._meta.get_field("name").max_length or 0
        if len(name) > max_length:
            raise CommandError(f"--name is {len(name)} characters long; at most {max_length} are allowed.")
        expires_at = expiry(options["expires_days"])
        try:
            key, raw = generate_key(application, name=name, expires_at=expires_at)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        when = key.expires_at.isoformat(timespec="minutes") if key.expires_at else "never"
        self.stderr.write(
            f"Created key “{key.name}” for {application.name} ({application.slug}), team {application.team.name}: "
            f"prefix {key.prefix}, expires {when}. Store it now; it cannot be shown again.",
            style_func=_unstyled,
        )
        self.stdout.write(raw)


def find_application(slug: str) -> Application:
    application = Application.objects.select_related("team").filter(slug=slug).first()
    if application is None:
        known = ", ".join(Application.objects.order_by("slug").values_list("slug", flat=True)) or "none yet"
        raise CommandError(f"No application with slug {slug!r}. Known applications: {known}.")
    return application


def expiry(days: int | None) -> datetime.datetime | None:
    if days is None:
        return None
    if days < 1:
        raise CommandError(f"--expires-days must be at least 1, not {days}.")
    try:
        return timezone.now() + datetime.timedelta(days=days)
    except OverflowError as exc:
        raise CommandError(f"--expires-days {days} is further away than dates go; leave it out for no expiry.") from exc
