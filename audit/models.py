from django.conf import settings
from django.db import models
from django.utils import timezone


class AuditEvent(models.Model):
    """One governance change (and, later, routing decision or outcome), written once, never changed.

    The actor and the object are kept as plain text beside their ids, so an event still reads
    correctly after the user or the object is renamed or deleted. The actor link has no database
    constraint for the same reason: deleting a user must not touch the log.
    """

    SCHEMA_VERSION = 1

    occurred_at = models.DateTimeField(default=timezone.now, db_index=True)
    kind = models.CharField(max_length=64, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    actor_name = models.CharField(max_length=150)
    actor_ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)
    request_id = models.CharField(max_length=64, blank=True, db_index=True)
    object_type = models.CharField(max_length=64, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    object_repr = models.CharField(max_length=255, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    reason = models.TextField(blank=True)
    schema_version = models.PositiveSmallIntegerField(default=SCHEMA_VERSION)

    class Meta:
        ordering = ["-occurred_at", "-id"]
        indexes = [models.Index(fields=["object_type", "object_id"], name="audit_object_idx")]

    def __str__(self) -> str:
        return f"{self.kind} {self.object_repr} by {self.actor_name}"

    def changed_fields(self) -> list[str]:
        """Names of the fields whose value differs between before and after."""
        before = self.before or {}
        after = self.after or {}
        return sorted(key for key in before.keys() | after.keys() if before.get(key) != after.get(key))
