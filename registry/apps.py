from django.apps import AppConfig


class RegistryConfig(AppConfig):
    """Providers, models, their immutable versions, and the compliance matrix."""

    name = "registry"
