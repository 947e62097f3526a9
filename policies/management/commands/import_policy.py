"""Read a YAML policy file into a new draft (creating the policy if it does not exist yet)."""

import sys
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from policies import yaml_io
from policies.document import DocumentError


class Command(BaseCommand):
    help = (
        "Import a YAML policy file: a new policy with draft v1, or a new draft of an existing policy. "
        "It goes through the same checks and review as any change; --submit sends it for review."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="the YAML file, or - for standard input")
        parser.add_argument("--submit", action="store_true", help="submit the new version for review")
        parser.add_argument("--summary", default=yaml_io.IMPORT_SUMMARY, help="what the new version changes")
        parser.add_argument(
            "--user", help="record this user as the author (default: system); they may then not approve it"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        text = self._read(options["file"])
        actor = None
        if options["user"]:
            actor = get_user_model().objects.filter(username=options["user"]).first()
            if actor is None:
                raise CommandError(f"No user '{options['user']}'.")
        try:
            version = yaml_io.import_yaml(text, submit=options["submit"], summary=options["summary"], actor=actor)
        except DocumentError as error:
            lines = "\n".join(f"  {problem}" for problem in error.problems)
            raise CommandError(f"{options['file']} was not imported:\n{lines}") from error
        self.stdout.write(f"Created {version} ({version.state}): {version.get_absolute_url()}")

    def _read(self, name: str) -> str:
        try:
            return sys.stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise CommandError(f"Cannot read {name}: {error}") from error
