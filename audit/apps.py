from django.apps import AppConfig


class AuditConfig(AppConfig):
    """The audit log: every governance change, routing decision and reported outcome."""

    name = "audit"

    def ready(self) -> None:
        from audit import checks  # noqa: F401 - registers the deploy check
