"""What the benchmarks share: a database of their own on the local PostgreSQL, and the settings
that point Django at it. Imported by the scripts beside it (``python bench/NAME.py``)."""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ADMIN_URL = "postgres://postgres@127.0.0.1:5432/postgres"


def database_url(name: str) -> str:
    return f"postgres://postgres@127.0.0.1:5432/{name}"


def configure(name: str) -> None:
    """Production-like settings on database ``name``, with throwaway secrets; the project importable."""
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "console.settings",
            "SECRET_KEY": "benchmark-only-secret-key-not-for-production-0123456789",
            "DATABASE_URL": database_url(name),
            "DEBUG": "false",
            "SECURE_SSL_REDIRECT": "false",
            "ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
            "AUDIT_SIGNING_KEY": "YmVuY2htYXJrLW9ubHktc2lnbmluZy1rZXktMzJieXQ=",
            "LOG_LEVEL": "WARNING",
            # Budget alerts would try an SMTP server on localhost; keep their mail in memory.
            "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
        }
    )
    sys.path.insert(0, str(ROOT))


def fresh_database(name: str) -> None:
    """Drop database ``name`` if it is there and make it anew, empty."""
    import psycopg

    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
