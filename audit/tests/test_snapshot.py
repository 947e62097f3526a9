from decimal import Decimal

from audit.snapshot import snapshot
from policies.models import Team


def test_decimals_are_recorded_with_the_fields_places() -> None:
    typed = Team(name="A", slug="a", monthly_budget_usd=Decimal("750"))
    stored = Team(name="A", slug="a", monthly_budget_usd=Decimal("750.00"))
    assert snapshot(typed)["monthly_budget_usd"] == snapshot(stored)["monthly_budget_usd"] == "750.00"
