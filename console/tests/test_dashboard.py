"""The dashboard on the home page: its figures against sums worked out by hand from rollup rows.

Hourly rollup rows are built directly (``audit.rollups`` has its own tests from events), each
followed by what the rollup job does next, adding its day up again. The hours are chosen around
a frozen "now" so that each row lands where a test wants it: in the range or not, on a whole day
(read from the daily rollups) or on one the range cuts (read from the hourly ones).
"""

import csv
import datetime
import io
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import User
from django.http import QueryDict
from django.test import Client
from django.urls import reverse

from audit.models import UsageRollup
from audit.rollups import rebuild_days
from console.dashboard import page
from console.dashboard.filters import Scope
from console.dashboard.panels import PANELS, Panel
from console.dashboard.queries import Sums
from policies import services
from policies.models import BudgetAlert, ComplianceRequest, Team
from policies.tests.factories import make_app, make_team, pinned_rule, rules_document
from registry.models import DataClassification, Model, ModelVersion
from registry.tests.factories import approve, make_model, make_provider, make_version

pytestmark = pytest.mark.django_db

UTC = datetime.UTC
# A Wednesday afternoon: the default range (7 days) runs from 2026-11-11 13:00 to 2026-11-18 13:00.
NOW = datetime.datetime(2026, 11, 18, 12, 30, tzinfo=UTC)


def at(day: int, hour: int, month: int = 11) -> datetime.datetime:
    return datetime.datetime(2026, month, day, hour, tzinfo=UTC)


@pytest.fixture(autouse=True)
def frozen() -> Iterator[None]:
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def portfolio(vocabulary: dict[str, Any]) -> dict[str, ModelVersion]:
    """A cheap economy version and a dear frontier one from two providers, both approved for
    internal data, and a dearer one approved only for PII."""
    acme, zenith = make_provider(name="Acme AI", slug="acme"), make_provider(name="Zenith", slug="zenith")
    cheap = make_version(
        make_model(acme, name="Swift", tier=Model.Tier.ECONOMY),
        lifecycle="approved",
        label="1",
        input_cost_per_mtok=Decimal("1"),
        output_cost_per_mtok=Decimal("2"),
    )
    dear = make_version(
        make_model(zenith, name="Summit", tier=Model.Tier.FRONTIER),
        lifecycle="approved",
        label="9",
        input_cost_per_mtok=Decimal("10"),
        output_cost_per_mtok=Decimal("30"),
    )
    pii_only = make_version(
        make_model(zenith, name="Vault", tier=Model.Tier.FRONTIER),
        lifecycle="approved",
        label="1",
        input_cost_per_mtok=Decimal("100"),
        output_cost_per_mtok=Decimal("100"),
    )
    approve(cheap, "internal")
    approve(dear, "internal")
    approve(pii_only, "pii")
    return {"cheap": cheap, "dear": dear, "pii_only": pii_only}


@pytest.fixture
def teams(db: Any) -> dict[str, Team]:
    care = make_team(name="Care", slug="care", monthly_budget_usd=Decimal("100"))
    research = make_team(name="Research", slug="research", monthly_budget_usd=Decimal("50"))
    make_app(care, name="Helpdesk", slug="helpdesk")
    make_app(research, name="Trials", slug="trials")
    return {"care": care, "research": research}


def rollup(
    hour: datetime.datetime,
    version: ModelVersion | None = None,
    *,
    team: str = "Care",
    application: str = "Helpdesk",
    classification: str = "internal",
    policy: str = "main",
    rule: str = "default",
    **sums: Any,
) -> UsageRollup:
    row = UsageRollup.objects.create(
        hour=hour,
        application_name=application,
        team_name=team,
        policy_slug=policy,
        rule=rule,
        model_version_id=version.pk if version else None,
        model_version_name=str(version) if version else "",
        task_type="summarization",
        classification=classification,
        **sums,
    )
    rebuild_days([hour])
    return row


