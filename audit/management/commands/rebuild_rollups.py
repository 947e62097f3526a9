"""``manage.py rebuild_rollups --since ... --until ...``: recompute the usage rollups of a range."""

import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from audit.rollups import hours_between, rebuild, rebuildable


def parse_moment(option: str, text: str) -> datetime.datetime:
    """An ISO 8601 date or date and time; without an offset it is read in UTC, as the rollup hours are."""
    try:
        moment = datetime.datetime.fromisoformat(text.strip())
    except ValueError:
        raise CommandError(
            f"{option} {text!r}: not an ISO 8601 date and time; give e.g. {option} 2026-11-01T00:00 "
            "(UTC unless it carries an offset such as +01:00)."
        ) from None
    return moment if timezone.is_aware(moment) else moment.replace(tzinfo=datetime.UTC)


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


class Command(BaseCommand):
    help = (
        "Recompute the hourly usage rollups of every UTC hour overlapping [--since, --until) from the audit "
        "events, and the daily rollups of their days. Safe to repeat: each hour is replaced whole. Hours of "
        "archived months are left alone."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--since", required=True, help="Start, inclusive (ISO 8601, UTC unless offset).")
        parser.add_argument("--until", required=True, help="End, exclusive (ISO 8601, UTC unless offset).")

    def handle(self, *args: Any, **options: Any) -> None:
        since = parse_moment("--since", options["since"])
        until = parse_moment("--until", options["until"])
        if since >= until:
            raise CommandError(f"--since {since.isoformat()} must be before --until {until.isoformat()}.")
        hours = hours_between(since, until)
        kept = len(hours) - len(rebuildable(hours))
        rows = rebuild(since, until)
        self.stdout.write(f"Rebuilt {plural(len(hours) - kept, 'hour')}, wrote {plural(rows, 'rollup row')}.")
        if kept:
            self.stdout.write(f"Left {plural(kept, 'hour')} of archived months as they were: their events are gone.")
