"""The dashboard in a real browser: plotly draws the charts, and the form changes what they show."""

import datetime
import re
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from audit.models import UsageRollup
from audit.rollups import hour_of, rebuild_days
from conftest import sign_in
from policies.tests.factories import make_app, make_team
from registry.models import Model
from registry.tests.factories import make_model, make_provider, make_version

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def chart_series(page: Any, slug: str) -> list[str]:
    """The names of the traces plotly drew in a chart (plotly keeps them on the element)."""
    page.wait_for_selector(f"#chart-{slug} .main-svg")
    names: list[str] = page.evaluate(f"document.getElementById('chart-{slug}').data.map(trace => trace.name)")
    return names


def spend_total(page: Any) -> str:
    total: str = page.locator('table[data-panel="spend"] tfoot td').last.text_content().strip()
    return total


def test_administrator_changes_range_and_team_and_the_charts_and_tables_follow(
    page: Any, administrator: User, vocabulary: dict[str, Any]
) -> None:
    acme, zenith = make_provider(name="Acme AI", slug="acme"), make_provider(name="Zenith", slug="zenith")
    cheap = make_version(make_model(acme, name="Swift", tier=Model.Tier.ECONOMY), lifecycle="approved", label="1")
    dear = make_version(make_model(zenith, name="Summit", tier=Model.Tier.FRONTIER), lifecycle="approved", label="9")
    for name in ("Care", "Research"):
        make_app(make_team(name=name, slug=name.lower()), name=f"{name} app", slug=f"{name.lower()}-app")
    now = timezone.now()
    for hour, version, team, cost in (
        (now - datetime.timedelta(hours=1), cheap, "Care", "1.50"),
        (now - datetime.timedelta(days=10), dear, "Research", "4.00"),
    ):
        UsageRollup.objects.create(
            hour=hour_of(hour),
            application_name=f"{team} app",
            team_name=team,
            policy_slug="main",
            rule="default",
            model_version_id=version.pk,
            model_version_name=str(version),
            task_type="summarization",
            classification="internal",
            decisions=3,
            estimated_cost_usd=Decimal(cost),
        )
        rebuild_days([hour])  # as the rollup job does after an hour

    sign_in(page, "alice")
    assert page.get_by_role("heading", name="Overview").is_visible()
    assert page.get_by_label("Time range", exact=True).input_value() == "7d"
    assert chart_series(page, "spend") == ["Acme AI"]
    assert spend_total(page) == "$1.50"
    assert page.locator('table[data-panel="decisions"] thead').text_content().count("Swift") == 1

    page.get_by_label("Time range", exact=True).select_option("30d")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url(re.compile(r"range=30d"))
    assert sorted(chart_series(page, "spend")) == ["Acme AI", "Zenith"]
    assert spend_total(page) == "$5.50"
    assert "Summit" in page.locator('table[data-panel="decisions"] thead').text_content()

    page.get_by_label("Team", exact=True).select_option("Research")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url(re.compile(r"team=Research"))
    assert chart_series(page, "spend") == ["Zenith"]
    assert spend_total(page) == "$4.00"
    assert page.get_by_text("Figures for last 30 days, team Research").is_visible()
    tiers = page.locator('table[data-panel="tiers"] tbody').text_content()
    assert "Frontier" in tiers and "Economy" not in tiers
    # The CSV link carries the same range and team.
    link = page.get_by_role("link", name="Download CSV of spend by provider")
    assert link.get_attribute("href") == "/dashboard/spend.csv?range=30d&team=Research"
