"""Settings for the SMART on FHIR dashboard.

Every deploy-specific value comes from the environment (or an optional `.env` file beside
manage.py) through django-environ. `DEBUG=True` gives the demo defaults (SQLite, the sandbox
EHR, a dev-only encryption key); with `DEBUG=False` the process refuses to start unless the
production values are set. Every variable is listed in `.env.example`.
"""

from __future__ import annotations

import base64
import hashlib
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path

import environ
from cryptography.fernet import Fernet
from csp.constants import NONE, SELF, UNSAFE_INLINE
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)

# --- Production guard -------------------------------------------------------------------
# Without DEBUG, refuse to start on a missing secret rather than fall back to a demo value.
# Build-time commands are exempt: they read no secret and touch no database, and must run where
# the runtime secrets do not exist (collectstatic in an image build; the very first
# generate_encryption_key or generate_jwks, before any key exists).
_REQUIRED_IN_PRODUCTION = ("SECRET_KEY", "ALLOWED_HOSTS", "TOKEN_ENCRYPTION_KEYS", "DATABASE_URL")
_SECRETLESS_COMMANDS = {"collectstatic", "generate_encryption_key", "generate_jwks"}
_BUILD_COMMAND = (
    len(sys.argv) > 1
    and Path(sys.argv[0]).name in ("manage.py", "django-admin")
    and sys.argv[1] in _SECRETLESS_COMMANDS
)
if not DEBUG and not _BUILD_COMMAND:
    _missing = [name for name in _REQUIRED_IN_PRODUCTION if not env.str(name, default="")]
    if _missing:
        raise ImproperlyConfigured(
            "DEBUG is off, so these environment variables are required: " + ", ".join(_missing)
        )

SECRET_KEY = env.str("SECRET_KEY", default="dev-only-insecure-key-do-not-use-in-production")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# Token and client-secret encryption: comma-separated Fernet keys, newest first. Older keys
# still decrypt, so rotation is "prepend a new key, re-encrypt, drop the old one later".
TOKEN_ENCRYPTION_KEYS = env.list(
    "TOKEN_ENCRYPTION_KEYS",
    default=[base64.urlsafe_b64encode(hashlib.sha256(SECRET_KEY.encode()).digest()).decode()],
)
for _position, _key in enumerate(TOKEN_ENCRYPTION_KEYS, start=1):
    # Fail at startup, not at the first token write; never echo the key itself.
    try:
        Fernet(_key.encode())
    except (ValueError, TypeError):
        raise ImproperlyConfigured(
            f"TOKEN_ENCRYPTION_KEYS entry #{_position} is not a valid Fernet key (32 url-safe "
            "base64-encoded bytes). Generate one with `python manage.py generate_encryption_key`."
        ) from None

# --- Applications -------------------------------------------------------------------------
# The sandbox EHR is a dev/test tool; it may never be installed in production.
SANDBOX_ENABLED = env.bool("SANDBOX_ENABLED", default=DEBUG)
if SANDBOX_ENABLED and not DEBUG and not env.bool("SANDBOX_ALLOW_WITHOUT_DEBUG", default=False):
    raise ImproperlyConfigured("SANDBOX_ENABLED requires DEBUG=True: the sandbox EHR is dev-only.")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "mozilla_django_oidc",
    "csp",  # django-csp's system checks; the middleware is smartapp.security's subclass
    "smartapp",
    "clinical",
    "population",
]
if SANDBOX_ENABLED:
    INSTALLED_APPS.append("sandbox")

# Order matters: response processing runs bottom-up, so the CSP middleware (which removes
# X-Frame-Options on frameable pages) sits above XFrameOptionsMiddleware, and the Partitioned
# cookie middleware sits above the session and CSRF middleware that set those cookies.
MIDDLEWARE = [
    "clinical.timing.ServerTimingMiddleware",  # outermost: its `app` time covers all the others
    "smartapp.logging.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "smartapp.security.ContentSecurityPolicyMiddleware",
    "smartapp.security.PartitionedCookieMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "smartapp.middleware.LaunchContextMiddleware",
]

ROOT_URLCONF = "smartapp.urls"
WSGI_APPLICATION = "smartapp.wsgi.application"

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
            ],
        },
    },
]

