"""The reviewer's verdict form. It checks shape only: who may decide, and when a comment is
required, are the services' rules, so their refusals reach the page as they are."""

from django import forms

from policies.models import Review


class VerdictForm(forms.Form):
    verdict = forms.ChoiceField(choices=Review.Verdict.choices, widget=forms.RadioSelect, label="Verdict")
    comment = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="Required when you reject: say what must change.",
    )
