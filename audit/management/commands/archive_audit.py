import datetime
import re
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.archive import (
    ArchiveRefused,
    Plan,
    archive_expired,
    archive_month,
    file_name,
    plan_expired,
    plan_month,
)
from audit.models import AuditEvent

MONTH = re.compile(r"(\d{4})-(\d{2})")


def parse_month(text: str) -> datetime.date:
    match = MONTH.fullmatch(text.strip())
    if not match or not 1 <= int(match[2]) <= 12:
        raise CommandError(f"--month {text}: not a month; give it as YYYY-MM, e.g. --month 2026-05.")
    return datetime.date(int(match[1]), int(match[2]), 1)


class Command(BaseCommand):
    help = (
        "Move whole months of the audit log into verified files in AUDIT_ARCHIVE_DIR, then out of the "
        "database (beat does --expired daily when AUDIT_RETENTION_MONTHS is set)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("--month", help="Archive this month (YYYY-MM); it must be over.")
        which.add_argument(
            "--expired", action="store_true", help="Archive every month older than AUDIT_RETENTION_MONTHS."
        )
        parser.add_argument("--dry-run", action="store_true", help="Say what would be archived; change nothing.")

    def handle(self, *args: Any, **options: Any) -> None:
        month = parse_month(options["month"]) if options["month"] else None
        if month is None and settings.AUDIT_RETENTION_MONTHS is None:
            raise CommandError(
                "AUDIT_RETENTION_MONTHS is not set, so every event is kept. Set it, or archive one month "
                "with --month YYYY-MM."
            )
        try:
            if options["dry_run"]:
                self._dry_run(month)
                return
            archives = [archive_month(month)] if month is not None else archive_expired()
        except ArchiveRefused as refusal:
            raise CommandError(str(refusal)) from None
        for archive in archives:
            described = self._describe(archive.month, archive.first_sequence, archive.last_sequence)
            self.stdout.write(f"Archived {described}")
        if not archives:
            self.stdout.write("Nothing has expired.")

    def _dry_run(self, month: datetime.date | None) -> None:
        plans: list[Plan] = [plan_month(month)] if month is not None else plan_expired()
        for plan in plans:
            self.stdout.write(f"Would archive {self._describe(plan.month, plan.first_sequence, plan.last_sequence)}")
        if not plans:
            self.stdout.write("Nothing has expired.")
        unsealed = AuditEvent.objects.filter(seal__isnull=True).count()
        if unsealed:
            self.stdout.write(f"{unsealed} events are not sealed yet; archiving seals them first, which may add some.")
        self.stdout.write("Dry run: nothing was changed.")

    @staticmethod
    def _describe(month: datetime.date, first: int, last: int) -> str:
        return f"{month:%Y-%m}: sequences {first}–{last} ({last - first + 1} events) → {file_name(month)}"
