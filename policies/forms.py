"""Forms for the teams, applications and API key pages. They check shape; services enforce the rules."""

import datetime
from decimal import Decimal
from typing import Any

from django import forms
from django.core.validators import validate_email
from django.utils import timezone

from policies.models import ApiKey, Application, Policy, Team

# Path segments the pages use after "teams/" and "applications/"; an object with that slug could
# never be opened, so the forms refuse it.
RESERVED_SLUGS = frozenset({"new"})
CENTS = Decimal("0.01")


def _check_slug(slug: str) -> str:
    if slug in RESERVED_SLUGS:
        raise forms.ValidationError(f"“{slug}” is reserved for the page that creates one; choose another slug.")
    return slug


class TeamForm(forms.ModelForm):  # type: ignore[type-arg]  # not subscriptable at runtime
    class Meta:
        model = Team
        fields = ["name", "slug", "monthly_budget_usd", "contacts"]
        widgets = {"contacts": forms.Textarea(attrs={"rows": 3})}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Said in the browser too, so a negative budget is caught before the round trip.
        self.fields["monthly_budget_usd"].widget.attrs["min"] = "0"

    def clean_slug(self) -> str:
        return _check_slug(self.cleaned_data["slug"])

    def clean_monthly_budget_usd(self) -> Decimal:
        """Stored with two decimals; normalised here so the audit's after matches what is stored, and
        typing "750" over "750.00" is no change at all."""
        budget: Decimal = self.cleaned_data["monthly_budget_usd"]
        return budget.quantize(CENTS)

    def clean_contacts(self) -> str:
        """Budget alerts go to these addresses, so a typo would silently lose them."""
        lines = [line.strip() for line in self.cleaned_data["contacts"].splitlines() if line.strip()]
        bad = []
        for line in lines:
            try:
                validate_email(line)
            except forms.ValidationError:
                bad.append(line)
        if bad:
            raise forms.ValidationError(f"Not an email address: {', '.join(bad)}. Give one address per line.")
        return "\n".join(lines)


class ApplicationForm(forms.ModelForm):  # type: ignore[type-arg]  # not subscriptable at runtime
    class Meta:
        model = Application
        fields = [
            "name",
            "slug",
            "team",
            "description",
            "allowed_classifications",
            "policy",
            "content_capture",
            "requests_per_minute",
            "monthly_budget_usd",
        ]
        widgets = {
            "allowed_classifications": forms.CheckboxSelectMultiple,
            "description": forms.Textarea(attrs={"rows": 3}),
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        policy = self.fields["policy"]
        assert isinstance(policy, forms.ModelChoiceField)
        policy.queryset = Policy.objects.order_by("name")
        policy.empty_label = "No policy: every request is refused"
        self.fields["requests_per_minute"].widget.attrs["min"] = "1"
        self.fields["monthly_budget_usd"].widget.attrs["min"] = "0"

    def clean_slug(self) -> str:
        return _check_slug(self.cleaned_data["slug"])

    def clean_monthly_budget_usd(self) -> Decimal | None:
        """As for a team's budget: two decimals, so "50" over "50.00" is no change."""
        budget: Decimal | None = self.cleaned_data["monthly_budget_usd"]
        return None if budget is None else budget.quantize(CENTS)


class ApplicationFilterForm(forms.Form):
    team = forms.ModelChoiceField(
        queryset=Team.objects.order_by("name"), to_field_name="slug", required=False, empty_label="All teams"
    )


class ApiKeyForm(forms.Form):
    name = forms.CharField(
        max_length=ApiKey._meta.get_field("name").max_length,
        help_text="Who or what uses it, e.g. “production” or “staging worker”.",
    )
    expires_at = forms.DateTimeField(
        required=False,
        label="Expires at",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Read per request: the time zone is a setting, and settings are not read at import time.
        self.fields[
            "expires_at"
        ].help_text = f"Optional, in {timezone.get_current_timezone_name()}. Leave empty for a key that never expires."

    def clean_expires_at(self) -> datetime.datetime | None:
        expires_at: datetime.datetime | None = self.cleaned_data["expires_at"]
        if expires_at is not None and expires_at <= timezone.now():
            raise forms.ValidationError("An expiry must be in the future.")
        return expires_at