# --- Data -----------------------------------------------------------------------------------
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DB_CONN_MAX_AGE", default=60))
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several threads and two servers share one SQLite file in the demo and the tests. WAL with
    # synchronous=NORMAL cannot corrupt the file and skips an fsync per commit (production runs
    # PostgreSQL; SQLite is the demo and test default). Connections persist per thread as with
    # PostgreSQL (DB_CONN_MAX_AGE): a connection opened and closed per request (these PRAGMAs
    # each time) cost 2.5-3 ms of every dashboard reload under gunicorn.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
    # The test database on disk, not in shared-cache memory: threads in tests (parallel FHIR
    # queries, concurrent refreshes) then wait on SQLite's busy timeout instead of failing with
    # "database table is locked".
    DATABASES["default"].setdefault(
        "TEST", {"NAME": str(Path(DATABASES["default"]["NAME"]).with_name("test-db.sqlite3"))}
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# The cache holds discovery documents, JWKS and the cross-process refresh lock, so it must be
# shared by every process: Redis when configured, else a database table (createcachetable).
_REDIS_URL = env.str("REDIS_URL", default="")
# Seconds a Redis connect or command may take: a hung Redis is then an outage the cache policy
# handles (smartapp/cachepolicy.py), not a request thread stuck for good.
SMART_CACHE_SOCKET_TIMEOUT = env.float("SMART_CACHE_SOCKET_TIMEOUT", default=1.0)
if _REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": _REDIS_URL,
            "OPTIONS": {
                "socket_connect_timeout": SMART_CACHE_SOCKET_TIMEOUT,
                "socket_timeout": SMART_CACHE_SOCKET_TIMEOUT,
            },
        }
    }
else:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "smartapp_cache"}
    }

# Tokens live server-side: database sessions, never signed-cookie sessions.
SESSION_ENGINE = "django.contrib.sessions.backends.db"
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", default=8 * 3600)

# --- Cookies, framing, transport -----------------------------------------------------------
# EHRs embed the app in a cross-site iframe: cookies must be SameSite=None; Secure (browsers
# treat http://localhost as secure, so this holds in the demo too) and Partitioned (CHIPS).
SESSION_COOKIE_SECURE = True
SESSION_COOKIE_SAMESITE = "None"
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_SECURE = True
CSRF_COOKIE_SAMESITE = "None"
CSRF_COOKIE_HTTPONLY = True
CSRF_FAILURE_VIEW = "smartapp.errors.csrf_failure"  # the app's header, a next step, a reference
SMART_PARTITIONED_COOKIES = env.bool("SMART_PARTITIONED_COOKIES", default=True)
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin-allow-popups"
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG)
# The `preload` token only states consent; nothing is preloaded until the apex domain is
# submitted to hstspreload.org, which is a separate, deliberate step.
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=not DEBUG)
if env.bool("SECURE_PROXY_SSL_HEADER", default=not DEBUG):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]

# Content-Security-Policy: django-csp sends this policy on every response; smartapp.security
# replaces form-action and frame-ancestors on the views below with the enabled EHRs' origins.
# style-src-attr 'unsafe-inline': the dashboard sets sanitised CSS custom properties (EHR style
# hints) in style attributes. Attribute styles cannot load script or use selectors, so this does
# not reopen the CSS-exfiltration or script vectors that style-src 'self' closes.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "style-src-attr": [UNSAFE_INLINE],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}
# Only these views may be framed, and only by the enabled EHRs' registered origins; everything
# else gets frame-ancestors 'none' + XFO DENY.
SMART_FRAMEABLE_VIEWS = [
    "smartapp:home",
    "smartapp:launch",
    "smartapp:callback",
    "smartapp:standalone",
    "smartapp:logout",  # signing out from inside the EHR's iframe must show its page there
    "clinical:*",
]
# Views of these apps (top-level package or URL namespace) get no CSP from the middleware: the
# dev-only sandbox EHR frames the app cross-site and redirects its forms to the app's callback.
SMART_CSP_EXEMPT_APPS = ["sandbox"]
# How long the enabled EHRs' origins stay cached; Ehr saves/deletes invalidate it at once.
SMART_CSP_CACHE_TTL = env.int("SMART_CSP_CACHE_TTL", default=300)

