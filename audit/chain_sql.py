"""FORMAT 2 of the hash chain as PostgreSQL expressions, so the database renders rows itself.

``audit.chain.record_line`` defines the bytes a digest covers: the line COPY prints for these
columns. On PostgreSQL the sealer and ``verify_audit`` read those lines straight from COPY and
only hash them, and exports are rendered by the database too. A test holds these expressions to
``audit.chain`` on awkward values.
"""

from collections.abc import Iterator
from typing import Any

from django.db import connection, models
from django.db.models import QuerySet
from django.db.models.expressions import RawSQL

from audit import chain
from audit.models import AuditEvent, AuditSeal

EVENTS = AuditEvent._meta.db_table
SEALS = AuditSeal._meta.db_table
_FIELDS = {field.attname: field for field in AuditEvent._meta.concrete_fields}
# The moment as chain._utc spells it.
_UTC = """to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""


def _column(name: str) -> str:
    return f'"{EVENTS}"."{_FIELDS[name].column}"'


def _record_column(name: str) -> str:
    return _UTC.format(_column(name)) if isinstance(_FIELDS[name], models.DateTimeField) else _column(name)


# The record's columns, in chain.FIELDS order: what COPY prints for them is chain.record_line.
RECORD_COLUMNS = [_record_column(name) for name in chain.FIELDS]
# The same, as annotations for a queryset (our own fixed SQL, no input in it).
LINE_COLUMNS = {f"record_{index}": RawSQL(sql, ()) for index, sql in enumerate(RECORD_COLUMNS)}  # noqa: S611


def _json_value(name: str) -> str:
    """The field as chain.record_json writes it: numbers and jsonb as printed, the rest as JSON strings."""
    field, column = _FIELDS[name], _record_column(name)
    if chain.FIELDS[name].rstrip("?") in {"int", "json"}:
        text = f"{column}::text"
    elif isinstance(field, models.CharField | models.TextField | models.DateTimeField):
        text = f"to_json({column})::text"
    else:  # inet, uuid: concat() prints them through their type's output, as COPY and psycopg do
        return f"CASE WHEN {column} IS NULL THEN 'null' ELSE to_json(concat({column}))::text END"
    return f"coalesce({text}, 'null')" if field.null else text


def _json_line() -> str:
    seal = f'"{SEALS}"'
    parts = [
        f"""'{{"_sequence":', {seal}."sequence", ',"_hash":"', {seal}."hash", '","_prev_hash":"', """
        f"""{seal}."prev_hash", '","_format":', {seal}."format\""""
    ]
    parts += [f"""',"{name}":', {_json_value(name)}""" for name in chain.FIELDS]
    return "concat(" + ", ".join(parts) + ", '}')"


# One export row as a JSON object: the seal's columns, then the record as chain.record_json writes it.
JSON_LINE = _json_line()
JSON_LINE_COLUMN = RawSQL(JSON_LINE, ())  # noqa: S611 - our own fixed SQL, no input in it


def with_events(seals: QuerySet[AuditSeal]) -> QuerySet[AuditSeal]:
    """Seals joined to their events by name, as the record columns expect (every event has a time)."""
    return seals.filter(event__occurred_at__isnull=False)


def copy_lines(queryset: QuerySet[Any], *columns: str, options: str = "") -> Iterator[bytes]:
    """The rows of ``queryset.values_list(*columns)`` as PostgreSQL's COPY prints them, one line each."""
    sql, params = queryset.values_list(*columns).query.sql_with_params()
    with (
        connection.cursor() as cursor,
        cursor.connection.cursor().copy(f"COPY ({sql}) TO STDOUT {options}", params) as copy,
    ):
        for data in copy:
            yield bytes(data)