def client_for(user: User | None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def panels(user: User, query: str = "") -> dict[str, Panel]:
    response = client_for(user).get(reverse("home") + query)
    assert response.status_code == 200
    found: dict[str, Panel] = response.context["panels"]
    return found


def download(user: User, table: str, query: str = "") -> list[list[str]]:
    response = client_for(user).get(reverse("dashboard-csv", args=[table]) + query)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith(f'attachment; filename="switchboard-{table}-')
    return list(csv.reader(io.StringIO(response.content.decode())))


def by_first_column(rows: list[list[Any]]) -> dict[str, list[Any]]:
    return {str(row[0]): row for row in rows}


@pytest.fixture
def traffic(portfolio: dict[str, ModelVersion], teams: dict[str, Team]) -> dict[str, ModelVersion]:
    """Rows in and around the default range; the comments give what each contributes."""
    cheap, dear = portfolio["cheap"], portfolio["dear"]
    # In the range, on whole days (Nov 12 to 17) and on days it cuts (Nov 11 after 13:00, Nov 18).
    rollup(at(14, 10), cheap, decisions=10, estimated_cost_usd=Decimal("1.50"))
    rollup(at(14, 11), dear, decisions=4, estimated_cost_usd=Decimal("8.00"))
    rollup(at(11, 15), cheap, decisions=6, estimated_cost_usd=Decimal("0.90"))
    rollup(at(18, 9), dear, decisions=2, estimated_cost_usd=Decimal("4.00"), team="Research", application="Trials")
    rollup(at(16, 8), None, refusals=3, rule="phi", classification="phi")
    # Before the range: only the budget panel counts these (November's spend).
    rollup(at(11, 8), cheap, decisions=100, estimated_cost_usd=Decimal("20.00"))
    rollup(at(5, 12), dear, decisions=100, estimated_cost_usd=Decimal("40.00"))
    # October: in no panel of the default range.
    rollup(at(30, 12, month=10), dear, decisions=1000, estimated_cost_usd=Decimal("500"))
    return portfolio


# --- Figures ---------------------------------------------------------------------------------


def test_spend_by_provider_matches_the_rows_in_the_range(administrator: User, traffic: Any) -> None:
    spend = panels(administrator)["spend"].table
    assert [column.label for column in spend.columns] == ["Period (UTC)", "Zenith", "Acme AI", "Total"]
    assert spend.total == ["Total", Decimal("12.00"), Decimal("2.40"), Decimal("14.40")]
    days = by_first_column(spend.rows)
    assert list(days) == [f"2026-11-{day}" for day in range(11, 19)]
    assert days["2026-11-11"][1:] == [0, Decimal("0.90"), Decimal("0.90")]
    assert days["2026-11-14"][1:] == [Decimal("8.00"), Decimal("1.50"), Decimal("9.50")]
    assert days["2026-11-18"][1:] == [Decimal("4.00"), 0, Decimal("4.00")]

    rows = download(administrator, "spend")
    assert rows[0] == ["Period (UTC)", "Zenith", "Acme AI", "Total"]
    assert rows[-1] == ["Total", "12.000000", "2.400000", "14.400000"]
    assert by_first_column(rows)["2026-11-14"] == ["2026-11-14", "8.000000", "1.500000", "9.500000"]


def test_spend_splits_by_model_and_by_team(administrator: User, traffic: Any) -> None:
    by_model = panels(administrator, "?spend_by=model")["spend"].table
    assert [column.label for column in by_model.columns][1:] == ["Zenith Summit", "Acme AI Swift", "Total"]
    by_team = panels(administrator, "?spend_by=team")["spend"].table
    assert [column.label for column in by_team.columns][1:] == ["Care", "Research", "Total"]
    assert by_team.total == ["Total", Decimal("10.40"), Decimal("4.00"), Decimal("14.40")]


def test_range_and_filters_change_the_figures(administrator: User, traffic: Any) -> None:
    month = panels(administrator, "?range=30d")
    assert month["spend"].table.total[-1] == Decimal("574.40")  # with October 30, November 5 and 11 08:00
    day = panels(administrator, "?range=24h")
    assert [row[0] for row in day["spend"].table.rows][:2] == ["2026-11-17 13:00", "2026-11-17 14:00"]
    assert day["spend"].table.total[-1] == Decimal("4.00")
    care = panels(administrator, "?team=Care")
    assert care["spend"].table.total[-1] == Decimal("10.40")
    trials = panels(administrator, "?application=Trials&range=30d")
    assert trials["spend"].table.total[-1] == Decimal("4.00")
    phi = panels(administrator, "?classification=phi")
    assert phi["spend"].table.rows == []
    assert phi["refusals"].table.rows[0][3] == 3
    custom = panels(administrator, "?range=custom&since=2026-11-05&until=2026-11-11")
    assert custom["spend"].table.total[-1] == Decimal("60.90")  # both days inclusive, whole days


def test_decisions_by_version_and_the_tier_mix(administrator: User, traffic: dict[str, ModelVersion]) -> None:
    found = panels(administrator)
    decisions = found["decisions"].table
    cheap, dear = str(traffic["cheap"]), str(traffic["dear"])
    assert [column.label for column in decisions.columns] == ["Period (UTC)", cheap, dear, "Refused", "Total"]
    assert decisions.total == ["Total", 16, 6, 3, 25]
    assert by_first_column(decisions.rows)["2026-11-16"][1:] == [0, 0, 3, 3]
    tiers = by_first_column(found["tiers"].table.rows)
    assert tiers["Economy"][1:3] == [16, 64.0]
    assert tiers["Frontier"][1:] == [6, 24.0, Decimal("12.00")]
    assert tiers["Refused"][1:3] == [3, 12.0]


def test_top_rules_and_refusals_by_rule_and_classification(administrator: User, traffic: Any) -> None:
    found = panels(administrator)
    assert [row[:4] for row in found["rules"].table.rows] == [["default", "main", 22, 0], ["phi", "main", 0, 3]]
    refusals = found["refusals"].table.rows
    assert [row[:5] for row in refusals] == [["phi", "main", "phi", 3, 100.0]]
    assert "kind=routing.refused" in refusals[0][5].url and "classification=phi" in refusals[0][5].url
    assert "reason" in " ".join(found["refusals"].notes)


def test_latency_merges_the_hourly_histograms_and_counts_failures(
    administrator: User, portfolio: dict[str, ModelVersion], teams: Any
) -> None:
    cheap = portfolio["cheap"]
    # Bucket 3 holds latencies in (100, 150] ms; 4 outcomes in each of two hours, one on a whole day.
    histogram = [0, 0, 0, 4, *[0] * 17]
    rollup(at(14, 10), cheap, decisions=4, outcomes_ok=3, outcomes_error=1, latency_histogram=histogram)
    rollup(at(18, 10), cheap, decisions=4, outcomes_ok=3, outcomes_timeout=1, latency_histogram=histogram)
    latency = panels(administrator)["latency"].table.rows
    assert len(latency) == 1
    name, outcomes, ok, errors, timeouts, failed, p50, p95, p99 = latency[0]
    assert (name.text, outcomes, ok, errors, timeouts, failed) == (str(cheap), 8, 6, 1, 1, 25.0)
    # 8 latencies in (100, 150]: rank 4 for p50 and 7.6 for p95, interpolated inside the bucket.
    assert p50 == pytest.approx(125.0) and p95 == pytest.approx(147.5) and p99 == pytest.approx(149.5)
    rows = download(administrator, "latency")
    assert rows[1][1:] == ["8", "6", "1", "1", "25.000", "125.000", "147.500", "149.500"]


def test_savings_against_the_most_expensive_allowed_version_and_a_chosen_one(
    administrator: User, portfolio: dict[str, ModelVersion], teams: Any
) -> None:
    cheap, dear = portfolio["cheap"], portfolio["dear"]
    # One million tokens in and 100,000 out answered by the cheap version: $1 + $0.20 at its price.
    rollup(
        at(14, 10),
        cheap,
        outcomes_ok=10,
        input_tokens=1_000_000,
        output_tokens=100_000,
        reported_cost_usd=Decimal("1.20"),
    )
    savings = panels(administrator)["savings"].table
    # The dearest version allowed for internal data is "dear" (pii_only is not): $10 + $3.
    assert savings.rows == [
        [
            "2026-11",
            "Care",
            1_000_000,
            100_000,
            Decimal("1.20"),
            Decimal("13"),
            Decimal("11.80"),
            pytest.approx(90.769, abs=1e-3),
        ]
    ]
    chosen = panels(administrator, f"?baseline={cheap.pk}")["savings"].table
    assert chosen.total[4:7] == [Decimal("1.20"), Decimal("1.2"), Decimal("0")]
    assert download(administrator, "savings", f"?baseline={dear.pk}")[1][5:7] == ["13.000000", "11.800000"]
    # A version that no longer exists falls back to the default rather than failing.
    assert panels(administrator, "?baseline=999999")["savings"].table.total[5] == Decimal("13")


def test_budget_counts_the_month_from_its_first_day(administrator: User, traffic: Any) -> None:
    budget = by_first_column(panels(administrator)["budget"].table.rows)
    # Care in November: 1.50 + 8.00 + 0.90 + 20.00 + 40.00 (before the range, same month) of $100.
    assert budget["Team Care"][1:] == [
        "2026-11",
        Decimal("70.40"),
        Decimal("100"),
        pytest.approx(70.4),
        "within budget",
    ]
    assert budget["Team Research"][2] == Decimal("4.00")
    rollup(at(15, 9), traffic["dear"], decisions=1, estimated_cost_usd=Decimal("15.00"))
    assert by_first_column(panels(administrator)["budget"].table.rows)["Team Care"][5] == "80% reached"


def test_versions_due_to_retire_that_still_get_traffic_are_listed(
    administrator: User, portfolio: dict[str, ModelVersion], teams: Any
) -> None:
    old = make_version(make_model(name="Legacy"), lifecycle="deprecated", label="0")
    soon = make_version(
        make_model(name="Sunset"), lifecycle="approved", label="2", retires_on=datetime.date(2026, 12, 1)
    )
    rollup(at(14, 10), old, decisions=5)
    rollup(at(15, 10), soon, outcomes_ok=2)
    rollup(at(15, 11), portfolio["cheap"], decisions=7)
    listed = by_first_column(panels(administrator)["lifecycle"].table.rows)
    assert set(listed) == {str(old), str(soon)}
    assert listed[str(old)][1:] == ["deprecated", None, None, 5, 0, "2026-11-14"]
    assert listed[str(soon)][3:6] == [datetime.date(2026, 12, 1), 0, 2]


# --- Governance and the banner ---------------------------------------------------------------


def test_pending_reviews_are_listed_oldest_first_with_their_age(
    administrator: User, reviewer: User, vocabulary: Any
) -> None:
    version = make_version(lifecycle="approved")
    approve(version, "internal")
    ref = f"{version.model.provider.slug}/{version.model.slug}/{version.label}"
    with time_machine.travel(NOW - datetime.timedelta(days=3), tick=False):
        draft = services.create_policy(
            name="Main", slug="main", document=rules_document(pinned_rule(ref)), actor=administrator
        )
        services.submit(draft, actor=administrator)
    ComplianceRequest.objects.create(
        model_version=version,
        classification=DataClassification.objects.get(slug="pii"),
        decision="approved",
        reason="DPA signed",
        requested_by=administrator,
        requested_by_name="alice",
        created_at=NOW - datetime.timedelta(hours=5),
    )
    reviews = client_for(reviewer).get(reverse("home")).context["reviews"]
    assert [(row[0].text, row[1], row[2], row[4], row[5]) for row in reviews.rows] == [
        ("Main v1", "policy version", "alice", "3 days", 72),
        (f"{version} × pii: approved", "compliance change", "alice", "5 hours", 5),
    ]
    assert [row[:3] for row in download(reviewer, "reviews")[1:]] == [
        ["Main v1", "policy version", "alice"],
        [f"{version} × pii: approved", "compliance change", "alice"],
    ]


def test_this_months_budget_alerts_show_as_a_banner(administrator: User, teams: dict[str, Team]) -> None:
    care, research = teams["care"], teams["research"]
    month = datetime.date(2026, 11, 1)
    BudgetAlert.objects.create(team=care, month=month, threshold=80, spend_usd=Decimal("81"), budget_usd=Decimal("100"))
    # Raised against an earlier, lower budget, and last month's: neither is current.
    BudgetAlert.objects.create(
        team=research, month=month, threshold=100, spend_usd=Decimal("30"), budget_usd=Decimal("30")
    )
    BudgetAlert.objects.create(
        team=research,
        month=datetime.date(2026, 10, 1),
        threshold=100,
        spend_usd=Decimal("60"),
        budget_usd=Decimal("50"),
    )
    html = client_for(administrator).get(reverse("home")).content.decode()
    assert "Budget at 80%:" in html and "has spent $81.00 of its $100.00 monthly budget" in html
    assert "Team Research" not in html.split("<h1>Overview</h1>")[0]


# --- Access, CSV, errors, queries ------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "status"), [("administrator", 200), ("reviewer", 200), ("auditor", 200), ("none", 403)]
)
def test_every_role_reads_the_dashboard_and_a_user_without_one_gets_403(
    personas: dict[str, User], role: str, status: int
) -> None:
    client = client_for(personas[role])
    assert client.get(reverse("home")).status_code == status
    assert client.get(reverse("dashboard-csv", args=["spend"])).status_code == status