# --- Auth -----------------------------------------------------------------------------------
# ModelBackend for admin passwords; SmartOIDCBackend signs in EHR users from a verified id_token.
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "smartapp.identity.SmartOIDCBackend",
]
LOGIN_URL = "admin:login"
# Where a password (admin) login lands when `next` is missing or refused as unsafe (another
# host): the admin index, not Django's default /accounts/profile/, which does not exist here.
LOGIN_REDIRECT_URL = "admin:index"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- SMART client ---------------------------------------------------------------------------
# The app's public base URL. redirect_uri and the launch URL are built from it, never from the
# request's Host header, because EHRs match redirect URIs exactly.
SMART_APP_BASE_URL = env.str("SMART_APP_BASE_URL", default="http://localhost:8000").rstrip("/")
SMART_HTTP_CONNECT_TIMEOUT = env.float("SMART_HTTP_CONNECT_TIMEOUT", default=3.05)
SMART_HTTP_READ_TIMEOUT = env.float("SMART_HTTP_READ_TIMEOUT", default=10.0)
# The total wall-clock limit on one outbound call, headers and body (smartapp.transport): a server
# trickling bytes cannot outlast it. Token calls, the refresh lock and the proxy timeout derive from it.
SMART_HTTP_DEADLINE = env.float(
    "SMART_HTTP_DEADLINE", default=SMART_HTTP_CONNECT_TIMEOUT + SMART_HTTP_READ_TIMEOUT
)
# The EHR's style document is cosmetic: the page waits for it this long at most.
SMART_STYLE_DEADLINE = env.float("SMART_STYLE_DEADLINE", default=3.0)
# Plain http to loopback (the sandbox EHR on http://127.0.0.1) is allowed with DEBUG only; this
# test-only switch allows it without DEBUG (the suite runs production-like settings).
# Never set it in production.
SMART_ALLOW_HTTP_LOOPBACK = env.bool("SMART_ALLOW_HTTP_LOOPBACK", default=False)
for _name in ("SMART_HTTP_CONNECT_TIMEOUT", "SMART_HTTP_READ_TIMEOUT", "SMART_HTTP_DEADLINE"):
    if globals()[_name] <= 0:
        raise ImproperlyConfigured(f"{_name} must be a positive number of seconds, got {globals()[_name]}")
if SMART_STYLE_DEADLINE <= 0:
    raise ImproperlyConfigured(f"SMART_STYLE_DEADLINE must be positive, got {SMART_STYLE_DEADLINE}")
SMART_DISCOVERY_TTL = env.int("SMART_DISCOVERY_TTL", default=3600)
SMART_REFRESH_SKEW_SECONDS = env.int("SMART_REFRESH_SKEW_SECONDS", default=60)
SMART_REFRESH_BACKOFF_SECONDS = env.int("SMART_REFRESH_BACKOFF_SECONDS", default=10)
SMART_STATE_MAX_AGE = env.int("SMART_STATE_MAX_AGE", default=600)
SMART_MAX_PENDING_STATES = env.int("SMART_MAX_PENDING_STATES", default=20)
SMART_MAX_LAUNCHES_PER_SESSION = env.int("SMART_MAX_LAUNCHES_PER_SESSION", default=20)
# private_key_jwt signing keys: a private JWKS as JSON in SMART_JWKS, or a path in SMART_JWKS_FILE.
SMART_JWKS = env.str("SMART_JWKS", default="")
SMART_JWKS_FILE = env.str("SMART_JWKS_FILE", default=str(BASE_DIR / "var" / "dev-jwks.json") if DEBUG else "")

