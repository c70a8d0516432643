"""The Redis cache ftdash uses when REDIS_URL is set: Redis being unreachable is a miss, not an error.

Redis holds only what can be had again: cached sessions (their rows are in the database), live
parts (rendered again), single-flight claims made with `cache.add`. So this is the one place
that knows Redis can be down and carries on: no caller has to catch Redis's errors.

While Redis cannot be reached (down at start, gone mid-run):
- reads are misses: sessions are read from the database, parts are rendered again;
- writes, deletes and claims are skipped, and their keys remembered; once Redis answers again
  those keys are deleted from it, so a value Redis kept through the outage (a session signed
  out meanwhile), or a write that timed out but was done after all, is never read back;
- `add`, every claim ftdash makes (refresh locks, "one caller per interval"), falls back to a
  table in this process: without Redis the processes no longer see each other's claims, so each
  may make one call the others also make, never more (the bounded degradation of issue 17);
- after a failure Redis is left alone for RETRY_SECONDS, so a Redis that swallows packets costs
  one short socket timeout per process and window rather than one per request, and recovery
  needs no restart: the first call after the window that succeeds ends the outage;
- a thread of this process asks Redis once per window meanwhile, so the keys above are deleted
  as soon as Redis answers, not at this process's next request;
- a warning is logged at most once a minute per process.

When Redis answers, each call is the plain `RedisCache` call: no extra round-trip.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.redis import RedisCache

logger = logging.getLogger(__name__)

RETRY_SECONDS = 2.0
WARNING_SECONDS = 60.0
# Bounds on what an outage may make a process hold, however long it lasts.
MAX_CLAIMS = 10_000
MAX_UNSYNCED_KEYS = 10_000


class _Outage:
    """What this process knows about one Redis being unreachable, shared by every thread's
    backend (Django makes one backend instance per thread and alias)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.retry_at = 0.0  # time.monotonic(); 0: Redis answered last time it was asked
        self.warned_at = -math.inf
        self.unsynced: set[str] = set()
        self.unsynced_dropped = 0
        self.claims: dict[str, float] = {}
        self.watcher: threading.Thread | None = None

    def skipping(self) -> bool:
        return self.retry_at > 0 and time.monotonic() < self.retry_at

    def failed(self, error: Exception, backend: ResilientRedisCache) -> None:
        now = time.monotonic()
        with self.lock:
            self.retry_at = now + RETRY_SECONDS
            warn = now - self.warned_at >= WARNING_SECONDS
            if warn:
                self.warned_at = now
            watch = self.watcher is None
            if watch:
                self.watcher = threading.Thread(target=self._watch, args=(backend,), name="redis-outage", daemon=True)
        if watch:
            self.watcher.start()
        if warn:
            logger.warning(
                "Redis cannot be reached (%s): carrying on without it, sessions from the database "
                "and claims per process, until it answers again (next warning in a minute at most)",
                error,
            )

    def _watch(self, backend: ResilientRedisCache) -> None:
        """Ask Redis once per retry window until it answers, and then delete the keys written
        meanwhile at once: however few requests this process gets, another process does not
        read a stale value from Redis for longer than a window."""
        while self.retry_at:
            time.sleep(RETRY_SECONDS)
            backend.answers()

    def remember(self, keys: Iterable[str]) -> None:
        with self.lock:
            for key in keys:
                if len(self.unsynced) < MAX_UNSYNCED_KEYS:
                    self.unsynced.add(key)
                elif key not in self.unsynced:
                    self.unsynced_dropped += 1

    def claim(self, key: str, timeout: int | None) -> bool:
        """`cache.add` within this process: True unless this process holds a live claim on key."""
        now = time.monotonic()
        with self.lock:
            if self.claims.get(key, -math.inf) > now:
                return False
            if len(self.claims) >= MAX_CLAIMS:
                self.claims = {k: until for k, until in self.claims.items() if until > now}
                if len(self.claims) >= MAX_CLAIMS:
                    return False  # so many live claims: this caller waits like a lost race
            if timeout != 0:
                self.claims[key] = math.inf if timeout is None else now + timeout
            return True

    def release(self, keys: Iterable[str]) -> None:
        if not self.claims:
            return
        with self.lock:
            for key in keys:
                self.claims.pop(key, None)

    def recovered(self) -> tuple[list[str], int] | None:
        """Mark Redis as answering: the keys to delete from it and how many were not kept, or
        None if another thread saw it answer first."""
        with self.lock:
            if not self.retry_at:
                return None
            keys, dropped = list(self.unsynced), self.unsynced_dropped
            self.retry_at, self.unsynced, self.unsynced_dropped, self.claims = 0.0, set(), 0, {}
            self.watcher = None
        return keys, dropped


