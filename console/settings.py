"""Settings for Switchboard, read from the environment (see README, "Configuration").

Defaults suit a single person trying the console: SQLite under ``var/`` and Celery tasks run in
process. Production sets ``DEBUG=false``, ``SECRET_KEY``, ``ALLOWED_HOSTS``, ``DATABASE_URL`` and
``CELERY_BROKER_URL``; with those, ``manage.py check --deploy`` reports nothing.
"""

from pathlib import Path

import dj_database_url
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

from console.env import env_bool, env_float, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

DEBUG = env_bool("DEBUG", False)

SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is required when DEBUG is false. Set SECRET_KEY (or SECRET_KEY_FILE), "
            "or set DEBUG=true for local development."
        )
    SECRET_KEY = "django-insecure-local-development-only"  # noqa: S105 - DEBUG only

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "console",
    "audit",
    "registry",
    "policies",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "audit.middleware.AuditContextMiddleware",
]

ROOT_URLCONF = "console.urls"
WSGI_APPLICATION = "console.wsgi.application"
ASGI_APPLICATION = "console.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "console.context_processors.roles",
            ],
        },
    },
]

# Persistent connections: opening one per request would cost more than the routing decision.
# Health checks add a round trip to every request; turn them on only if something between the
# web processes and the database drops idle connections.
DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'switchboard.sqlite3'}") or "",
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
        conn_health_checks=env_bool("DATABASE_CONN_HEALTH_CHECKS", False),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Bind parameters in the server (and let psycopg prepare repeated statements) instead of
    # quoting them into the SQL text in Python.
    DATABASES["default"].setdefault("OPTIONS", {})["server_side_binding"] = env_bool(
        "DATABASE_SERVER_SIDE_BINDING", True
    )
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    VAR_DIR.mkdir(exist_ok=True)
    # WAL lets the console's readers and the in-process writer work side by side; IMMEDIATE
    # transactions take the write lock up front, so concurrent writers wait instead of failing.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "console" / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# Security: production values by default, relaxed only in DEBUG.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^health/$"]  # probed over plain HTTP inside the deployment
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", not DEBUG)
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first: an anonymous API call then gets 401 with WWW-Authenticate, not 403.
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["console.permissions.RolePermission"],
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.SearchFilter",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_PAGINATION_CLASS": "console.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "console.api.exception_handler",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Switchboard API",
    "DESCRIPTION": "Govern which AI model version may answer what.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "policies.api.openapi.add_routing_paths",
    ],
}

# Celery: without a broker, tasks run in process so the console needs no servers.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL")
CELERY_TASK_ALWAYS_EAGER = CELERY_BROKER_URL is None
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND")
CELERY_TASK_IGNORE_RESULT = CELERY_RESULT_BACKEND is None
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = TIME_ZONE
ROLLUP_SECONDS = env_float("ROLLUP_SECONDS", 60.0)
if ROLLUP_SECONDS <= 0:
    raise ImproperlyConfigured(f"ROLLUP_SECONDS={ROLLUP_SECONDS} must be a positive number of seconds.")
CELERY_BEAT_SCHEDULE = {
    "seal-audit-events": {
        "task": "audit.tasks.seal_audit_events",
        "schedule": env_float("AUDIT_SEAL_SECONDS", 5.0),
    },
    "sign-audit-checkpoint": {
        "task": "audit.tasks.sign_checkpoint",
        "schedule": env_float("AUDIT_CHECKPOINT_SECONDS", 300.0),
    },
    # The dashboard's hourly usage rollups follow new routing events this often (audit/rollups.py).
    "refresh-usage-rollups": {
        "task": "audit.tasks.refresh_rollups",
        "schedule": ROLLUP_SECONDS,
    },
    # Daily, at a quiet hour: it deletes a month of rows at once (and does nothing without retention).
    "archive-expired-audit-months": {
        "task": "audit.tasks.archive_expired_months",
        "schedule": crontab(hour=3, minute=30),
    },
    "apply-scheduled-lifecycle": {
        "task": "registry.tasks.apply_scheduled_lifecycle",
        "schedule": env_int("LIFECYCLE_CHECK_SECONDS", 3600),
    },
}