def test_anonymous_visitors_are_sent_to_sign_in(db: Any) -> None:
    for url in (reverse("home"), reverse("dashboard-csv", args=["spend"])):
        response = Client().get(url)
        assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_every_table_downloads_as_csv_with_the_page_filters(administrator: User, traffic: Any) -> None:
    for table in (
        "spend",
        "budget",
        "savings",
        "decisions",
        "tiers",
        "rules",
        "latency",
        "lifecycle",
        "refusals",
        "reviews",
    ):
        rows = download(administrator, table, "?range=30d&team=Care")
        assert rows and rows[0], table
    assert download(administrator, "tiers", "?team=Research")[1:] == [
        ["Frontier", "2", "100.000", "4.000000"],
        ["Total", "2", "100.000", "4.000000"],
    ]
    client = client_for(administrator)
    assert client.get(reverse("dashboard-csv", args=["nothing"])).status_code == 404
    bad = client.get(reverse("dashboard-csv", args=["spend"]) + "?range=custom&since=2026-11-10")
    assert bad.status_code == 400 and b"both dates" in bad.content


def test_the_page_links_its_csv_downloads_with_the_same_query(administrator: User, traffic: Any) -> None:
    html = client_for(administrator).get(reverse("home") + "?range=30d&team=Care").content.decode()
    assert f'href="{reverse("dashboard-csv", args=["spend"])}?range=30d&amp;team=Care"' in html
    assert 'src="/static-vendor/plotly.min.js?v=' in html and "cdn" not in html.lower()
    for slug in ("spend", "budget", "decisions", "tiers", "rules", "refusals"):
        assert f'id="chart-{slug}"' in html
    assert '<th scope="col"' in html and '<th scope="row">' in html


