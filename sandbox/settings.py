"""Settings of the sandbox EHR process (`DJANGO_SETTINGS_MODULE=sandbox.settings`).

A separate Django project with its own SQLite database (`var/sandbox.sqlite3`, or
`SANDBOX_DATABASE_URL`). It refuses to load unless DEBUG=True or SANDBOX_ALLOW_WITHOUT_DEBUG=True:
the sandbox hands out tokens to anyone who types the demo password.
"""

from __future__ import annotations

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

DEBUG = env.bool("DEBUG", default=False)
if not DEBUG and not env.bool("SANDBOX_ALLOW_WITHOUT_DEBUG", default=False):
    raise ImproperlyConfigured(
        "The sandbox EHR is dev/test only: set DEBUG=True (or SANDBOX_ALLOW_WITHOUT_DEBUG=True)."
    )

# Marks this process as the sandbox server: sandbox/models.py defines its models only then.
SANDBOX_SERVER = True

SECRET_KEY = env.str("SANDBOX_SECRET_KEY", default="sandbox-dev-only-insecure-key-0123456789abcdef")
ALLOWED_HOSTS = ["*"]  # loopback dev server; the FHIR base comes from SANDBOX_BASE_URL, not Host.

# Public base URL (scheme://host:port). runsandbox sets it from ADDR:PORT; when empty, it is
# derived from the request. The FHIR base is BASE + "/fhir".
SANDBOX_BASE_URL = env.str("SANDBOX_BASE_URL", default="").rstrip("/")
SANDBOX_SEED = env.int("SANDBOX_SEED", default=20250115)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "sandbox",
]
MIGRATION_MODULES = {"sandbox": "sandbox.db.migrations"}

MIDDLEWARE = [
    "sandbox.faults.TimelineMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
ROOT_URLCONF = "sandbox.urls"
WSGI_APPLICATION = "sandbox.wsgi.application"
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": env.db("SANDBOX_DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'var' / 'sandbox.sqlite3'}")
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Demo accounts share one password; a fast hasher keeps seeding and logins quick (dev only).
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# The sandbox is plain HTTP on loopback: cookies cannot be Secure (scripts using `requests`
# would drop them). The simulated EHR and the authorize pages are same-site, so Lax works.
SESSION_COOKIE_NAME = "sandbox_session"
CSRF_COOKIE_NAME = "sandbox_csrftoken"
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
SESSION_COOKIE_AGE = 8 * 3600
X_FRAME_OPTIONS = "SAMEORIGIN"
SECURE_CONTENT_TYPE_NOSNIFF = True
# Not "no-referrer": with it browsers send `Origin: null` on form posts and CSRF refuses them.
SECURE_REFERRER_POLICY = "same-origin"
LOGIN_URL = "sandbox:login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True
STATIC_URL = "static/"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.server": {"level": "WARNING"}},
}
