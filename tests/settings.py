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

# Under pytest-xdist (`make test-fast`) each worker has its own test database (pytest-django
# suffixes its name with _gw0, _gw1…) and its own data dir (above); on the Redis leg it needs
# its own Redis database too, since a test's cache.clear() is a FLUSHDB that would empty the
# other workers' caches mid-test: worker gwN uses database N past the one REDIS_URL names.
_XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
if REDIS_URL and _XDIST_WORKER.startswith("gw"):  # noqa: F405
    from urllib.parse import urlsplit

    _redis = urlsplit(REDIS_URL)  # noqa: F405
    _redis_db = int(_redis.path.strip("/") or 0) + int(_XDIST_WORKER[2:])
    CACHES["default"]["LOCATION"] = _redis._replace(path=f"/{_redis_db}").geturl()  # noqa: F405
    CACHES["rendered"] = CACHES["default"]  # noqa: F405
