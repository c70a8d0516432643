"""Sessions cached in Redis (settings.py uses this engine when REDIS_URL is set).

Django's cached_db store: a session is read from the cache, and from the database when the
cache misses. While Redis cannot be reached every read misses (jobs.redis_cache), so each
request reads its session from the database, with jobs.sessions' plain statement.
"""

from __future__ import annotations

from django.contrib.sessions.backends import cached_db

from jobs import sessions


class SessionStore(cached_db.SessionStore, sessions.SessionStore):
    pass