def test_an_invalid_range_shows_its_error_over_the_default_view(administrator: User, traffic: Any) -> None:
    response = client_for(administrator).get(reverse("home") + "?range=custom&since=2026-11-10&until=2026-11-01")
    assert response.status_code == 400
    assert "The range ends before it starts." in response.content.decode()
    assert response.context["scope"].label == "last 7 days"


def test_query_count_does_not_grow_with_traffic_versions_or_teams(
    administrator: User, traffic: dict[str, ModelVersion], django_assert_num_queries: Any
) -> None:
    client = client_for(administrator)
    # Session, user, permissions (the user's and its groups'), the three filter lists, four rollup
    # sums (daily and hourly rows, each counts and histograms), versions, the matrix, reviews (2),
    # alerts, lifecycle counts, expiring and expired cells, planned retirements and the user's
    # roles for the header.
    with django_assert_num_queries(21):
        assert client.get(reverse("home")).status_code == 200
    for n in range(5):
        team = make_team(name=f"More {n}", slug=f"more-{n}")
        make_app(team, name=f"More app {n}", slug=f"more-app-{n}")
        version = make_version(lifecycle="approved")
        for day in (12, 13, 18):
            rollup(at(day, n), version, team=team.name, application=f"More app {n}", decisions=n + 1)
    with django_assert_num_queries(21):
        assert client.get(reverse("home")).status_code == 200


