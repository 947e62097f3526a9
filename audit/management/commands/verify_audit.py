from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.verification import verify


class Command(BaseCommand):
    help = "Recompute the audit hash chain; exit non-zero naming the first broken sequence number."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--portable",
            action="store_true",
            help="Rebuild every record in Python, even on PostgreSQL (slower; checks the database's own rendering).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        result = verify(portable=options["portable"])
        if not result.intact:
            raise CommandError(f"Audit chain broken after {result.checked} intact events: {result.problem}")
        self.stdout.write(f"Audit chain intact: {result.checked} sealed events; {result.unsealed} not yet sealed.")
