from typing import Any

from django.core.management.base import BaseCommand, CommandError

from audit.sealing import verify


class Command(BaseCommand):
    help = "Recompute the audit hash chain; exit non-zero naming the first broken sequence number."

    def handle(self, *args: Any, **options: Any) -> None:
        result = verify()
        if not result.intact:
            raise CommandError(f"Audit chain broken after {result.checked} intact events: {result.problem}")
        self.stdout.write(f"Audit chain intact: {result.checked} sealed events; {result.unsealed} not yet sealed.")
