from django.contrib import admin

from console.admin import ReadOnlyAdmin
from policies.models import Application, BudgetAlert, Team


@admin.register(Team)
class TeamAdmin(ReadOnlyAdmin):
    """Read-only here: the console's pages change teams through the audited services."""

    list_display = ("name", "monthly_budget_usd")


@admin.register(Application)
class ApplicationAdmin(ReadOnlyAdmin):
    """Read-only here: the console's pages change applications through the audited services."""

    list_display = ("name", "team", "requests_per_minute", "monthly_budget_usd", "content_capture")
    list_filter = ("team",)


@admin.register(BudgetAlert)
class BudgetAlertAdmin(ReadOnlyAdmin):
    """Read-only: alerts are raised by routing, once per budget, month and threshold."""

    list_display = ("month", "team", "application", "threshold", "spend_usd", "budget_usd", "created_at")
    list_filter = ("threshold", "team")
