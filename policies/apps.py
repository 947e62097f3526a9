from django.apps import AppConfig


class PoliciesConfig(AppConfig):
    """Routing policies, their reviewed versions, the routing engine and the routing API."""

    name = "policies"
