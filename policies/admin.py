from django.contrib import admin

from console.admin import ReadOnlyAdmin
from policies.models import Application, Team


@admin.register(Team)
class TeamAdmin(ReadOnlyAdmin):
    """Read-only here: the console's pages change teams through the audited services."""

    list_display = ("name", "monthly_budget_usd")


@admin.register(Application)
class ApplicationAdmin(ReadOnlyAdmin):
    """Read-only here: the console's pages change applications through the audited services."""

    list_display = ("name", "team", "content_capture")
    list_filter = ("team",)
