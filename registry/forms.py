"""Forms for the registry pages. They check shape; the services enforce the business rules."""

import json
from typing import Any, cast

from django import forms

from registry.models import ComplianceCell, Model, ModelVersion, Provider, Region


class ProviderForm(forms.ModelForm):  # type: ignore[type-arg]  # not subscriptable at runtime
    base_url = forms.URLField(required=False, assume_scheme="https", label="Base URL")

    class Meta:
        model = Provider
        fields = ["name", "slug", "kind", "base_url", "credentials_env", "regions", "certifications", "status"]
        widgets = {
            "regions": forms.CheckboxSelectMultiple,
            "certifications": forms.CheckboxSelectMultiple,
        }


class ModelForm(forms.ModelForm):  # type: ignore[type-arg]  # not subscriptable at runtime
    class Meta:
        model = Model
        fields = ["provider", "name", "slug", "family", "tier", "capabilities", "description"]
        widgets = {"capabilities": forms.CheckboxSelectMultiple, "description": forms.Textarea(attrs={"rows": 3})}


class QualityScoresField(forms.JSONField):
    """Quality scores typed as JSON, e.g. {"code": 82, "reasoning": 75}."""

    def prepare_value(self, value: Any) -> str:
        if isinstance(value, dict):
            return json.dumps(value, sort_keys=True)
        return str(super().prepare_value(value))


class ModelVersionForm(forms.ModelForm):  # type: ignore[type-arg]  # not subscriptable at runtime
    """Create or edit a version. Once frozen, its technical fields are shown but cannot be sent."""

    quality_scores = QualityScoresField(
        required=False,
        help_text='Score from 0 to 100 per capability, as JSON: {"code": 82, "reasoning": 75}.',
        widget=forms.TextInput,
    )

    class Meta:
        model = ModelVersion
        fields = ModelVersion.EDITABLE_FIELDS
        widgets = {
            "regions": forms.CheckboxSelectMultiple,
            "deprecates_on": forms.DateInput(attrs={"type": "date"}),
            "retires_on": forms.DateInput(attrs={"type": "date"}),
            "notes": forms.Textarea(attrs={"rows": 3}),
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cast("forms.ModelChoiceField[Model]", self.fields["model"]).queryset = Model.objects.select_related("provider")
        successors = ModelVersion.objects.select_related("model__provider").exclude(lifecycle="retired")
        if self.instance.pk:
            successors = successors.exclude(pk=self.instance.pk)
        cast("forms.ModelChoiceField[ModelVersion]", self.fields["successor"]).queryset = successors
        for name in ("input_cost_per_mtok", "output_cost_per_mtok"):
            cast(forms.DecimalField, self.fields[name]).min_value = 0
            self.fields[name].widget.attrs["min"] = "0"
        self.fields["quality_scores"].initial = self.fields["quality_scores"].initial or {}
        if self.instance.pk and self.instance.is_frozen:
            for name in ModelVersion.TECHNICAL_FIELDS:
                self.fields[name].disabled = True

    def clean_quality_scores(self) -> dict[str, Any]:
        scores = self.cleaned_data.get("quality_scores")
        if scores in (None, ""):
            return {}
        if not isinstance(scores, dict):
            raise forms.ValidationError('Give an object of capability to score, e.g. {"code": 80}.')
        return scores


class ComplianceCellForm(forms.Form):
    """One cell of the matrix; every change needs a reason and a confirmation."""

    decision = forms.ChoiceField(choices=ComplianceCell.Decision.choices, widget=forms.RadioSelect)
    regions = forms.ModelMultipleChoiceField(
        queryset=Region.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Limit the approval to these regions; none ticked means every region the version is hosted in.",
    )
    expires_on = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    evidence = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 3}), help_text="What the decision rests on."
    )
    evidence_url = forms.URLField(required=False, label="Evidence link", assume_scheme="https")
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}), help_text="Why the decision changes; kept in the audit log."
    )

    def __init__(self, *args: Any, model_version: ModelVersion, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cast("forms.ModelMultipleChoiceField[Region]", self.fields["regions"]).queryset = model_version.regions.all()


class TransitionForm(forms.Form):
    to = forms.CharField(widget=forms.HiddenInput)
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)
