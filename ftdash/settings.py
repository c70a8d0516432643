"""Django settings for ftdash, read from the environment (see the README's configuration table)."""

from __future__ import annotations

import base64
import datetime as dt
import secrets
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

from ftdash import data_dir, metrics_dir
from ftdash.env import env_bool, env_float, env_int, env_prices, env_secret, env_str, secret_from_data_dir

BASE_DIR = Path(__file__).resolve().parent.parent

# Holds the database and generated keys; a directory that cannot be written ends start-up here.
DATA_DIR = data_dir.prepare()
# Before anything imports prometheus_client: its multiprocess mode (ftdash/metrics_dir.py).
PROMETHEUS_MULTIPROC_DIR = metrics_dir.prepare(DATA_DIR)

DEBUG = env_bool("FTDASH_DEBUG", False)

# --- Secrets -------------------------------------------------------------------------------
# With FTDASH_DEBUG on (`make run`), missing keys are generated into the data dir (mode 0600)
# so trying ftdash needs no setup. In production they must be given (or already be in the
# data dir): silently minting a new encryption key would make every stored token unreadable.


def _secret(name: str, file_name: str, generate) -> str:
    value = env_secret(name)
    if value:
        return value
    path = DATA_DIR / file_name
    if DEBUG or path.exists():
        return secret_from_data_dir(path, generate)
    raise ImproperlyConfigured(
        f"{name} is not set. Set {name} (or {name}_FILE) in the service's environment; "
        "docs/deploy.md shows how to generate it."
    )


SECRET_KEY = _secret("FTDASH_SECRET_KEY", "secret_key", lambda: secrets.token_urlsafe(50))


def _encryption_keys() -> list[str]:
    """Token-vault keys, newest first. Kept apart from SECRET_KEY on purpose: rotating the
    session key must not make every stored API token unreadable."""
    configured = _secret("FTDASH_ENCRYPTION_KEYS", "encryption_key", lambda: Fernet.generate_key().decode())
    keys = [key.strip() for key in configured.replace("\n", ",").split(",") if key.strip()]
    for key in keys:
        try:
            if len(base64.urlsafe_b64decode(key.encode())) != 32:
                raise ValueError
        except ValueError:
            raise ImproperlyConfigured(
                "FTDASH_ENCRYPTION_KEYS holds a value that is not a Fernet key (32 url-safe "
                "base64-encoded bytes). Generate one with: python -c 'from cryptography.fernet "
                "import Fernet; print(Fernet.generate_key().decode())'"
            ) from None
    return keys


FTDASH_ENCRYPTION_KEYS = _encryption_keys()

# --- Site URL, hosts, proxy ----------------------------------------------------------------
# One variable, FTDASH_SITE_URL, says where people reach ftdash (https://ml.example.com/ftdash);
# allowed hosts, trusted CSRF origins, the URL prefix and cookie security all follow from it.

SITE_URL = env_str("FTDASH_SITE_URL").rstrip("/")
_site = urlsplit(SITE_URL) if SITE_URL else None
if _site and (_site.scheme not in ("http", "https") or not _site.hostname or _site.query):
    raise ImproperlyConfigured(
        f"FTDASH_SITE_URL={SITE_URL!r} must be a full URL with scheme and host, e.g. https://ml.example.com/ftdash"
    )
SITE_IS_HTTPS = bool(_site and _site.scheme == "https")
URL_PREFIX = _site.path.rstrip("/") if _site else ""

# Loopback stays allowed so health checks from the same machine work with any site URL.
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]
if _site:
    ALLOWED_HOSTS.append(_site.hostname)
    CSRF_TRUSTED_ORIGINS = [f"{_site.scheme}://{_site.netloc}"]
ALLOWED_HOSTS += [h.strip() for h in env_str("FTDASH_ALLOWED_HOSTS").split(",") if h.strip()]

# The proxy strips the prefix (nginx `proxy_pass http://app/;`); Django adds it to every URL.
FORCE_SCRIPT_NAME = URL_PREFIX or None

# Forwarded headers are believed only from these addresses, and only when FTDASH_BEHIND_PROXY
# is on: anyone who can reach the app port directly could otherwise claim to be on https or
# to come from any address (see jobs.middleware.TrustedProxyMiddleware).
BEHIND_PROXY = env_bool("FTDASH_BEHIND_PROXY", False)
TRUSTED_PROXIES = [ip.strip() for ip in env_str("FTDASH_TRUSTED_PROXIES", "127.0.0.1,::1").split(",") if ip.strip()]

