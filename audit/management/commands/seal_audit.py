from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from audit.sealing import seal_all


class Command(BaseCommand):
    help = "Seal every unsealed audit event into the hash chain (beat does this every few seconds)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--full", action="store_true", help="Look through the whole table, not just its recent tail."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(f"Sealed {seal_all(full=options['full'])} events.")
