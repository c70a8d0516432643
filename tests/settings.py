"""Settings for the test suite: ftdash's own settings, with a throwaway data dir and fast timeouts."""

import os
import tempfile

os.environ.setdefault("FTDASH_DATA_DIR", tempfile.mkdtemp(prefix="ftdash-test-"))
os.environ.setdefault("FTDASH_SECRET_KEY", "test-" + "x" * 60)
os.environ.setdefault("FTDASH_ENCRYPTION_KEYS", "mkK3wq0dPzgXk6pI3ZdX6c6nXbH2x1Rkq2cYbnFqAqU=")
os.environ.setdefault("FTDASH_API_READ_TIMEOUT", "1")
os.environ.setdefault("FTDASH_API_CONNECT_TIMEOUT", "1")

from ftdash.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}  # noqa: F405
