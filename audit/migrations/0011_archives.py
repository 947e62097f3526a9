"""Archives of months moved out of the database; insert-only like the rest of the ledger (the same
triggers and maintenance switch as events, seals and checkpoints)."""

import django.db.models.expressions
import django.utils.timezone
from django.db import migrations, models

TABLE = "audit_auditarchive"


def forwards(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(
            f"CREATE TRIGGER {TABLE}_append_only BEFORE UPDATE OR DELETE ON {TABLE} "
            "FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()"
        )
        schema_editor.execute(
            f"CREATE TRIGGER {TABLE}_no_truncate BEFORE TRUNCATE ON {TABLE} "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change()"
        )
    elif vendor == "sqlite":
        for operation in ("UPDATE", "DELETE"):
            schema_editor.execute(
                f"CREATE TRIGGER {TABLE}_no_{operation.lower()} BEFORE {operation} ON {TABLE} "
                "WHEN (SELECT allowed FROM audit_maintenance) = 0 BEGIN "
                f"SELECT RAISE(ABORT, 'the audit log is append-only: {operation} on {TABLE} refused'); END"
            )


def backwards(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {TABLE}_append_only ON {TABLE}")
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {TABLE}_no_truncate ON {TABLE}")
    elif vendor == "sqlite":
        for operation in ("update", "delete"):
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {TABLE}_no_{operation}")


class Migration(migrations.Migration):
    dependencies = [("audit", "0010_filter_indexes")]

    operations = [
        migrations.CreateModel(
            name="AuditArchive",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("month", models.DateField(help_text="The first day of the month archived.", unique=True)),
                ("first_sequence", models.PositiveBigIntegerField()),
                ("last_sequence", models.PositiveBigIntegerField(unique=True)),
                ("last_hash", models.CharField(max_length=64)),
                ("rows", models.PositiveBigIntegerField()),
                (
                    "file_name",
                    models.CharField(help_text="In AUDIT_ARCHIVE_DIR, beside its manifest.", max_length=255),
                ),
                ("sha256", models.CharField(help_text="Of the file, as its manifest states.", max_length=64)),
                ("manifest", models.JSONField()),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("created_by_name", models.CharField(max_length=150)),
            ],
            options={
                "ordering": ["month"],
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(
                            ("first_sequence__gte", 1),
                            ("last_sequence__gte", models.F("first_sequence")),
                            (
                                "rows",
                                django.db.models.expressions.CombinedExpression(
                                    django.db.models.expressions.CombinedExpression(
                                        models.F("last_sequence"), "-", models.F("first_sequence")
                                    ),
                                    "+",
                                    models.Value(1),
                                ),
                            ),
                        ),
                        name="audit_archive_rows_are_its_range",
                    )
                ],
            },
        ),
        migrations.RunPython(forwards, backwards),
    ]
