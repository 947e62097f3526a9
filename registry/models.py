import datetime
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.db.models import F, Q, TextChoices
from django.urls import reverse
from django.utils import timezone

ENV_VAR_NAME = RegexValidator(
    r"^[A-Z_][A-Z0-9_]*$", "Use an environment variable name: capitals, digits and underscores."
)
NON_NEGATIVE = MinValueValidator(Decimal("0"))


class Region(models.Model):
    """Where data may be processed (eu, us, ...): hosting regions and compliance limits name these."""

    slug = models.SlugField(max_length=32, unique=True)
    name = models.CharField(max_length=100)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug


class Certification(models.Model):
    """An attestation a provider holds (SOC 2, HIPAA BAA, ISO 27001, GDPR DPA, ...)."""

    slug = models.SlugField(max_length=32, unique=True)
    name = models.CharField(max_length=100)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Capability(models.Model):
    """A kind of task a model is good at; quality scores and routing task types use these slugs."""

    slug = models.SlugField(max_length=32, unique=True)
    name = models.CharField(max_length=100)

    class Meta:
        ordering = ["slug"]
        verbose_name_plural = "capabilities"

    def __str__(self) -> str:
        return self.slug


class DataClassification(models.Model):
    """A class of data (public, internal, confidential, pii, phi, ...), ordered by sensitivity."""

    slug = models.SlugField(max_length=32, unique=True)
    name = models.CharField(max_length=100)
    sensitivity = models.PositiveSmallIntegerField(
        unique=True, help_text="Higher is more sensitive; orders the matrix columns."
    )
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["sensitivity"]

    def __str__(self) -> str:
        return self.slug


class Provider(models.Model):
    """A company or platform serving models. Credentials are named, never stored."""

    # TextChoices by its own name: in this class body mypy takes ``models`` for Provider.models,
    # the related name of Model.provider.
    class Kind(TextChoices):
        OPENAI_COMPATIBLE = "openai_compatible", "OpenAI-compatible"
        ANTHROPIC = "anthropic", "Anthropic"
        GOOGLE = "google", "Google"
        AZURE_OPENAI = "azure_openai", "Azure OpenAI"
        BEDROCK = "bedrock", "AWS Bedrock"
        SELF_HOSTED = "self_hosted", "Self-hosted"

    class Status(TextChoices):
        ACTIVE = "active", "Active"
        DEGRADED = "degraded", "Degraded"
        DISABLED = "disabled", "Disabled"

    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(max_length=64, unique=True)
    kind = models.CharField(max_length=32, choices=Kind.choices)
    base_url = models.URLField(blank=True)
    credentials_env = models.CharField(
        "credentials variable",
        max_length=100,
        blank=True,
        validators=[ENV_VAR_NAME],
        help_text="Name of the environment variable holding the API key; the key itself is never stored.",
    )
    regions = models.ManyToManyField(Region, blank=True, related_name="providers")
    certifications = models.ManyToManyField(Certification, blank=True, related_name="providers")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("registry:provider-detail", args=[self.pk])


class Model(models.Model):
    """A model family member offered by a provider; its versions carry the technical facts."""

    class Tier(models.TextChoices):
        ECONOMY = "economy", "Economy"
        WORKHORSE = "workhorse", "Workhorse"
        FRONTIER = "frontier", "Frontier"

    provider = models.ForeignKey(Provider, on_delete=models.PROTECT, related_name="models")
    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=64)
    family = models.CharField(max_length=100, blank=True)
    tier = models.CharField(max_length=16, choices=Tier.choices)
    capabilities = models.ManyToManyField(Capability, blank=True, related_name="models")
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["provider__name", "name"]
        constraints = [
            models.UniqueConstraint(fields=["provider", "slug"], name="model_unique_slug_per_provider"),
            models.UniqueConstraint(fields=["provider", "name"], name="model_unique_name_per_provider"),
        ]

    def __str__(self) -> str:
        return f"{self.provider.name} {self.name}"

    def get_absolute_url(self) -> str:
        return reverse("registry:model-detail", args=[self.pk])


