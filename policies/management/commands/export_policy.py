"""Print a policy version as a YAML policy file, for version control or another installation."""

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from policies import yaml_io
from policies.models import Policy


class Command(BaseCommand):
    help = (
        "Print a policy version as canonical YAML (settings and rules, without version number or state), "
        "so export → import → export gives the same bytes. Default: the active version, else the latest."
    )

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        # "--version N" names the policy version, as people expect; it replaces Django's "--version"
        # (the Django version), which this command has no use for.
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug", help="the policy's slug")
        parser.add_argument("--version", type=int, dest="number", help="the version number (default: active)")
        parser.add_argument("--output", help="write to this file instead of standard output")

    def handle(self, *args: Any, **options: Any) -> None:
        policy = Policy.objects.filter(slug=options["slug"]).first()
        if policy is None:
            known = ", ".join(Policy.objects.values_list("slug", flat=True)) or "none"
            raise CommandError(f"No policy '{options['slug']}'; known: {known}.")
        if options["number"] is None:
            version = yaml_io.default_version(policy)
        else:
            version = policy.versions.filter(number=options["number"]).first()
        if version is None:
            raise CommandError(f"{policy.slug} has no version {options['number'] or ''}".rstrip() + ".")
        text = yaml_io.export_yaml(version)
        if options["output"]:
            try:
                Path(options["output"]).write_bytes(text.encode("utf-8"))
            except OSError as error:
                raise CommandError(f"Cannot write {options['output']}: {error}") from error
            self.stdout.write(f"Wrote {version} ({version.state}) to {options['output']}.")
        else:
            self.stdout.write(text, ending="")
