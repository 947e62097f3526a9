from typing import Any

from django.core.management.base import BaseCommand

from audit.sealing import seal_all


class Command(BaseCommand):
    help = "Seal every unsealed audit event into the hash chain (beat does this every few seconds)."

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(f"Sealed {seal_all()} events.")