# Distinct cookie names and paths: another Django app on the same host keeps its own session.
SESSION_COOKIE_NAME = "ftdash_session"
CSRF_COOKIE_NAME = "ftdash_csrftoken"
SESSION_COOKIE_PATH = CSRF_COOKIE_PATH = f"{URL_PREFIX}/"
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = SITE_IS_HTTPS
SESSION_COOKIE_AGE = env_int("FTDASH_SESSION_DAYS", 14, minimum=1) * 24 * 3600
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = CSRF_COOKIE_SAMESITE = "Lax"
SECURE_HSTS_SECONDS = env_int("FTDASH_HSTS_SECONDS", 31536000 if SITE_IS_HTTPS else 0, minimum=0)
# Other sites on the domain are not ftdash's to commit to https, nor is a preload-list entry:
# both are the operator's choice, so their deploy-check warnings are silenced while off.
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("FTDASH_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("FTDASH_HSTS_PRELOAD", False)
SILENCED_SYSTEM_CHECKS = (["security.W005"] if not SECURE_HSTS_INCLUDE_SUBDOMAINS else []) + (
    ["security.W021"] if not SECURE_HSTS_PRELOAD else []
)
SECURE_SSL_REDIRECT = env_bool("FTDASH_SSL_REDIRECT", SITE_IS_HTTPS and BEHIND_PROXY)
# Matched against the path with the prefix: health checks talk plain http to the app port.
SECURE_REDIRECT_EXEMPT = [r"(^|/)(healthz|readyz)$"]
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
# Error pages and reports hide any local that carries an API key (see the module).
DEFAULT_EXCEPTION_REPORTER_FILTER = "jobs.exception_reporting.CredentialScrubbingFilter"

# --- Application ---------------------------------------------------------------------------

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django.forms",
    "django_htmx",
    "template_partials",
    "axes",
    "jobs",
]

MIDDLEWARE = [
    # Outermost, so that every answer carries them, even one made by a middleware below that
    # raised (the 400 for a Host header not in ALLOWED_HOSTS comes from CommonMiddleware).
    "jobs.middleware.ContentSecurityPolicyMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "jobs.middleware.TrustedProxyMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Before anything reads request.GET: too many parameters is the 400 page in every mode.
    "jobs.middleware.TooManyParametersMiddleware",
    # Inside the header middlewares, so its 503 carries their headers too.
    "jobs.database_outage.DatabaseOutageMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "jobs.middleware.ProxyRemoteUserMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "jobs.middleware.HtmxLoginRedirectMiddleware",
    # Last, as django-axes requires: it turns a locked-out sign-in into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "ftdash.urls"
WSGI_APPLICATION = "ftdash.wsgi.application"

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
                "jobs.context_processors.csp_nonce",
                "jobs.context_processors.worker_status",
            ],
            "builtins": [
                "django_htmx.templatetags.django_htmx",
                "template_partials.templatetags.partials",
            ],
        },
    }
]

FORM_RENDERER = "ftdash.forms.FormRenderer"

# --- Database and cache --------------------------------------------------------------------

DATABASE_URL = env_str("DATABASE_URL")
if DATABASE_URL:
    try:
        DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60, conn_health_checks=True)}
    except ValueError as exc:
        raise ImproperlyConfigured(f"DATABASE_URL cannot be used: {exc}") from None
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        # A database host that swallows packets fails a request (and /readyz) in seconds, not
        # after the system's TCP timeout; `?connect_timeout=` in DATABASE_URL still wins.
        DATABASES["default"].setdefault("OPTIONS", {}).setdefault("connect_timeout", 5)
else:
    # Tuned for several gunicorn workers: WAL lets readers run beside a writer, a busy timeout
    # waits instead of failing, and IMMEDIATE transactions take the write lock up front, so a
    # transaction never fails half-way when it turns from reading to writing.
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": DATA_DIR / "ftdash.sqlite3",
            "OPTIONS": {
                "timeout": 20,
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
        }
    }