def test_a_rebuilt_hour_changes_its_day_on_the_dashboard(administrator: User, traffic: dict[str, ModelVersion]) -> None:
    assert panels(administrator)["spend"].table.total[-1] == Decimal("14.40")
    # What audit.rollups.rebuild does to an hour: delete its rows, write them anew, add the day up.
    UsageRollup.objects.filter(hour=at(14, 10)).delete()
    rollup(at(14, 10), traffic["cheap"], decisions=10, estimated_cost_usd=Decimal("2.50"))
    assert panels(administrator)["spend"].table.total[-1] == Decimal("15.40")
    UsageRollup.objects.filter(hour=at(14, 11)).delete()
    rebuild_days([at(14, 11)])
    assert panels(administrator)["spend"].table.total[-1] == Decimal("7.40")


@pytest.mark.parametrize(
    "query",
    [
        "",
        "range=30d",
        "range=24h",
        "team=Care&range=30d",
        "classification=phi",
        "range=custom&since=2026-11-01&until=2026-11-18",
        "range=custom&since=2026-06-01&until=2026-11-18",  # months
        "range=custom&since=2026-11-14&until=2026-11-14",  # one day, in hours
    ],
)
def test_daily_and_hourly_sums_give_the_same_panels(
    administrator: User, traffic: dict[str, ModelVersion], query: str
) -> None:
    # More hours on the days the default range cuts and on whole days, with latencies.
    histogram = [0] * 21
    histogram[3] = 2
    for day, hour in ((11, 12), (11, 14), (13, 0), (13, 23), (18, 0), (1, 0), (31, 23)):
        month = 10 if day == 31 else 11
        rollup(at(day, hour, month), traffic["cheap"], decisions=1, outcomes_ok=2, latency_histogram=histogram)

    def tables(*, daily: bool) -> dict[str, Any]:
        _, dashboard = page.load(QueryDict(query), NOW)
        dashboard.sums = Sums(dashboard.scope, now=NOW, daily=daily)
        return {name: (table.rows, table.total) for name, build in PANELS.items() for table in [build(dashboard).table]}

    both = tables(daily=True)
    assert both == tables(daily=False)
    assert both["decisions"][1] is not None  # every one of these ranges holds traffic


def test_a_range_ending_in_the_past_before_midnight_reads_that_days_hours(traffic: dict[str, ModelVersion]) -> None:
    # Nov 14 has rows at 10:00 and 11:00; a range ending at 11:00 (in the past) must leave the second out.
    scope = Scope(since=at(12, 0), until=at(14, 11), label="test")
    daily, hourly = Sums(scope, now=NOW), Sums(scope, now=NOW, daily=False)
    assert sum(row.decisions for row in daily.rows) == sum(row.decisions for row in hourly.rows) == 10
    # November up to Nov 14 11:00: 40.00 (5th) + 20.00 + 0.90 (11th) + 1.50 (14th, 10:00).
    assert sum(row.estimated for row in daily.month_rows) == Decimal("62.40")