_outages: dict[str, _Outage] = {}
_outages_lock = threading.Lock()


def _outage_of(location: str) -> _Outage:
    with _outages_lock:
        return _outages.setdefault(location, _Outage())


class ResilientRedisCache(RedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        # Imported here, as Django's own Redis backend does: redis-py is 7 MB resident a process,
        # and a process without Redis configured never builds this backend.
        from redis.exceptions import RedisError

        self._redis_errors = RedisError
        self._outage = _outage_of(",".join(self._servers))

    def _call(self, operation: Callable[[], Any], fallback: Callable[[], Any], written: Iterable[str] = ()):
        """`operation()` against Redis, or `fallback()` while it cannot be reached. `written`:
        the keys the operation writes or deletes, remembered if it could not."""
        outage = self._outage
        if not outage.skipping():
            try:
                result = operation()
            except self._redis_errors as error:
                outage.failed(error, self)
            else:
                if outage.retry_at:
                    self._end_outage()
                return result
        outage.remember(written)
        return fallback()

    def _end_outage(self) -> None:
        recovered = self._outage.recovered()
        if recovered is None:
            return
        stale, dropped = recovered
        try:
            for start in range(0, len(stale), 1000):
                self._cache.delete_many(stale[start : start + 1000])
        except self._redis_errors as error:
            self._outage.remember(stale)
            self._outage.failed(error, self)
            return
        logger.info(
            "Redis answers again: using it; %d entries written during the outage were dropped from it%s",
            len(stale),
            f" ({dropped} more were not tracked and may be stale until they expire)" if dropped else "",
        )

    def answers(self) -> bool:
        """Whether Redis answers now (a PING), for /readyz; False within an outage's retry window."""
        return bool(self._call(lambda: self._cache.get_client().ping(), lambda: False))

    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        key = self.make_and_validate_key(key, version=version)
        timeout = self.get_backend_timeout(timeout)
        return self._call(lambda: self._cache.add(key, value, timeout), lambda: self._outage.claim(key, timeout), [key])

    def get(self, key, default=None, version=None):
        key = self.make_and_validate_key(key, version=version)
        return self._call(lambda: self._cache.get(key, default), lambda: default)

    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        key = self.make_and_validate_key(key, version=version)
        timeout = self.get_backend_timeout(timeout)
        self._call(lambda: self._cache.set(key, value, timeout), lambda: None, [key])

    def touch(self, key, timeout=DEFAULT_TIMEOUT, version=None):
        key = self.make_and_validate_key(key, version=version)
        timeout = self.get_backend_timeout(timeout)
        return self._call(lambda: self._cache.touch(key, timeout), lambda: False)

    def delete(self, key, version=None):
        key = self.make_and_validate_key(key, version=version)
        self._outage.release([key])
        return self._call(lambda: self._cache.delete(key), lambda: False, [key])

    def incr(self, key, delta=1, version=None):
        key = self.make_and_validate_key(key, version=version)
        return self._call(lambda: self._cache.incr(key, delta), lambda: _missing(key), [key])

    def get_many(self, keys, version=None):
        key_map = {self.make_and_validate_key(key, version=version): key for key in keys}
        found = self._call(lambda: self._cache.get_many(key_map.keys()), dict)
        return {key_map[k]: v for k, v in found.items()}

    def has_key(self, key, version=None):
        key = self.make_and_validate_key(key, version=version)
        return self._call(lambda: self._cache.has_key(key), lambda: False)

    def set_many(self, data, timeout=DEFAULT_TIMEOUT, version=None):
        if not data:
            return []
        safe_data = {self.make_and_validate_key(key, version=version): value for key, value in data.items()}
        timeout = self.get_backend_timeout(timeout)
        failed = list(data)
        return self._call(lambda: self._cache.set_many(safe_data, timeout) or [], lambda: failed, safe_data)

    def delete_many(self, keys, version=None):
        if not keys:
            return
        safe_keys = [self.make_and_validate_key(key, version=version) for key in keys]
        self._outage.release(safe_keys)
        self._call(lambda: self._cache.delete_many(safe_keys), lambda: None, safe_keys)


def _missing(key: str):
    raise ValueError(f"Key '{key}' not found.")  # what incr raises for a key not in the cache


def redis_answers(cache: object) -> bool | None:
    """Whether Redis answers now (`ResilientRedisCache.answers`), or None when `cache` is not
    the Redis cache."""
    return cache.answers() if isinstance(cache, ResilientRedisCache) else None
