"""The events API's shape: every stored field of an event, and its place in the hash chain."""

from rest_framework import serializers

from audit.models import AuditEvent, AuditSeal


class SealSerializer(serializers.ModelSerializer[AuditSeal]):
    class Meta:
        model = AuditSeal
        fields = ["sequence", "hash", "prev_hash", "format", "sealed_at"]


class AuditEventSerializer(serializers.ModelSerializer[AuditEvent]):
    """Every column, so an export through the API loses nothing; ``seal`` is null until sealed."""

    seal = SealSerializer(read_only=True, allow_null=True)

    class Meta:
        model = AuditEvent
        fields = [field.name for field in AuditEvent._meta.concrete_fields] + ["seal"]
        read_only_fields = fields
