from django.apps import AppConfig


class AuditConfig(AppConfig):
    """The audit log: every governance change, routing decision and reported outcome."""

    name = "audit"
