from django.contrib import admin

from audit.models import AuditEvent
from console.admin import ReadOnlyAdmin


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    """Read-only: the audit log is append-only, in the admin as everywhere."""

    list_display = ("occurred_at", "kind", "actor_name", "object_repr")
    list_filter = ("kind",)
    search_fields = ("object_repr", "actor_name", "request_id")
