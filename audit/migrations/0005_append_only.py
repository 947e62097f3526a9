"""Append-only audit tables: the database itself refuses UPDATE, DELETE (and on PostgreSQL,
TRUNCATE) of events and seals.

Maintenance (archiving a month, a test database's flush) must say so explicitly: on PostgreSQL by
``SET switchboard.audit_maintenance = 'on'``, on SQLite with ``UPDATE audit_maintenance SET allowed = 1``.
"""

from django.db import migrations

TABLES = ("audit_auditevent", "audit_auditseal")

POSTGRES_FUNCTION = """
CREATE OR REPLACE FUNCTION audit_refuse_change() RETURNS trigger AS $$
BEGIN
    IF current_setting('switchboard.audit_maintenance', true) = 'on' THEN
        IF TG_OP = 'DELETE' THEN RETURN OLD; ELSIF TG_OP = 'UPDATE' THEN RETURN NEW; ELSE RETURN NULL; END IF;
    END IF;
    RAISE EXCEPTION 'the audit log is append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$ LANGUAGE plpgsql;
"""


def forwards(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(POSTGRES_FUNCTION, params=None)  # its % are PL/pgSQL's, not placeholders
        for table in TABLES:
            schema_editor.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()"
            )
            schema_editor.execute(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change()"
            )
    elif vendor == "sqlite":
        schema_editor.execute("CREATE TABLE audit_maintenance (allowed INTEGER NOT NULL)")
        schema_editor.execute("INSERT INTO audit_maintenance (allowed) VALUES (0)")
        for table in TABLES:
            for operation in ("UPDATE", "DELETE"):
                schema_editor.execute(
                    f"CREATE TRIGGER {table}_no_{operation.lower()} BEFORE {operation} ON {table} "
                    "WHEN (SELECT allowed FROM audit_maintenance) = 0 BEGIN "
                    f"SELECT RAISE(ABORT, 'the audit log is append-only: {operation} on {table} refused'); END"
                )


def backwards(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        for table in TABLES:
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
        schema_editor.execute("DROP FUNCTION IF EXISTS audit_refuse_change()")
    elif vendor == "sqlite":
        for table in TABLES:
            for operation in ("update", "delete"):
                schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_no_{operation}")
        schema_editor.execute("DROP TABLE IF EXISTS audit_maintenance")


class Migration(migrations.Migration):
    dependencies = [("audit", "0004_seals")]

    operations = [migrations.RunPython(forwards, backwards)]
