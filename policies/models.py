import datetime
from decimal import Decimal

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.urls import reverse
from django.utils import timezone

from registry.models import DataClassification


class Team(models.Model):
    """A group of people who own applications and a monthly AI budget."""

    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(max_length=64, unique=True)
    monthly_budget_usd = models.DecimalField(
        "monthly budget (USD)", max_digits=12, decimal_places=2, validators=[MinValueValidator(Decimal("0"))]
    )
    contacts = models.TextField(blank=True, help_text="Email addresses for budget alerts, one per line.")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("policies:team-detail", args=[self.slug])


class Application(models.Model):
    """A governed application: it asks the routing API which model version to use."""

    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=64, unique=True)
    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="applications")
    description = models.TextField(blank=True)
    allowed_classifications = models.ManyToManyField(
        DataClassification, blank=True, related_name="+", help_text="Data classes it may send."
    )
    content_capture = models.BooleanField(
        default=False, help_text="Store prompts and outputs in full; off means only their hashes."
    )
    policy = models.ForeignKey(
        "Policy",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="applications",
        help_text="The routing policy that governs it; without one, every request is refused.",
    )
    requests_per_minute = models.PositiveIntegerField(
        "requests per minute",
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="Quota on the routing API; more in one clock minute are answered 429. Empty: no quota.",
    )
    monthly_budget_usd = models.DecimalField(
        "monthly budget (USD)",
        max_digits=12,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0"))],
        help_text="Its own budget, on top of the team's. Empty: only the team's budget applies.",
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("policies:application-detail", args=[self.slug])


class ApiKey(models.Model):
    """A governed application's credential for the routing API, stored only as a SHA-256 hash.

    Keys are 256-bit random strings, so a fast hash is enough (no password stretching), and the
    hash is looked up directly. The prefix is stored in clear so people can tell keys apart.
    """

    application = models.ForeignKey(Application, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True)
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    created_by_name = models.CharField(max_length=150)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.application} key {self.prefix}… ({self.name})"

    def is_usable(self, now: datetime.datetime | None = None) -> bool:
        now = now or timezone.now()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