# --- FHIR client ----------------------------------------------------------------------------
FHIR_PAGE_SIZE = env.int("FHIR_PAGE_SIZE", default=200)
FHIR_PAGE_LIMIT = env.int("FHIR_PAGE_LIMIT", default=10)
FHIR_MAX_ENTRIES = env.int("FHIR_MAX_ENTRIES", default=1000)
FHIR_MAX_WORKERS = env.int("FHIR_MAX_WORKERS", default=8)
# Readings fetched per vital-sign measure (one page each): the latest, the previous, the chart.
FHIR_MEASURE_COUNT = env.int("FHIR_MEASURE_COUNT", default=100)
# Use Observation/$lastn where the server's CapabilityStatement offers it (False: per-measure
# searches everywhere, e.g. for a server whose $lastn misbehaves).
FHIR_USE_LASTN = env.bool("FHIR_USE_LASTN", default=True)
# Results per lab test where the server offers Observation/$lastn (each test's history).
FHIR_LAB_HISTORY = env.int("FHIR_LAB_HISTORY", default=20)
# Lab reports (DiagnosticReport) asked for, newest first, in one page: labs are grouped by the
# report that lists their latest result. 100 is Oracle Health's largest _count.
FHIR_REPORT_COUNT = env.int("FHIR_REPORT_COUNT", default=100)
# Parsed Observations and DiagnosticReports kept per process, by server, id and meta.versionId,
# so a reload parses only what changed (clinical/fhir/memo.py); 0 turns it off. Bounded in time
# too: clinical data does not stay in memory longer than a clinician's session needs it.
FHIR_PARSED_CACHE_SIZE = env.int("FHIR_PARSED_CACHE_SIZE", default=5000)
FHIR_PARSED_CACHE_SECONDS = env.int("FHIR_PARSED_CACHE_SECONDS", default=900)
# Query threads per process, shared by all requests (about gunicorn threads x queries per page).
FHIR_QUERY_THREADS = env.int("FHIR_QUERY_THREADS", default=48)
for _name in (
    "FHIR_PAGE_SIZE",
    "FHIR_PAGE_LIMIT",
    "FHIR_MAX_ENTRIES",
    "FHIR_MAX_WORKERS",
    "FHIR_MEASURE_COUNT",
    "FHIR_LAB_HISTORY",
    "FHIR_REPORT_COUNT",
    "FHIR_QUERY_THREADS",
):
    if globals()[_name] < 1:
        raise ImproperlyConfigured(f"{_name} must be at least 1, got {globals()[_name]}")
if FHIR_PARSED_CACHE_SIZE < 0 or FHIR_PARSED_CACHE_SECONDS < 1:
    raise ImproperlyConfigured("FHIR_PARSED_CACHE_SIZE must be >= 0 and FHIR_PARSED_CACHE_SECONDS >= 1")

# --- Clinical display -------------------------------------------------------------------------
# The app's own vital-sign cut-offs (adults only, flagged as the app's, never as the lab's) and the
# age after which a latest value is greyed as stale. Conventions, not diagnoses: see
# docs/clinical-display.md for each value's source. clinical.display reads them at call time.
_CLINICAL_RAW = {
    "CLINICAL_HR_RANGE": env.str("CLINICAL_HR_RANGE", default="50,100"),
    "CLINICAL_RR_RANGE": env.str("CLINICAL_RR_RANGE", default="12,20"),
    "CLINICAL_SPO2_LOW": env.str("CLINICAL_SPO2_LOW", default="92"),
    "CLINICAL_FEVER_C": env.str("CLINICAL_FEVER_C", default="38.0"),
    "CLINICAL_HYPOTHERMIA_C": env.str("CLINICAL_HYPOTHERMIA_C", default="35.0"),
    "CLINICAL_BP_HIGH": env.str("CLINICAL_BP_HIGH", default="140,90"),  # systolic,diastolic
    "CLINICAL_BP_VERY_HIGH": env.str("CLINICAL_BP_VERY_HIGH", default="180,120"),
    "CLINICAL_SYSTOLIC_LOW": env.str("CLINICAL_SYSTOLIC_LOW", default="90"),
    "CLINICAL_MAP_LOW": env.str("CLINICAL_MAP_LOW", default="65"),
}


def _clinical_numbers(name: str, count: int) -> tuple[Decimal, ...]:
    """Exact decimals (flags compare displayed Decimals with them); a bad value stops the start."""
    raw = _CLINICAL_RAW[name]
    try:
        values = tuple(Decimal(part.strip()) for part in raw.split(","))
    except (InvalidOperation, ValueError):
        values = ()
    if len(values) != count or not all(v.is_finite() and v > 0 for v in values):
        shape = "a positive number" if count == 1 else f"{count} comma-separated positive numbers"
        raise ImproperlyConfigured(f"{name} must be {shape}, got {raw!r}")
    return values