class Lifecycle(models.TextChoices):
    CANDIDATE = "candidate", "Candidate"
    APPROVED = "approved", "Approved"
    DEPRECATED = "deprecated", "Deprecated"
    RETIRED = "retired", "Retired"


# The only steps a version may take; anything else is refused.
LIFECYCLE_TRANSITIONS: dict[str, tuple[str, ...]] = {
    Lifecycle.CANDIDATE: (Lifecycle.APPROVED, Lifecycle.RETIRED),
    Lifecycle.APPROVED: (Lifecycle.DEPRECATED,),
    Lifecycle.DEPRECATED: (Lifecycle.RETIRED,),
    Lifecycle.RETIRED: (),
}


class ModelVersion(models.Model):
    """The unit everything points at: one exact, versioned model behind one provider API id.

    Once a version leaves ``candidate`` its technical fields (``TECHNICAL_FIELDS``) never change:
    decisions and outputs cite it, so a change is a new version (see ``services.new_version_from``).
    """

    TECHNICAL_FIELDS = (
        "model",
        "label",
        "api_model_id",
        "context_window",
        "max_output_tokens",
        "input_cost_per_mtok",
        "output_cost_per_mtok",
        "typical_latency_ms",
        "rate_limit_rpm",
        "rate_limit_tpm",
        "regions",
        "quality_scores",
    )
    # What people may set: technical fields while a candidate, the rest at any time.
    EDITABLE_FIELDS = (*TECHNICAL_FIELDS, "deprecates_on", "retires_on", "successor", "notes")

    model = models.ForeignKey(Model, on_delete=models.PROTECT, related_name="versions")
    label = models.CharField("version label", max_length=64)
    api_model_id = models.CharField("API model id", max_length=200)
    context_window = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    max_output_tokens = models.PositiveIntegerField(null=True, blank=True, validators=[MinValueValidator(1)])
    input_cost_per_mtok = models.DecimalField(
        "input cost per million tokens (USD)", max_digits=12, decimal_places=4, validators=[NON_NEGATIVE]
    )
    output_cost_per_mtok = models.DecimalField(
        "output cost per million tokens (USD)", max_digits=12, decimal_places=4, validators=[NON_NEGATIVE]
    )
    typical_latency_ms = models.PositiveIntegerField("typical latency (ms)")
    rate_limit_rpm = models.PositiveIntegerField("rate limit (requests/min)", null=True, blank=True)
    rate_limit_tpm = models.PositiveIntegerField("rate limit (tokens/min)", null=True, blank=True)
    regions = models.ManyToManyField(Region, related_name="model_versions")
    quality_scores = models.JSONField(
        default=dict, blank=True, help_text='Score from 0 to 100 per capability slug, e.g. {"code": 82}.'
    )
    lifecycle = models.CharField(max_length=16, choices=Lifecycle.choices, default=Lifecycle.CANDIDATE)
    approved_at = models.DateTimeField(null=True, blank=True)
    deprecated_at = models.DateTimeField(null=True, blank=True)
    retired_at = models.DateTimeField(null=True, blank=True)
    deprecates_on = models.DateField(
        "planned deprecation", null=True, blank=True, help_text="Deprecated automatically on this day."
    )
    retires_on = models.DateField(
        "planned retirement", null=True, blank=True, help_text="Retired automatically on this day."
    )
    successor = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="predecessors")
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["model__provider__name", "model__name", "-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["model", "label"], name="version_unique_label_per_model"),
            models.CheckConstraint(
                condition=Q(input_cost_per_mtok__gte=0) & Q(output_cost_per_mtok__gte=0),
                name="version_costs_not_negative",
            ),
            models.CheckConstraint(
                condition=~Q(successor=F("pk")),
                name="version_not_own_successor",
                violation_error_message="A version cannot be its own successor.",
            ),
            models.CheckConstraint(
                condition=Q(retires_on__isnull=True)
                | Q(deprecates_on__isnull=True)
                | Q(retires_on__gte=F("deprecates_on")),
                name="version_retires_after_deprecation",
                violation_error_message="Planned retirement cannot come before planned deprecation.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.model} {self.label}"

    def get_absolute_url(self) -> str:
        return reverse("registry:version-detail", args=[self.pk])

    def clean(self) -> None:
        """Name the field at fault; the database constraints say the same for any other writer."""
        errors = {}
        if self.pk and self.successor_id == self.pk:
            errors["successor"] = "A version cannot be its own successor."
        if self.deprecates_on and self.retires_on and self.retires_on < self.deprecates_on:
            errors["retires_on"] = "Planned retirement cannot come before planned deprecation."
        if errors:
            raise ValidationError(errors)

    @property
    def is_frozen(self) -> bool:
        """True once technical fields may no longer change."""
        return self.lifecycle != Lifecycle.CANDIDATE

    def allowed_transitions(self) -> tuple[str, ...]:
        return LIFECYCLE_TRANSITIONS[self.lifecycle]

    def lifecycle_warnings(self, today: datetime.date | None = None) -> list[str]:
        """Planned deprecation or retirement still ahead, for people to act on in time."""
        today = today or timezone.localdate()
        warnings = []
        if self.deprecates_on and self.deprecates_on >= today and self.lifecycle == Lifecycle.APPROVED:
            warnings.append(f"Deprecation planned on {self.deprecates_on.isoformat()}")
        if self.retires_on and self.retires_on >= today and self.lifecycle != Lifecycle.RETIRED:
            warnings.append(f"Retirement planned on {self.retires_on.isoformat()}")
        return warnings


class ComplianceCell(models.Model):
    """May this model version process this data classification? A missing cell means denied.

    An approval may be limited to some regions (none listed: every region the version is hosted
    in) and may expire; from the day after ``expires_on`` it counts as denied.
    """

    class Decision(models.TextChoices):
        APPROVED = "approved", "Approved"
        DENIED = "denied", "Denied"

    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="compliance")
    classification = models.ForeignKey(DataClassification, on_delete=models.PROTECT, related_name="+")
    decision = models.CharField(max_length=16, choices=Decision.choices)
    regions = models.ManyToManyField(Region, blank=True, related_name="+")
    expires_on = models.DateField(null=True, blank=True)
    evidence = models.TextField(blank=True)
    evidence_url = models.URLField(blank=True)
    decided_by_name = models.CharField(max_length=150)
    decided_at = models.DateTimeField(default=timezone.now)
    revision = models.PositiveIntegerField(help_text="Matrix revision in which this cell last changed.")

    class Meta:
        ordering = ["model_version_id", "classification__sensitivity"]
        constraints = [
            models.UniqueConstraint(fields=["model_version", "classification"], name="compliance_one_cell_per_pair"),
        ]

    def __str__(self) -> str:
        return f"{self.model_version} × {self.classification}: {self.decision}"

    def is_expired(self, today: datetime.date | None = None) -> bool:
        return self.expires_on is not None and self.expires_on < (today or timezone.localdate())

    def effective_decision(self, today: datetime.date | None = None) -> str:
        """What routing must obey today: an expired approval is a denial."""
        if self.decision == self.Decision.APPROVED and not self.is_expired(today):
            return self.Decision.APPROVED
        return self.Decision.DENIED

    def region_slugs(self) -> list[str]:
        return sorted(region.slug for region in self.regions.all())


class Counter(models.Model):
    """Named monotonic counters: the compliance matrix revision, the routing snapshot generation.

    Incremented with one UPDATE inside the caller's transaction, so concurrent changes get
    distinct numbers and a rolled-back change leaves no gap.
    """

    COMPLIANCE_REVISION = "compliance_revision"
    ROUTING_GENERATION = "routing_generation"

    name = models.CharField(max_length=64, primary_key=True)
    value = models.PositiveBigIntegerField(default=0)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name}={self.value}"
