"""Redis is optional at run time (issue 17, item 3), and /readyz tells the truth (item 5), in this
process: a Redis that cannot be reached makes reads miss and writes skip without raising, and
holds claims within the process; /readyz reports the database, the cache and the last worker,
and is never redirected. Real processes meeting a stopped or cut-off Redis:
tests/processes/test_redis_outage.py.
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from jobs.models import WorkerHeartbeat
from tests.support.server_process import free_port
from tests.support.waiting import wait_for


def test_readyz_says_the_database_and_cache_answer_and_how_long_ago_a_worker_was_seen(client, db):
    assert client.get("/readyz").json() == {"database": "ok", "cache": "ok", "worker_seen_seconds_ago": None}
    WorkerHeartbeat.objects.create(name="old", last_seen=timezone.now() - dt.timedelta(hours=1))
    WorkerHeartbeat.objects.create(name="new", last_seen=timezone.now() - dt.timedelta(seconds=42))
    response = client.get("/readyz")  # no sign-in needed
    assert response.status_code == 200
    assert response.json()["worker_seen_seconds_ago"] in (42, 43)
    assert "no-store" in response["Cache-Control"]


def test_readyz_is_never_redirected_to_https(client, db, settings):
    settings.SECURE_SSL_REDIRECT = True
    assert client.get("/tokens/").status_code == 301
    assert client.get("/readyz").status_code == 200


def _unreachable_cache():
    from jobs.redis_cache import ResilientRedisCache

    return ResilientRedisCache(f"redis://127.0.0.1:{free_port()}/0", {"OPTIONS": {"socket_connect_timeout": 1}})


def test_while_redis_cannot_be_reached_reads_miss_writes_are_skipped_and_nothing_raises():
    cache = _unreachable_cache()
    cache.set("a", 1)
    assert cache.get("a", "missed") == "missed"
    assert cache.get_many(["a", "b"]) == {}
    assert "a" not in cache
    assert cache.set_many({"a": 1, "b": 2}) == ["a", "b"]  # as Django reports keys it could not set
    cache.delete_many(["a", "b"])
    with pytest.raises(ValueError):
        cache.incr("a")  # what incr says of a key the cache does not hold
    assert not cache.answers()


def test_while_redis_cannot_be_reached_a_claim_is_held_once_in_this_process_until_released_or_expired():
    cache = _unreachable_cache()
    assert cache.add("refresh-lock:1", "locked", timeout=60)
    assert not cache.add("refresh-lock:1", "locked", timeout=60)  # a second viewer waits
    assert cache.add("refresh-lock:2", "locked", timeout=60)  # another job's is its own
    cache.delete("refresh-lock:1")
    assert cache.add("refresh-lock:1", "locked", timeout=1)
    wait_for(lambda: cache.add("refresh-lock:1", "locked", timeout=60), timeout=10, what="the claim to expire")