CLINICAL_STALE_VITALS_DAYS = env.int("CLINICAL_STALE_VITALS_DAYS", default=365)
CLINICAL_STALE_LABS_DAYS = env.int("CLINICAL_STALE_LABS_DAYS", default=365)
CLINICAL_ATTENTION_DAYS = env.int("CLINICAL_ATTENTION_DAYS", default=30)
CLINICAL_HR_RANGE = _clinical_numbers("CLINICAL_HR_RANGE", 2)
CLINICAL_RR_RANGE = _clinical_numbers("CLINICAL_RR_RANGE", 2)
(CLINICAL_SPO2_LOW,) = _clinical_numbers("CLINICAL_SPO2_LOW", 1)
(CLINICAL_FEVER_C,) = _clinical_numbers("CLINICAL_FEVER_C", 1)
(CLINICAL_HYPOTHERMIA_C,) = _clinical_numbers("CLINICAL_HYPOTHERMIA_C", 1)
CLINICAL_BP_HIGH = _clinical_numbers("CLINICAL_BP_HIGH", 2)
CLINICAL_BP_VERY_HIGH = _clinical_numbers("CLINICAL_BP_VERY_HIGH", 2)
(CLINICAL_SYSTOLIC_LOW,) = _clinical_numbers("CLINICAL_SYSTOLIC_LOW", 1)
(CLINICAL_MAP_LOW,) = _clinical_numbers("CLINICAL_MAP_LOW", 1)
for _name in ("CLINICAL_STALE_VITALS_DAYS", "CLINICAL_STALE_LABS_DAYS", "CLINICAL_ATTENTION_DAYS"):
    if globals()[_name] < 1:
        raise ImproperlyConfigured(f"{_name} must be at least 1, got {globals()[_name]}")
for _name in ("CLINICAL_HR_RANGE", "CLINICAL_RR_RANGE"):
    if globals()[_name][0] >= globals()[_name][1]:
        raise ImproperlyConfigured(f"{_name} must be low,high with low < high")
if CLINICAL_HYPOTHERMIA_C >= CLINICAL_FEVER_C:
    raise ImproperlyConfigured("CLINICAL_HYPOTHERMIA_C must be below CLINICAL_FEVER_C")
if not all(h < v for h, v in zip(CLINICAL_BP_HIGH, CLINICAL_BP_VERY_HIGH, strict=True)):
    raise ImproperlyConfigured("CLINICAL_BP_VERY_HIGH must be above CLINICAL_BP_HIGH (systolic,diastolic)")
if CLINICAL_SPO2_LOW > 100:
    raise ImproperlyConfigured(f"CLINICAL_SPO2_LOW must be at most 100, got {CLINICAL_SPO2_LOW}")

# --- i18n / static --------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / "staticfiles")
STATICFILES_DIRS = [BASE_DIR / "static"]
# Serve straight from the source folders (no collectstatic) in the demo and test servers.
WHITENOISE_USE_FINDERS = env.bool("WHITENOISE_USE_FINDERS", default=DEBUG)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if env.bool("STATIC_MANIFEST", default=not DEBUG)
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# --- Logging --------------------------------------------------------------------------------
# One JSON object per line in production (LOG_FORMAT=json), with the request id; every record
# passes the redaction filter on its way out, so a token slipped into a message is scrubbed.
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOG_FORMAT = env.str("LOG_FORMAT", default="plain" if DEBUG else "json")
if LOG_FORMAT not in ("json", "plain"):
    raise ImproperlyConfigured(f"Unexpected value LOG_FORMAT={LOG_FORMAT!r}, use 'json' or 'plain'")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_id": {"()": "smartapp.logging.RequestIdFilter"},
        "redact": {"()": "smartapp.logging.RedactionFilter"},
    },
    "formatters": {
        "json": {"()": "smartapp.logging.JsonFormatter"},
        "plain": {
            "()": "smartapp.logging.RedactingFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s",
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["request_id", "redact"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django": {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False},
        # runserver's request lines carry query strings (?code=...): route them through redaction.
        "django.server": {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False},
    },
}
