"""Filters for audit events, shared by the auditor's pages and the events API.

Every filter reads a plain column of the event, never a join: events stand alone, and an
auditor must still find a decision after its application, policy or model version is gone.
"""

import django_filters
from django import forms
from django.db import connections
from django.db.models import QuerySet

from audit.models import AuditEvent

# What a datetime-local input sends and shows ("2025-01-31T14:05").
DATETIME_LOCAL = "%Y-%m-%dT%H:%M"


# The kind index walked one kind at a time ("loose index scan"): each step asks the index for the
# smallest kind above the last one, so the cost is one probe per kind, not one read per event.
DISTINCT_KINDS_SQL = """
WITH RECURSIVE kinds (kind) AS (
    SELECT MIN(kind) FROM {table}
    UNION ALL
    SELECT (SELECT MIN(kind) FROM {table} WHERE kind > kinds.kind) FROM kinds WHERE kinds.kind IS NOT NULL
)
SELECT kind FROM kinds WHERE kind IS NOT NULL ORDER BY kind
"""


def kind_choices() -> list[tuple[str, str]]:
    """The kinds that occur, read each time the form is built, so a new kind shows up at once.

    On PostgreSQL a plain DISTINCT reads the whole table on every page view (it has no skip scan),
    so there the kind index is walked instead. SQLite keeps the plain query.
    """
    connection = connections[AuditEvent.objects.db]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(DISTINCT_KINDS_SQL.format(table=connection.ops.quote_name(AuditEvent._meta.db_table)))
            kinds = [kind for (kind,) in cursor.fetchall()]
    else:
        kinds = list(AuditEvent.objects.order_by("kind").values_list("kind", flat=True).distinct())
    return [(kind, kind) for kind in kinds]


def datetime_local() -> forms.DateTimeInput:
    return forms.DateTimeInput(attrs={"type": "datetime-local"}, format=DATETIME_LOCAL)


class AuditEventFilter(django_filters.FilterSet):
    occurred_after = django_filters.DateTimeFilter(
        field_name="occurred_at", lookup_expr="gte", label="From", widget=datetime_local()
    )
    occurred_before = django_filters.DateTimeFilter(
        field_name="occurred_at", lookup_expr="lte", label="To", widget=datetime_local()
    )
    kind = django_filters.ChoiceFilter(choices=kind_choices, empty_label="Any")
    application = django_filters.CharFilter(field_name="application_name", lookup_expr="iexact", label="Application")
    team = django_filters.CharFilter(field_name="team_name", lookup_expr="iexact", label="Team")
    model = django_filters.CharFilter(field_name="model_version_name", lookup_expr="icontains", label="Model")
    model_version = django_filters.NumberFilter(field_name="model_version_id", label="Model version id")
    policy = django_filters.CharFilter(field_name="policy_slug", label="Policy")
    policy_version = django_filters.NumberFilter(field_name="policy_version", label="Policy version")
    classification = django_filters.CharFilter(lookup_expr="iexact", label="Classification")
    decision_id = django_filters.UUIDFilter(label="Decision id")

    class Meta:
        model = AuditEvent
        fields = [
            "occurred_after",
            "occurred_before",
            "kind",
            "application",
            "team",
            "model",
            "model_version",
            "policy",
            "policy_version",
            "classification",
            "decision_id",
        ]

    @property
    def qs(self) -> QuerySet[AuditEvent]:
        """Nothing when a filter is malformed: an auditor must never mistake everything for a match."""
        queryset: QuerySet[AuditEvent] = self.queryset.none() if self.is_bound and not self.is_valid() else super().qs
        return queryset
