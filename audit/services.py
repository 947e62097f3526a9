"""Writing audit events. Call from inside the service's transaction, so change and event commit together."""

from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections, models

from audit.context import current_request
from audit.models import AuditEvent

SYSTEM_ACTOR = "system"


def resolve_actor(actor: Any = None) -> tuple[Any, str]:
    """The acting user (or None) and the name to record: the given actor, the request's user, or "system"."""
    if actor is None:
        context = current_request.get()
        actor = context.user if context is not None else None
    if actor is not None and getattr(actor, "is_authenticated", False):
        return actor, str(actor.get_username())
    return None, SYSTEM_ACTOR


def record_event(
    kind: str,
    *,
    obj: models.Model | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    reason: str = "",
    actor: Any = None,
) -> AuditEvent:
    """Write one audit event; the actor defaults to the user of the current request, else "system"."""
    context = current_request.get()
    user, actor_name = resolve_actor(actor)
    return AuditEvent.objects.create(
        kind=kind,
        actor=user,
        actor_name=actor_name,
        actor_ip=context.ip if context else None,
        user_agent=context.user_agent if context else "",
        request_id=context.request_id if context else "",
        object_type=obj._meta.label_lower if obj is not None else "",
        object_id=str(obj.pk) if obj is not None else "",
        object_repr=str(obj)[:255] if obj is not None else "",
        before=before,
        after=after,
        reason=reason,
    )


def history(obj: models.Model) -> "models.QuerySet[AuditEvent]":
    """The events about one object, newest first."""
    return AuditEvent.objects.filter(object_type=obj._meta.label_lower, object_id=str(obj.pk))


_INSERT_FIELDS = [field for field in AuditEvent._meta.concrete_fields if not field.primary_key]
_insert_sql: dict[str, str] = {}


def _insert_statement(connection: Any) -> str:
    """The INSERT for this kind of database, built once."""
    sql = _insert_sql.get(connection.vendor)
    if sql is None:
        quote = connection.ops.quote_name
        columns = ", ".join(quote(field.column) for field in _INSERT_FIELDS)
        placeholders = ", ".join(["%s"] * len(_INSERT_FIELDS))
        returning = " RETURNING id" if connection.features.can_return_columns_from_insert else ""
        sql = f"INSERT INTO {quote(AuditEvent._meta.db_table)} ({columns}) VALUES ({placeholders}){returning}"  # noqa: S608
        _insert_sql[connection.vendor] = sql
    return sql


def insert(event: AuditEvent) -> AuditEvent:
    """Store a new event with one INSERT, skipping the model-save machinery.

    For the routing hot path, where saving through the ORM costs more than the database round
    trip. Each value is still prepared by its own field, so every database gets what it expects.
    """
    connection = connections[DEFAULT_DB_ALIAS]
    values = [field.get_db_prep_save(field.pre_save(event, add=True), connection) for field in _INSERT_FIELDS]
    with connection.cursor() as cursor:
        cursor.execute(_insert_statement(connection), values)
        event.pk = cursor.fetchone()[0] if connection.features.can_return_columns_from_insert else cursor.lastrowid
    event._state.adding = False
    event._state.db = DEFAULT_DB_ALIAS
    return event
