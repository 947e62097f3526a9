from django.contrib import admin

from audit.models import AuditArchive, AuditEvent
from console.admin import ReadOnlyAdmin


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    """Read-only: the audit log is append-only, in the admin as everywhere."""

    list_display = ("occurred_at", "kind", "actor_name", "object_repr")
    list_filter = ("kind",)
    search_fields = ("object_repr", "actor_name", "request_id")


@admin.register(AuditArchive)
class AuditArchiveAdmin(ReadOnlyAdmin):
    """Read-only: archives are written by ``archive_audit`` only, and the database refuses changes."""

    list_display = ("month", "first_sequence", "last_sequence", "rows", "file_name", "created_at")
