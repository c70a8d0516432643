"""Django settings for ftdash, read from the environment (see the README's configuration table)."""

from __future__ import annotations

import base64
import secrets
from pathlib import Path

from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

from ftdash.env import env_bool, env_float, env_int, env_secret, env_str, secret_from_data_dir

BASE_DIR = Path(__file__).resolve().parent.parent

DATA_DIR = Path(env_str("FTDASH_DATA_DIR") or BASE_DIR / "data").resolve()
# Holds the database and generated keys: readable by the service account only.
DATA_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)

DEBUG = env_bool("FTDASH_DEBUG", False)

# --- Secrets -------------------------------------------------------------------------------
# On first run the keys are generated into the data dir (mode 0600) so `make run` needs no
# setup; a deployment passes them in (or as *_FILE) instead.

SECRET_KEY = env_secret("FTDASH_SECRET_KEY") or secret_from_data_dir(
    DATA_DIR / "secret_key", lambda: secrets.token_urlsafe(50)
)


def _encryption_keys() -> list[str]:
    """Token-vault keys, newest first. Kept apart from SECRET_KEY on purpose: rotating the
    session key must not make every stored API token unreadable."""
    configured = env_secret("FTDASH_ENCRYPTION_KEYS")
    if configured:
        keys = [key.strip() for key in configured.replace("\n", ",").split(",") if key.strip()]
    else:
        keys = [
            secret_from_data_dir(
                DATA_DIR / "encryption_key", lambda: Fernet.generate_key().decode()
            )
        ]
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

# --- Hosts ---------------------------------------------------------------------------------

ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]
extra_hosts = env_str("FTDASH_ALLOWED_HOSTS")
if extra_hosts:
    ALLOWED_HOSTS += [host.strip() for host in extra_hosts.split(",") if host.strip()]

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
    "jobs",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "jobs.middleware.HtmxLoginRedirectMiddleware",
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

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": DATA_DIR / "ftdash.sqlite3",
        "OPTIONS": {"timeout": 20},
    }
}

# The cache holds the single-flight refresh locks, so it must be shared by every process
# serving the site: the database cache is, a per-process memory cache is not.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.db.DatabaseCache",
        "LOCATION": "ftdash_cache",
    }
}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Auth ----------------------------------------------------------------------------------

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"

# --- Internationalisation ------------------------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("FTDASH_TIME_ZONE", "UTC")
USE_I18N = False
USE_TZ = True

# --- Static files --------------------------------------------------------------------------

STATIC_URL = "static/"
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
FTDASH_API_RETRIES = env_int("FTDASH_API_RETRIES", 2, minimum=0)
FTDASH_RETRY_AFTER_CAP_SECONDS = env_int("FTDASH_RETRY_AFTER_CAP_SECONDS", 300, minimum=1)
FTDASH_REFRESH_SECONDS = env_int("FTDASH_REFRESH_SECONDS", 5, minimum=1)
FTDASH_QUEUED_REFRESH_SECONDS = env_int(
    "FTDASH_QUEUED_REFRESH_SECONDS", max(30, FTDASH_REFRESH_SECONDS), minimum=1
)

# --- Logging -------------------------------------------------------------------------------

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "jobs": {"handlers": ["console"], "level": env_str("FTDASH_LOG_LEVEL", "INFO")},
    },
}
