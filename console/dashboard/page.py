"""From a query string to what the home page and the CSV downloads show.

The views stay thin: they check the permission and call ``load`` and ``home_context`` (or
``csv_table``). Teams, applications and classifications are read once here and feed both the
filter choices and the budget panel.
"""

import datetime
from typing import Any
from urllib.parse import urlencode

from django.http import QueryDict
from django.urls import reverse

from console.dashboard import governance
from console.dashboard.filters import SPEND_BY, DashboardForm
from console.dashboard.panels import PANELS, Budgeted, Dashboard
from console.dashboard.tables import Table, render
from policies.models import Application, Team
from registry.models import DataClassification

# Tables with a CSV download that are not range panels: they list what waits for people now.
GOVERNANCE_TABLES = ("reviews",)
CSV_TABLES = (*PANELS, *GOVERNANCE_TABLES)


def load(params: QueryDict, now: datetime.datetime) -> tuple[DashboardForm, Dashboard]:
    teams = [
        Budgeted("team", name, name, budget, reverse("policies:team-detail", args=[slug]))
        for name, slug, budget in Team.objects.order_by("name").values_list("name", "slug", "monthly_budget_usd")
    ]
    applications = [
        Budgeted("application", name, team, budget, reverse("policies:application-detail", args=[slug]))
        for name, slug, team, budget in Application.objects.order_by("name").values_list(
            "name", "slug", "team__name", "monthly_budget_usd"
        )
    ]
    form = DashboardForm(
        params,
        teams=[team.name for team in teams],
        applications=sorted({application.name for application in applications}),
        classifications=DataClassification.objects.values_list("slug", flat=True),
    )
    dashboard = Dashboard(
        form.scope(now),
        now=now,
        teams=teams,
        applications=applications,
        spend_by=form.chosen_spend_by(),
        baseline=form.chosen_baseline(),
    )
    return form, dashboard


def csv_table(dashboard: Dashboard, name: str, now: datetime.datetime) -> Table:
    if name == "reviews":
        return governance.pending_reviews(now)
    return PANELS[name](dashboard).table


def home_context(form: DashboardForm, dashboard: Dashboard, now: datetime.datetime) -> dict[str, Any]:
    today = dashboard.today
    panels = {name: build(dashboard) for name, build in PANELS.items()}
    query = form.query()
    reviews = governance.pending_reviews(now)
    savings = panels["savings"].table.total
    return {
        "form": form,
        "scope": dashboard.scope,
        "panels": panels,
        "charts": [panels[name] for name in ("spend", "budget", "savings", "decisions", "tiers", "rules", "latency")],
        "headline": dashboard.headline(),
        "saved": {"amount": savings[6], "share": savings[7]} if savings else None,
        "baseline_text": dashboard.baseline.describe(),
        "baseline_options": dashboard.baseline_options,
        "baseline_choice": dashboard.baseline.choice,
        "spend_tabs": [
            (key, label, "?" + urlencode(form.query(spend_by=key)) + "#spend", key == dashboard.spend_by)
            for key, label in SPEND_BY.items()
        ],
        "keep": {name: value for name, value in query.items() if name not in ("baseline",)},
        "keep_for_filters": {name: value for name, value in query.items() if name in ("spend_by", "baseline")},
        "query_string": urlencode(query),
        "alerts": governance.budget_alerts(now),
        "reviews": reviews,
        "reviews_html": render(reviews, slug="reviews", caption="Waiting for review"),
        "counts": governance.lifecycle_counts(),
        "expiring": governance.expiring_cells(today),
        "expired": governance.expired_cells(today),
        "planned": governance.planned_retirements(today),
    }
