"""Settings for the test suite: ftdash's own settings, with a throwaway data dir and fast timeouts."""

import os
import tempfile

# The suite sets every ftdash variable it depends on; none leaks in from the shell (make exports
# FTDASH_DATA_DIR, a developer may have FTDASH_SITE_URL set…). DATABASE_URL and REDIS_URL do
# pass through: they select the PostgreSQL and Redis legs.
TEST_SWITCHES = {"FTDASH_REQUIRE_BROWSER", "FTDASH_UPDATE_SCREENSHOTS"}
for name in [n for n in os.environ if n.startswith("FTDASH_") and n not in TEST_SWITCHES]:
    del os.environ[name]
os.environ["FTDASH_DATA_DIR"] = tempfile.mkdtemp(prefix="ftdash-test-")
os.environ["FTDASH_SECRET_KEY"] = "test-" + "x" * 60
os.environ["FTDASH_ENCRYPTION_KEYS"] = "mkK3wq0dPzgXk6pI3ZdX6c6nXbH2x1Rkq2cYbnFqAqU="
os.environ["FTDASH_API_READ_TIMEOUT"] = "1"
os.environ["FTDASH_API_CONNECT_TIMEOUT"] = "1"
# Tests that are not about the request budget make their calls as quickly as they like.
os.environ["FTDASH_TOKEN_REQUESTS_PER_MINUTE"] = "1000000"

from ftdash.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}  # noqa: F405
