from django.conf import settings
from django.db import models
from django.db.models.functions import Coalesce, Upper
from django.utils import timezone


class AuditEvent(models.Model):
    """One governance change (and, later, routing decision or outcome), written once, never changed.

    The actor and the object are kept as plain text beside their ids, so an event still reads
    correctly after the user or the object is renamed or deleted. The actor link has no database
    constraint for the same reason: deleting a user must not touch the log.
    """

    SCHEMA_VERSION = 1

    occurred_at = models.DateTimeField(default=timezone.now, db_index=True)
    kind = models.CharField(max_length=64)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,  # people are found by name and time; every index slows the routing insert
        related_name="+",
    )
    actor_name = models.CharField(max_length=150)
    actor_ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    object_type = models.CharField(max_length=64, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    object_repr = models.CharField(max_length=255, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    reason = models.TextField(blank=True)
    # Routing decisions and outcomes: who asked, under which policy and matrix, and which exact
    # model version answered. Plain values, so the record stands alone.
    decision_id = models.UUIDField(null=True, blank=True)
    application_id = models.BigIntegerField(null=True, blank=True)
    application_name = models.CharField(max_length=100, blank=True)
    team_name = models.CharField(max_length=100, blank=True)
    policy_slug = models.CharField(max_length=64, blank=True)
    policy_version = models.PositiveIntegerField(null=True, blank=True)
    rule = models.CharField(max_length=100, blank=True)
    compliance_revision = models.PositiveBigIntegerField(null=True, blank=True)
    model_version_id = models.BigIntegerField(null=True, blank=True)
    model_version_name = models.CharField(max_length=255, blank=True)
    classification = models.CharField(max_length=32, blank=True)
    region = models.CharField(max_length=32, blank=True)
    task_type = models.CharField(max_length=32, blank=True)
    data = models.JSONField(null=True, blank=True, help_text="The request and answer, or the outcome reported.")
    schema_version = models.PositiveSmallIntegerField(default=SCHEMA_VERSION)

    class Meta:
        ordering = ["-occurred_at", "-id"]
        permissions = [("export_auditevent", "Can read the audit log in bulk: its API and its exports")]
        # Each index costs every insert, and the routing API inserts on every request: only what
        # lookups need (a decision's request id is covered by the unique constraint below).
        indexes = [
            models.Index(fields=["kind", "-id"], name="audit_kind_idx"),
            models.Index(fields=["object_type", "object_id"], name="audit_object_idx"),
            models.Index(fields=["policy_slug", "kind", "-id"], name="audit_policy_kind_idx"),
            # The log page's application and model version filters, alone and together, newest first:
            # the page and its capped count walk one of these and stop, whatever the table holds (two
            # separate indexes would have to be intersected in full). Application names match
            # case-insensitively, UPPER(name) = UPPER(value), so the index is on that expression.
            models.Index(Upper("application_name"), "occurred_at", name="audit_app_time_idx"),
            models.Index(fields=["model_version_id", "occurred_at"], name="audit_version_time_idx"),
            models.Index(
                Upper("application_name"), "model_version_id", "occurred_at", name="audit_app_version_time_idx"
            ),
        ]
        constraints = [
            # One decision per id, and at most one reported outcome per decision.
            models.UniqueConstraint(
                fields=["kind", "decision_id"],
                condition=models.Q(decision_id__isnull=False),
                name="audit_one_event_per_kind_and_decision",
            ),
            # A repeated request id from the same application gets the first decision back.
            models.UniqueConstraint(
                fields=["application_id", "request_id"],
                condition=models.Q(kind="routing.decision") & ~models.Q(request_id=""),
                name="audit_decision_request_id_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.object_repr} by {self.actor_name}"

    def changed_fields(self) -> list[str]:
        """Names of the fields whose value differs between before and after."""
        before = self.before or {}
        after = self.after or {}
        return sorted(key for key in before.keys() | after.keys() if before.get(key) != after.get(key))


class AuditSeal(models.Model):
    """An event's place in the hash chain, assigned after the fact by the sealer.

    Seals live in their own insert-only table so that neither table is ever updated: writers only
    insert events (nothing orders them on the hot path), and the sealer only inserts seals.
    """

    sequence = models.PositiveBigIntegerField(unique=True)
    event = models.OneToOneField(AuditEvent, on_delete=models.PROTECT, related_name="seal")
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)
    format = models.PositiveSmallIntegerField(help_text="Version of the canonical encoding (audit.chain.FORMAT).")
    sealed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["sequence"]

    def __str__(self) -> str:
        return f"#{self.sequence} {self.hash[:12]}…"


class Checkpoint(models.Model):
    """A signed statement that the chain had ``count`` events ending in ``hash`` at ``sequence``.

    Signed with an Ed25519 key kept outside the database, so whoever can rewrite the tables (and
    recompute every hash) still cannot forge a checkpoint: an export or a verifier holding the
    public key detects the rewrite.
    """

    sequence = models.PositiveBigIntegerField(unique=True)
    hash = models.CharField(max_length=64)
    count = models.PositiveBigIntegerField()
    created_at = models.DateTimeField()
    signature = models.CharField(max_length=128, help_text="Ed25519 signature, hex.")
    public_key = models.CharField(max_length=64, help_text="The signing key's public half, hex.")

    class Meta:
        ordering = ["sequence"]

    def __str__(self) -> str:
        return f"checkpoint #{self.sequence} {self.hash[:12]}…"


class ExportJob(models.Model):
    """A large export written in the background: its progress for the page, its file and manifest."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    format = models.CharField(max_length=8)
    filters = models.JSONField(default=dict)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    rows_total = models.PositiveBigIntegerField(default=0, help_text="Rows expected, counted when queued.")
    rows_done = models.PositiveBigIntegerField(default=0)
    file_name = models.CharField(max_length=255, blank=True)
    manifest = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    requested_by_name = models.CharField(max_length=150)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.format} export #{self.pk} ({self.status})"

    @property
    def percent(self) -> int:
        return 100 if self.status == self.Status.DONE else int(100 * self.rows_done / max(self.rows_total, 1))


class AuditArchive(models.Model):
    """A month of the chain that left the database, and the file that holds it now.

    Written once, in the same transaction that deletes the archived events and seals, and only
    after the file was verified. Its ``last_hash`` is where the remaining chain starts, so the
    database stays verifiable without the archived rows, and the file stays verifiable on its own.
    """

    month = models.DateField(unique=True, help_text="The first day of the month archived.")
    first_sequence = models.PositiveBigIntegerField()
    last_sequence = models.PositiveBigIntegerField(unique=True)
    last_hash = models.CharField(max_length=64)
    rows = models.PositiveBigIntegerField()
    file_name = models.CharField(max_length=255, help_text="In AUDIT_ARCHIVE_DIR, beside its manifest.")
    sha256 = models.CharField(max_length=64, help_text="Of the file, as its manifest states.")
    manifest = models.JSONField()
    created_at = models.DateTimeField(default=timezone.now)
    created_by_name = models.CharField(max_length=150)

    class Meta:
        ordering = ["month"]
        constraints = [
            # Sequences are contiguous, so an archive's rows are exactly its range.
            models.CheckConstraint(
                condition=models.Q(first_sequence__gte=1)
                & models.Q(last_sequence__gte=models.F("first_sequence"))
                & models.Q(rows=models.F("last_sequence") - models.F("first_sequence") + 1),
                name="audit_archive_rows_are_its_range",
            ),
        ]

    def __str__(self) -> str:
        return f"archive {self.month:%Y-%m} (#{self.first_sequence}–#{self.last_sequence})"


class RollupSums(models.Model):
    """What an hourly and a daily rollup row both add up, for one combination of attribution."""

    application_name = models.CharField(max_length=100, blank=True)
    team_name = models.CharField(max_length=100, blank=True)
    policy_slug = models.CharField(max_length=64, blank=True)
    rule = models.CharField(max_length=100, blank=True)
    model_version_id = models.BigIntegerField(null=True, blank=True)
    model_version_name = models.CharField(max_length=255, blank=True)
    classification = models.CharField(max_length=32, blank=True)
    decisions = models.PositiveIntegerField(default=0)
    refusals = models.PositiveIntegerField(default=0)
    outcomes_ok = models.PositiveIntegerField(default=0)
    outcomes_error = models.PositiveIntegerField(default=0)
    outcomes_timeout = models.PositiveIntegerField(default=0)
    input_tokens = models.PositiveBigIntegerField(default=0)
    output_tokens = models.PositiveBigIntegerField(default=0)
    estimated_cost_usd = models.DecimalField(max_digits=16, decimal_places=6, default=0)
    reported_cost_usd = models.DecimalField(max_digits=16, decimal_places=6, default=0)
    latency_histogram = models.JSONField(
        default=list, blank=True, help_text="Outcomes per bucket of audit.rollups.LATENCY_BUCKETS_MS."
    )

    class Meta:
        abstract = True


class UsageRollup(RollupSums):
    """One hour of routing traffic for one combination of attribution, summed for the dashboard.

    Derived data, unlike the ledger: ``audit.rollups.rebuild`` deletes an hour's rows and writes them
    again from the events, so the rows can always be recomputed and are never the record.

    Decisions and refusals count in the hour they occurred. An outcome counts in the hour of its
    decision (so its tokens, cost and latency sit beside the decisions they belong to; a late
    outcome recomputes that hour) and under the model version that actually answered, which after a
    fallback is not the one the decision chose. Refusals have no model version: their rows have
    ``model_version_id`` null. ``latency_histogram`` counts outcomes per bucket of
    ``audit.rollups.LATENCY_BUCKETS_MS`` so that readers can merge hours and estimate percentiles;
    the stored p50/p95/p99 are exact for the hour.
    """

    hour = models.DateTimeField(help_text="The start of the UTC hour.")
    task_type = models.CharField(max_length=32, blank=True)
    latency_p50_ms = models.FloatField(null=True, blank=True)
    latency_p95_ms = models.FloatField(null=True, blank=True)
    latency_p99_ms = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["-hour", "application_name", "model_version_name", "id"]
        constraints = [
            # Refusals have no model version. NULLs are distinct in a plain unique index, and
            # nulls_distinct=False exists only on PostgreSQL 15+ (SQLite would silently drop the
            # constraint), so the index is on COALESCE(model_version_id, 0): ids start at 1, the
            # column keeps its NULL, and both databases enforce the same rule.
            models.UniqueConstraint(
                "hour",
                "application_name",
                "team_name",
                "policy_slug",
                "rule",
                Coalesce("model_version_id", models.Value(0)),
                "model_version_name",
                "task_type",
                "classification",
                name="audit_rollup_one_row_per_hour_and_key",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H:00} {self.application_name} {self.model_version_name or 'refused'}"


class DailyUsageRollup(RollupSums):
    """One UTC day of the hourly rollups added up, without the task type, for dashboards over weeks.

    Derived from ``UsageRollup`` rather than from the events: ``audit.rollups`` rebuilds a day
    whenever it rebuilds one of its hours, in the same transaction, so a day always equals the sum
    of its hours. Dropping the task type leaves about one row in fifty of a day's hourly rows. No
    exact percentiles: they do not add up; readers merge the histograms.
    """

    day = models.DateTimeField(help_text="Midnight UTC at the start of the day.")

    class Meta:
        ordering = ["-day", "application_name", "model_version_name", "id"]
        constraints = [
            # As for the hourly rows: COALESCE so that refusals (no model version) are unique too.
            models.UniqueConstraint(
                "day",
                "application_name",
                "team_name",
                "policy_slug",
                "rule",
                Coalesce("model_version_id", models.Value(0)),
                "model_version_name",
                "classification",
                name="audit_daily_rollup_one_row_per_day_and_key",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.day:%Y-%m-%d} {self.application_name} {self.model_version_name or 'refused'}"


class RollupWatermark(models.Model):
    """How far ``audit.rollups.refresh`` has read the ledger: one row (pk 1).

    Refresh reads the events above ``last_event_id``, rebuilds the hours they touch and moves the
    mark up in the same transaction. Ids are handed out before commit, so an event can become
    visible after a higher id was already read; ``pending_gaps`` remembers the ids missing below
    the mark, as ``[low, high, first_seen_unix_time]`` ranges, so that such a late commit is still
    folded in (rolled-back ids just age out of the list).
    """

    last_event_id = models.BigIntegerField(default=0)
    pending_gaps = models.JSONField(default=list, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"rollups up to event #{self.last_event_id}"
