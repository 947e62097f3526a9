from django.apps import AppConfig
from django.db.models.signals import post_migrate


class ConsoleConfig(AppConfig):
    """The project itself: roles, the permission layer, shared templates and static files."""

    name = "console"

    def ready(self) -> None:
        from console.roles import sync_roles

        post_migrate.connect(sync_roles, dispatch_uid="console.sync_roles")
