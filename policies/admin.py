from django.contrib import admin

from policies.models import Application, Team


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("name", "monthly_budget_usd")


@admin.register(Application)
class ApplicationAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("name", "team", "content_capture")
    list_filter = ("team",)