# The Ed25519 key that signs audit checkpoints, kept outside the database (see audit/checkpoints.py).
AUDIT_SIGNING_KEY = env_str("AUDIT_SIGNING_KEY")

# Exports with more rows than this run as a Celery job writing a file (and its manifest) here.
AUDIT_EXPORT_INLINE_LIMIT = env_int("AUDIT_EXPORT_INLINE_LIMIT", 50_000)
AUDIT_EXPORT_DIR = Path(env_str("AUDIT_EXPORT_DIR", str(VAR_DIR / "exports")) or VAR_DIR / "exports")

# Retention: unset keeps every event forever. With N, beat archives each month older than the N
# whole months before the current one into a verified file under AUDIT_ARCHIVE_DIR, then removes
# it from the database (audit/archive.py). Zero is refused rather than read as "forever".
AUDIT_RETENTION_MONTHS = env_int("AUDIT_RETENTION_MONTHS", 0) if env_str("AUDIT_RETENTION_MONTHS") is not None else None
if AUDIT_RETENTION_MONTHS is not None and AUDIT_RETENTION_MONTHS < 1:
    raise ImproperlyConfigured(
        f"AUDIT_RETENTION_MONTHS={AUDIT_RETENTION_MONTHS} must be at least 1; unset it to keep every event."
    )
AUDIT_ARCHIVE_DIR = Path(env_str("AUDIT_ARCHIVE_DIR", str(VAR_DIR / "archive")) or VAR_DIR / "archive")

# How often each process looks for registry, matrix or policy changes (seconds). Changes reach
# routing within this time; expiry dates are checked on every request regardless.
ROUTING_SNAPSHOT_TTL_SECONDS = env_float("ROUTING_SNAPSHOT_TTL_SECONDS", 1.0)

# Where every web process counts quotas and month-to-date spend (policies/counters.py): a Redis
# URL (redis://, rediss:// or unix://), or unset for the database. With several web processes on
# PostgreSQL either works; Redis keeps the counters' writes off the database.
ROUTING_COUNTERS_URL = env_str("ROUTING_COUNTERS_URL")
if ROUTING_COUNTERS_URL is not None and not ROUTING_COUNTERS_URL.startswith(("redis://", "rediss://", "unix://")):
    raise ImproperlyConfigured(
        f"ROUTING_COUNTERS_URL={ROUTING_COUNTERS_URL!r} is not a Redis URL (redis://host:6379/0); "
        "unset it to count in the database."
    )

# With the database's counters on PostgreSQL, how long (seconds) a process trusts the spends it
# last read or wrote before it reads them again. Within it a request without a quota makes no
# round trip for its budgets; a budget can then be overshot by what other processes charge in
# that time. 0: read on every request (exact up to the requests in flight).
ROUTING_SPEND_FRESH_SECONDS = env_float("ROUTING_SPEND_FRESH_SECONDS", 1.0)
if ROUTING_SPEND_FRESH_SECONDS < 0:
    raise ImproperlyConfigured(f"ROUTING_SPEND_FRESH_SECONDS={ROUTING_SPEND_FRESH_SECONDS} must be 0 or more.")

# Email: budget alerts go to each team's contacts. DEBUG prints mail to the console by default.
EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    "django.core.mail.backends.console.EmailBackend" if DEBUG else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "switchboard@localhost")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    # Django logs every 4xx as a warning; the routing API answers thousands of expected 4xx (each
    # with a message for the caller, and refusals in the audit log), so only server errors are logged.
    "loggers": {"django.request": {"level": env_str("REQUEST_LOG_LEVEL", "ERROR")}},
}