# The cache holds the single-flight refresh locks, so it must be shared by every process
# serving the site: Redis is, the database cache is too (for every process using the same
# database), a per-process memory cache is not.
# "rendered" keeps live parts rendered once per job version (jobs.live): shared through Redis
# when there is one, else per process, which still renders once per process, not per viewer.
# Redis is optional at run time too: while it cannot be reached, jobs.redis_cache answers
# misses (sessions come from the database) and the site carries on. Its timeouts are short so
# that a Redis that swallows packets cannot hold every request.
REDIS_URL = env_str("REDIS_URL")
FTDASH_REDIS_TIMEOUT = env_float("FTDASH_REDIS_TIMEOUT", 0.5, minimum=0.01)
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "jobs.redis_cache.ResilientRedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "ftdash",
            "OPTIONS": {
                "socket_connect_timeout": FTDASH_REDIS_TIMEOUT,
                "socket_timeout": FTDASH_REDIS_TIMEOUT,
            },
        }
    }
    CACHES["rendered"] = CACHES["default"]
    # Polls check the session on every request: from Redis, not a database query.
    SESSION_ENGINE = "jobs.cached_sessions"
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "ftdash_cache",
        },
        "rendered": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "ftdash-rendered",
            "OPTIONS": {"MAX_ENTRIES": 5000},
        },
    }
    # Polls check the session on every request: Django's database sessions, read cheaper.
    SESSION_ENGINE = "jobs.sessions"

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Auth ----------------------------------------------------------------------------------

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Sign-in throttling (django-axes): after FTDASH_LOGIN_FAILURE_LIMIT failures, that account and
# that client address each cool off for FTDASH_LOGIN_COOLOFF_MINUTES; nothing is locked for good.
# The client address is REMOTE_ADDR, which TrustedProxyMiddleware rewrites only for requests
# from a trusted proxy.
AXES_FAILURE_LIMIT = env_int("FTDASH_LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = dt.timedelta(minutes=env_int("FTDASH_LOGIN_COOLOFF_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = ["ip_address", "username"]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "jobs.middleware.client_ip"
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_VERBOSE = False

# Optional single sign-on: an auth proxy (oauth2-proxy, Authelia…) names the user in this
# header. Only requests from FTDASH_TRUSTED_PROXIES may carry it; see docs/security.md.
REMOTE_USER_HEADER = env_str("FTDASH_REMOTE_USER_HEADER")

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    *(["django.contrib.auth.backends.RemoteUserBackend"] if REMOTE_USER_HEADER else []),
    "jobs.auth_backends.ModelBackend",
    # For sessions signed in before jobs.auth_backends; it never checks a password itself.
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_URL = "login"
FTDASH_SIGNUP_OPEN = env_bool("FTDASH_SIGNUP_OPEN", False)
FTDASH_INVITE_DAYS = env_int("FTDASH_INVITE_DAYS", 7, minimum=1)
# The Bearer token of /metrics/instance, the operators' Prometheus metrics; unset, it is a 404.
FTDASH_METRICS_TOKEN = env_secret("FTDASH_METRICS_TOKEN")
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"

# --- Internationalisation ------------------------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("FTDASH_TIME_ZONE", "UTC")
USE_I18N = False
USE_TZ = True

# --- Static files --------------------------------------------------------------------------

# Absolute, with the prefix: the static files storage reads it once, outside any request.
STATIC_URL = f"{URL_PREFIX}/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)
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

# --- Token Factory -------------------------------------------------------------------------

FTDASH_API_BASE_URL = env_str("FTDASH_API_BASE_URL", "https://api.tokenfactory.nebius.com")
FTDASH_API_CONNECT_TIMEOUT = env_float("FTDASH_API_CONNECT_TIMEOUT", 3.05, minimum=0.01)
FTDASH_API_READ_TIMEOUT = env_float("FTDASH_API_READ_TIMEOUT", 10.0, minimum=0.01)
# The read timeout bounds each wait for bytes; this bounds a whole call, retries included.
FTDASH_API_TOTAL_TIMEOUT = env_float("FTDASH_API_TOTAL_TIMEOUT", 15.0, minimum=0.01)
FTDASH_API_MAX_ANSWER_BYTES = env_int("FTDASH_API_MAX_ANSWER_BYTES", 8 * 1024 * 1024, minimum=1)
FTDASH_API_RETRIES = env_int("FTDASH_API_RETRIES", 2, minimum=0)
FTDASH_RETRY_AFTER_CAP_SECONDS = env_int("FTDASH_RETRY_AFTER_CAP_SECONDS", 300, minimum=1)
FTDASH_REFRESH_SECONDS = env_int("FTDASH_REFRESH_SECONDS", 5, minimum=1)
FTDASH_QUEUED_REFRESH_SECONDS = env_int("FTDASH_QUEUED_REFRESH_SECONDS", max(30, FTDASH_REFRESH_SECONDS), minimum=1)

FTDASH_MAX_BACKOFF_SECONDS = env_int("FTDASH_MAX_BACKOFF_SECONDS", 900, minimum=1)
# The JSON API (/api/v1/): calls a minute per access token, past which it answers 429 + Retry-After.
FTDASH_API_REQUESTS_PER_MINUTE = env_int("FTDASH_API_REQUESTS_PER_MINUTE", 120, minimum=1)
# Upstream calls per minute per API token, by every process together (jobs.request_budget).
FTDASH_TOKEN_REQUESTS_PER_MINUTE = env_int("FTDASH_TOKEN_REQUESTS_PER_MINUTE", 60, minimum=1)

# --- Background worker, history, notifications ---------------------------------------------

FTDASH_STALL_MINUTES = env_float("FTDASH_STALL_MINUTES", 30, minimum=0.01)
FTDASH_WORKER_CONCURRENCY = env_int("FTDASH_WORKER_CONCURRENCY", 4, minimum=1)
FTDASH_WORKER_INTERVAL_SECONDS = env_float("FTDASH_WORKER_INTERVAL_SECONDS", 1.0, minimum=0.05)
# Read due jobs from each token's job list (one call per 100 jobs) rather than one by one.
FTDASH_WORKER_LIST_READS = env_bool("FTDASH_WORKER_LIST_READS", True)
# How often (seconds) each token's deployed models (GET /v0/models) are read again.
FTDASH_MODELS_REFRESH_SECONDS = env_int("FTDASH_MODELS_REFRESH_SECONDS", 300, minimum=1)
# The instance's default training prices (USD per 1M tokens), used where a workspace has no price
# of its own for a job's model: `pattern=price,…`, and/or a file of `pattern = price` lines.
FTDASH_TRAINING_PRICES = env_prices("FTDASH_TRAINING_PRICES")
# How often the worker lists a watched token's jobs to start tracking new ones.
FTDASH_DISCOVERY_SECONDS = env_int("FTDASH_DISCOVERY_SECONDS", 60, minimum=1)
FTDASH_ALLOW_PRIVATE_WEBHOOKS = env_bool("FTDASH_ALLOW_PRIVATE_WEBHOOKS", False)
# A notification claimed by a worker that died before recording the answer is sent again (with
# the same X-Ftdash-Delivery id) once this lease runs out; it must outlast the longest send.
FTDASH_DELIVERY_LEASE_SECONDS = env_int("FTDASH_DELIVERY_LEASE_SECONDS", 300, minimum=1)

# Email: the console backend prints messages to the worker's log until SMTP is configured.
EMAIL_HOST = env_str("FTDASH_SMTP_HOST")
EMAIL_BACKEND = env_str(
    "FTDASH_EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend" if EMAIL_HOST else "django.core.mail.backends.console.EmailBackend",
)
EMAIL_PORT = env_int("FTDASH_SMTP_PORT", 587, minimum=1)
EMAIL_HOST_USER = env_str("FTDASH_SMTP_USER")
EMAIL_HOST_PASSWORD = env_secret("FTDASH_SMTP_PASSWORD") or ""
EMAIL_USE_TLS = env_bool("FTDASH_SMTP_STARTTLS", True)
EMAIL_TIMEOUT = 10
DEFAULT_FROM_EMAIL = env_str("FTDASH_EMAIL_FROM", "ftdash <ftdash@localhost>")
EMAIL_FILE_PATH = DATA_DIR / "sent-email"

# --- Logging -------------------------------------------------------------------------------

# One line per upstream call at INFO (jobs.tokenfactory); unhandled errors with their traceback
# at ERROR (django.request). Everything goes to stderr, for journald or docker logs. Request
# paths in log lines ("Not Found: /invite/…", runserver's request lines) never show an invite
# link's secret (see ftdash.log_redaction). While the database cannot be reached, one line per
# outage says so instead of a traceback per request or job (see jobs.database_outage).
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "filters": {
        "redact_invites": {"()": "ftdash.log_redaction.RedactInviteSecrets"},
        "one_line_per_outage": {"()": "jobs.database_outage.OneLinePerOutage"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["redact_invites", "one_line_per_outage"],
        },
    },
    "loggers": {
        "jobs": {"handlers": ["console"], "level": env_str("FTDASH_LOG_LEVEL", "INFO")},
        "django": {"handlers": ["console"], "level": "WARNING"},
        "django.server": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}
