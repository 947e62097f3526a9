"""``manage.py rebuild_spend [--month YYYY-MM] [--dry-run]``: the spend counters again from the ledger.

For when Redis has lost its data (a restart without persistence), every month-to-date spend reads
zero and budgets stop biting; see ``policies.spend`` for what is counted and what happens to the
requests routed while it runs.
"""

from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from audit.management.commands.archive_audit import parse_month
from policies import spend
from policies.budgets import month_of
from policies.counters import APPLICATION, TEAM, CountersUnavailable, Owner, RebuildBusy, Rebuilt
from policies.models import Application, Team


def dollars(micro: int, sign: str = "") -> str:
    return f"{Decimal(micro).scaleb(-6):{sign},.6f}"


class Command(BaseCommand):
    help = (
        "Recompute each team's and application's spend of a month from the routing decisions in the audit "
        "log, and write it into the counters routing charges (Redis with ROUTING_COUNTERS_URL, else the "
        "database). Counters the log does not support are set to zero. Safe to repeat."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--month", help="The month (YYYY-MM, in TIME_ZONE); default: the current one.")
        parser.add_argument("--dry-run", action="store_true", help="Show the counters and the ledger; change nothing.")

    def handle(self, *args: Any, **options: Any) -> None:
        month = parse_month(options["month"]) if options["month"] is not None else month_of(timezone.now())
        dry_run: bool = options["dry_run"]
        try:
            rebuilt = spend.rebuild(month, dry_run=dry_run)
        except (spend.RebuildRefused, RebuildBusy) as refusal:
            raise CommandError(str(refusal)) from None
        except CountersUnavailable as error:
            raise CommandError(f"The spend counters cannot be reached: {error}") from None
        if not rebuilt:
            self.stdout.write(f"Neither the counters nor the ledger hold any spend in {month:%Y-%m}.")
            return
        where = "Redis" if settings.ROUTING_COUNTERS_URL else "the database"
        self.stdout.write(f"Spend of {month:%Y-%m} in USD; the counters in {where} as read, and the ledger:")
        self._table(rebuilt)
        wrong = sum(row.counter != row.ledger for row in rebuilt)
        if dry_run:
            self.stdout.write(f"Dry run: {wrong} of {len(rebuilt)} counters differ from the ledger; nothing changed.")
        else:
            self.stdout.write(f"Set {wrong} of {len(rebuilt)} counters to the ledger; the others already matched.")

    def _table(self, rebuilt: list[Rebuilt]) -> None:
        names = self._names(rebuilt)
        rows = [("", "", "counter", "ledger", "difference")]
        for row in rebuilt:
            name = names.get((row.scope, row.owner_id), f"#{row.owner_id} (deleted)")
            difference = dollars(row.ledger - row.counter, "+") if row.ledger != row.counter else ""
            rows.append((row.scope, name, dollars(row.counter), dollars(row.ledger), difference))
        widths = [max(len(cells[column]) for cells in rows) for column in range(5)]
        for cells in rows:
            left = [cell.ljust(width) for cell, width in zip(cells[:2], widths, strict=False)]
            right = [cell.rjust(width) for cell, width in zip(cells[2:], widths[2:], strict=True)]
            self.stdout.write("  ".join([*left, *right]).rstrip())

    @staticmethod
    def _names(rebuilt: list[Rebuilt]) -> dict[Owner, str]:
        """Who each counter belongs to, as people know them: name and slug."""
        names: dict[Owner, str] = {}
        for scope, model in ((TEAM, Team), (APPLICATION, Application)):
            owners = model.objects.in_bulk([row.owner_id for row in rebuilt if row.scope == scope])
            names.update({(scope, pk): f"{owner.name} ({owner.slug})" for pk, owner in owners.items()})
        return names