class Policy(models.Model):
    """A named routing policy; its rules live in numbered, reviewed versions."""

    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(max_length=64, unique=True)
    description = models.TextField(blank=True)
    required_approvals = models.PositiveSmallIntegerField(
        default=1, validators=[MinValueValidator(1)], help_text="Approvals a version needs before it is active."
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "policies"

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("policies:policy-detail", args=[self.slug])


class PolicyVersion(models.Model):
    """One version of a policy's rules. Only a draft changes; a submitted version is immutable.

    Life: draft → submitted → approved → active → superseded; or rejected; or withdrawn when an
    edit after submission makes a new version (its approvals are then void).
    """

    class State(models.TextChoices):
        DRAFT = "draft", "Draft"
        SUBMITTED = "submitted", "Submitted"
        APPROVED = "approved", "Approved"
        ACTIVE = "active", "Active"
        SUPERSEDED = "superseded", "Superseded"
        REJECTED = "rejected", "Rejected"
        WITHDRAWN = "withdrawn", "Withdrawn"

    policy = models.ForeignKey(Policy, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    state = models.CharField(max_length=16, choices=State.choices, default=State.DRAFT)
    document = models.JSONField(default=dict, help_text="The rules, as validated by policies.document.")
    based_on = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="derived_versions"
    )
    summary = models.CharField(max_length=255, blank=True, help_text="What this version changes.")
    author_name = models.CharField(max_length=150)
    contributors = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="+", help_text="Everyone who wrote or edited it."
    )
    created_at = models.DateTimeField(default=timezone.now)
    submitted_at = models.DateTimeField(null=True, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    activated_at = models.DateTimeField(null=True, blank=True)
    superseded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["policy__name", "-number"]
        permissions = [("review_policyversion", "Can approve or reject submitted policy versions")]
        constraints = [
            models.UniqueConstraint(fields=["policy", "number"], name="policy_version_unique_number"),
            models.UniqueConstraint(
                fields=["policy"],
                condition=models.Q(state="active"),
                name="policy_one_active_version",
                violation_error_message="A policy has exactly one active version.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.policy.slug} v{self.number}"

    def get_absolute_url(self) -> str:
        return reverse("policies:version-detail", args=[self.policy.slug, self.number])

    @property
    def is_editable(self) -> bool:
        return self.state == self.State.DRAFT


class Review(models.Model):
    """A reviewer's verdict on a submitted policy version or compliance change request."""

    class Verdict(models.TextChoices):
        APPROVE = "approve", "Approve"
        REJECT = "reject", "Reject"

    policy_version = models.ForeignKey(
        PolicyVersion, null=True, blank=True, on_delete=models.CASCADE, related_name="reviews"
    )
    compliance_request = models.ForeignKey(
        "ComplianceRequest", null=True, blank=True, on_delete=models.CASCADE, related_name="reviews"
    )
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    reviewer_name = models.CharField(max_length=150)
    verdict = models.CharField(max_length=16, choices=Verdict.choices)
    comment = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(policy_version__isnull=False, compliance_request__isnull=True)
                | models.Q(policy_version__isnull=True, compliance_request__isnull=False),
                name="review_of_exactly_one_thing",
            ),
            models.UniqueConstraint(fields=["policy_version", "reviewer"], name="review_once_per_version"),
            models.UniqueConstraint(
                fields=["compliance_request", "reviewer"], name="review_once_per_compliance_request"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.verdict} by {self.reviewer_name}"


class ComplianceRequest(models.Model):
    """A proposed widening of the compliance matrix (approve a cell, add a region, extend an
    expiry). It takes effect only when someone other than the requester approves it."""

    class State(models.TextChoices):
        PENDING = "pending", "Pending review"
        APPLIED = "applied", "Approved and applied"
        REJECTED = "rejected", "Rejected"

    model_version = models.ForeignKey("registry.ModelVersion", on_delete=models.CASCADE, related_name="+")
    classification = models.ForeignKey(DataClassification, on_delete=models.PROTECT, related_name="+")
    decision = models.CharField(max_length=16)
    region_slugs = models.JSONField(default=list, blank=True)
    expires_on = models.DateField(null=True, blank=True)
    evidence = models.TextField(blank=True)
    evidence_url = models.URLField(blank=True)
    reason = models.TextField()
    base_revision = models.PositiveIntegerField(
        null=True, blank=True, help_text="Revision of the cell when requested (none: no cell yet)."
    )
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    requested_by_name = models.CharField(max_length=150)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    created_at = models.DateTimeField(default=timezone.now)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [("review_compliancerequest", "Can approve or reject widenings of the compliance matrix")]

    def __str__(self) -> str:
        return f"{self.model_version} × {self.classification}: {self.decision} (requested by {self.requested_by_name})"


class Scope(models.TextChoices):
    """Whose budget: a team's, or one application's on top of its team's."""

    TEAM = "team", "Team"
    APPLICATION = "application", "Application"


class MonthlySpend(models.Model):
    """Month-to-date estimated spend of a team or an application: the database counter.

    Kept in integer micro-dollars (the precision the routing API reports estimated costs in) so
    that increments from many web processes add exactly, here and in Redis alike. Only used when
    ``ROUTING_COUNTERS_URL`` is unset; see ``policies.counters``. ``owner_id`` is the team's or
    the application's id without a foreign key: the row is written by the routing hot path in the
    same statement as the audit event, and a counter must not stop a team from being deleted.
    """

    scope = models.CharField(max_length=16, choices=Scope.choices)
    owner_id = models.BigIntegerField()
    month = models.DateField(help_text="The first day of the month, in TIME_ZONE.")
    spent_micro_usd = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["-month", "scope", "owner_id"]
        constraints = [
            models.UniqueConstraint(fields=["scope", "owner_id", "month"], name="monthly_spend_one_row_per_month"),
            models.CheckConstraint(condition=models.Q(scope__in=Scope.values), name="monthly_spend_known_scope"),
        ]

    def __str__(self) -> str:
        return f"{self.scope} {self.owner_id} {self.month:%Y-%m}: ${self.spent_micro_usd / 1_000_000:.6f}"


class QuotaWindow(models.Model):
    """An application's requests in the current clock minute: the database quota counter.

    One row per application, reset in place when a new minute starts (see ``policies.counters``),
    so the table never grows. Only used when ``ROUTING_COUNTERS_URL`` is unset. UNLOGGED on
    PostgreSQL (migration 0004): its writes then commit without a disk flush.
    """

    application_id = models.BigIntegerField(primary_key=True)
    minute = models.BigIntegerField(help_text="Minutes since the Unix epoch.")
    requests = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["application_id"]

    def __str__(self) -> str:
        return f"application {self.application_id}: {self.requests} in minute {self.minute}"


class BudgetAlert(models.Model):
    """A budget crossed 80% or 100% in a month: raised once, shown on the dashboard's banner.

    ``application`` is empty for the team's own budget. Once per budget, month, threshold and
    amount: raising a budget re-arms its alerts for the new amount, while what was said about the
    old one stays.
    """

    class Threshold(models.IntegerChoices):
        WARNING = 80, "80%"
        EXHAUSTED = 100, "100%"

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="budget_alerts")
    application = models.ForeignKey(
        Application, null=True, blank=True, on_delete=models.CASCADE, related_name="budget_alerts"
    )
    month = models.DateField(help_text="The first day of the month, in TIME_ZONE.")
    threshold = models.PositiveSmallIntegerField(choices=Threshold.choices)
    spend_usd = models.DecimalField(
        "spend (USD)", max_digits=16, decimal_places=6, help_text="Estimated month-to-date spend when it crossed."
    )
    budget_usd = models.DecimalField("budget (USD)", max_digits=12, decimal_places=2)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-month", "-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["team", "month", "threshold", "budget_usd"],
                condition=models.Q(application__isnull=True),
                name="budget_alert_once_per_team_budget",
            ),
            models.UniqueConstraint(
                fields=["application", "month", "threshold", "budget_usd"],
                condition=models.Q(application__isnull=False),
                name="budget_alert_once_per_application_budget",
            ),
            models.CheckConstraint(condition=models.Q(threshold__in=[80, 100]), name="budget_alert_known_threshold"),
        ]

    def __str__(self) -> str:
        owner = f"application {self.application}" if self.application_id else f"team {self.team}"
        return f"{owner} at {self.threshold}% of ${self.budget_usd} in {self.month:%Y-%m}"

    @property
    def owner(self) -> "Team | Application":
        return self.application if self.application_id else self.team  # type: ignore[return-value]
