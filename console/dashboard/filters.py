"""The dashboard's GET form: a time range and three filters, shared by every chart and CSV link.

The form lives in the query string so that a view can be bookmarked, sent to a colleague and
downloaded as CSV with exactly the same figures. Rollups store names (a team renamed later keeps
its old rows under the old name), so the filters compare names; the choices are today's teams,
applications and classifications, which the caller reads once and passes in.
"""

import datetime
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from django import forms
from django.core.validators import RegexValidator
from django.db.models import Model, QuerySet

R = TypeVar("R", bound=Model)

HOUR = datetime.timedelta(hours=1)
DAY = datetime.timedelta(days=1)
PRESETS: dict[str, tuple[str, datetime.timedelta]] = {
    "24h": ("last 24 hours", datetime.timedelta(hours=24)),
    "7d": ("last 7 days", datetime.timedelta(days=7)),
    "30d": ("last 30 days", datetime.timedelta(days=30)),
}
DEFAULT_RANGE = "7d"
CUSTOM = "custom"
# A custom range longer than this is refused: a year is what one screen of charts can say.
MAX_DAYS = 366
# Up to two days a chart shows hours, up to about a quarter days, beyond that months.
HOURLY_UP_TO = datetime.timedelta(days=2)
DAILY_UP_TO = datetime.timedelta(days=92)
SPEND_BY = {"provider": "Provider", "model": "Model", "team": "Team"}
DEFAULT_SPEND_BY = "provider"
ANY = ""
# The savings baseline by default: the dearest version the matrix allows per classification.
MOST_EXPENSIVE = "max"
FILTERS = ("team", "application", "classification")
DEFAULTS = {"range": DEFAULT_RANGE, "spend_by": DEFAULT_SPEND_BY, "baseline": MOST_EXPENSIVE}


@dataclass(frozen=True)
class Scope:
    """What every panel sums: rollup hours in [since, until) that match the filters."""

    since: datetime.datetime
    until: datetime.datetime
    label: str
    team: str = ANY
    application: str = ANY
    classification: str = ANY

    @property
    def bucket(self) -> str:
        """The time step of the charts: ``hour``, ``day`` or ``month``."""
        span = self.until - self.since
        if span <= HOURLY_UP_TO:
            return "hour"
        return "day" if span <= DAILY_UP_TO else "month"

    def matching(self, rows: "QuerySet[R]") -> "QuerySet[R]":
        """The rollup rows, hourly or daily, that match the filters (the caller chooses the hours)."""
        if self.team:
            rows = rows.filter(team_name=self.team)
        if self.application:
            rows = rows.filter(application_name=self.application)
        if self.classification:
            rows = rows.filter(classification=self.classification)
        return rows

    def describe(self) -> str:
        """The scope in words, for captions: what the figures cover."""
        parts = [self.label]
        for name, value in (("team", self.team), ("application", self.application), ("data", self.classification)):
            if value:
                parts.append(f"{name} {value}")
        return ", ".join(parts)


def current_hour_end(now: datetime.datetime) -> datetime.datetime:
    """The end of the current UTC hour: ranges end there so the hour in progress is included."""
    return now.astimezone(datetime.UTC).replace(minute=0, second=0, microsecond=0) + HOUR


def _choices(values: Iterable[str], everything: str) -> list[tuple[str, str]]:
    return [(ANY, everything), *((value, value) for value in values)]


class DashboardForm(forms.Form):
    """Range, filters, how spend is split and the savings baseline; all optional.

    An invalid form is shown with its errors over the default view rather than an error page.
    """

    range = forms.ChoiceField(
        label="Time range",
        choices=[*((key, label.capitalize()) for key, (label, _) in PRESETS.items()), (CUSTOM, "Custom dates")],
        required=False,
    )
    since = forms.DateField(label="From (UTC)", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(label="To (UTC, inclusive)", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    team = forms.ChoiceField(label="Team", required=False)
    application = forms.ChoiceField(label="Application", required=False)
    classification = forms.ChoiceField(label="Data classification", required=False)
    spend_by = forms.ChoiceField(label="Spend by", choices=list(SPEND_BY.items()), required=False)
    # Checked against the registry by the savings panel: an id no longer there means the default.
    baseline = forms.CharField(
        label="Baseline",
        required=False,
        validators=[RegexValidator(rf"^({MOST_EXPENSIVE}|[0-9]{{1,18}})$", "Choose a baseline from the list.")],
    )

    def __init__(
        self,
        data: Any = None,
        *,
        teams: Iterable[str] = (),
        applications: Iterable[str] = (),
        classifications: Iterable[str] = (),
    ) -> None:
        if data is not None:
            # Show the defaults as chosen, so the form says what the figures are for.
            data = data.copy()
            for name, value in DEFAULTS.items():
                if not data.get(name):
                    data[name] = value
        super().__init__(data)
        cast(forms.ChoiceField, self.fields["team"]).choices = _choices(teams, "All teams")
        cast(forms.ChoiceField, self.fields["application"]).choices = _choices(applications, "All applications")
        cast(forms.ChoiceField, self.fields["classification"]).choices = _choices(
            classifications, "All classifications"
        )

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        if cleaned.get("range") == CUSTOM:
            since, until = cleaned.get("since"), cleaned.get("until")
            if since is None or until is None:
                raise forms.ValidationError("A custom range needs both dates.")
            if until < since:
                raise forms.ValidationError("The range ends before it starts.")
            if (until - since).days + 1 > MAX_DAYS:
                raise forms.ValidationError(f"Choose at most {MAX_DAYS} days.")
        return cleaned

    def values(self) -> dict[str, Any]:
        """The cleaned values, or nothing when the form is invalid (the default view)."""
        return self.cleaned_data if self.is_valid() else {}

    def scope(self, now: datetime.datetime) -> Scope:
        data = self.values()
        filters = {name: data.get(name) or ANY for name in FILTERS}
        choice = data.get("range") or DEFAULT_RANGE
        if choice == CUSTOM:
            since = datetime.datetime.combine(data["since"], datetime.time(), tzinfo=datetime.UTC)
            until = datetime.datetime.combine(data["until"], datetime.time(), tzinfo=datetime.UTC) + DAY
            label = f"{data['since']:%Y-%m-%d} to {data['until']:%Y-%m-%d}"
            return Scope(since=since, until=until, label=label, **filters)
        label, span = PRESETS[choice]
        until = current_hour_end(now)
        return Scope(since=until - span, until=until, label=label, **filters)

    def chosen_spend_by(self) -> str:
        return self.values().get("spend_by") or DEFAULT_SPEND_BY

    def chosen_baseline(self) -> str:
        return self.values().get("baseline") or MOST_EXPENSIVE

    def query(self, **changes: str) -> dict[str, str]:
        """The query string's parameters as given (valid ones only), with ``changes`` applied:
        links and CSV downloads repeat exactly the view on screen."""
        data = self.values()
        params = {name: self.data.get(name, "") for name in self.fields if data.get(name) not in (None, "")}
        if data.get("range") != CUSTOM:
            params.pop("since", None)
            params.pop("until", None)
        params.update(changes)
        return {name: value for name, value in params.items() if value and DEFAULTS.get(name) != value}
