"""Redis is optional at run time (issue 17, item 3), and /readyz tells the truth (item 5).

ftdash runs as a real gunicorn process (tests.server_process) against a redis-server of the
test's own on a free port, which the test stops and starts, or cuts off behind a TCP relay that
then swallows every byte (a Redis behind a broken network: connections hang, its data stays).
A real server rather than the test client: the outage has to be met by worker processes that
already hold connections to Redis, with the settings production uses. The shared Redis is
never touched.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests
from django.utils import timezone

from jobs.models import WorkerHeartbeat
from jobs.redis_cache import RETRY_SECONDS
from tests.fake_tokenfactory import FakeTokenFactory
from tests.server_process import (
    ADMIN_PASSWORD,
    BIN,
    ROOT,
    create_admin,
    free_port,
    ftdash_server,
    post_form,
    save_token,
    signed_in_session,
    start_worker,
    stop_process,
    wait_for,
)

SECRET = "sk-redis-outage-0123456789-wxyz"
SESSION_KEYS = "ftdash:1:django.contrib.sessions.cached_db*"
OUTAGE_WARNING = "WARNING jobs.redis_cache Redis cannot be reached"
POLL = {"HX-Request": "true"}


class RedisServer:
    """A redis-server of the test's own, without persistence: a restart starts it empty."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for(self.answers, what="redis-server to answer")

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None

    def answers(self) -> bool:
        try:
            return redis.Redis(port=self.port, socket_timeout=2).ping()
        except redis.RedisError:
            return False

    def keys(self, pattern: str = "ftdash:*") -> list[bytes]:
        return redis.Redis(port=self.port, socket_timeout=2).keys(pattern)


@pytest.fixture
def redis_server(tmp_path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    yield server
    if server.process is not None:
        server.stop()


class _Relayed:
    def __init__(self, client: socket.socket, upstream: socket.socket | None) -> None:
        self.client, self.upstream = client, upstream


class CuttableRelay:
    """A TCP relay to a port that can be cut: from then on it accepts connections and reads
    what is sent, and forwards and answers nothing, as a network that drops packets does.
    Connections made after `restore` are relayed again."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.cut_off = False
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def cut(self) -> None:
        self.cut_off = True

    def restore(self) -> None:
        self.cut_off = False

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = None if self.cut_off else socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()  # nothing behind the relay: refused, as a direct connection would be
                continue
            relayed = _Relayed(client, upstream)
            threading.Thread(target=self._to_upstream, args=(relayed,), daemon=True).start()
            if upstream is not None:
                threading.Thread(target=self._to_client, args=(relayed,), daemon=True).start()

    def _to_upstream(self, relayed: _Relayed) -> None:
        with contextlib.suppress(OSError):
            while data := relayed.client.recv(65536):
                if self.cut_off and relayed.upstream is not None:
                    relayed.upstream.close()  # what was on its way is lost; its answers never come
                    relayed.upstream = None
                if relayed.upstream is not None:
                    relayed.upstream.sendall(data)
        relayed.client.close()
        if relayed.upstream is not None:
            relayed.upstream.close()

    def _to_client(self, relayed: _Relayed) -> None:
        upstream = relayed.upstream
        with contextlib.suppress(OSError):
            while data := upstream.recv(65536):
                relayed.client.sendall(data)

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def api() -> Iterator[FakeTokenFactory]:
    with FakeTokenFactory() as fake:
        fake.add_token(SECRET)
        yield fake


class Site:
    """One signed-in person on a real ftdash server, with a token saved and a job tracked."""

    def __init__(self, server, api: FakeTokenFactory) -> None:
        self.server, self.api = server, api
        create_admin(server)
        self.session = signed_in_session(server, "admin", ADMIN_PASSWORD)
        self.token_pk = save_token(self.session, server, SECRET)
        self.job_pk, self.job_id = self.track()

    def track(self) -> tuple[int, str]:
        """Track a new running job through the dashboard's form; (its pk, its job ID)."""
        remote = self.api.add_job(status="running")
        response = post_form(self.session, self.server, "/jobs/track/", {"job_id": remote["id"], "token": self.token_pk})
        assert response.status_code == 200 and f"Now tracking {remote['id']}" in response.text
        return int(re.search(rf'href="/jobs/(\d+)/">{remote["id"]}<', response.text).group(1)), remote["id"]

    def get(self, path: str, **headers: str) -> requests.Response:
        return self.session.get(self.server.url + path, headers=headers, timeout=10, allow_redirects=False)

    def everything_works(self, label: str) -> None:
        """The dashboard, the tokens page, a poll, a form and a new sign-in, as a person sees them."""
        dashboard = self.get("/")
        assert dashboard.status_code == 200 and "Track a job" in dashboard.text
        assert self.get("/tokens/").status_code == 200
        poll = self.get(f"/live/cards/?v={self.job_pk}.stale", **POLL)
        assert poll.status_code == 200 and f'href="/jobs/{self.job_pk}/"' in poll.text  # rendered again
        saved = post_form(self.session, self.server, f"/jobs/{self.job_pk}/label/", {"label": label})
        assert saved.status_code == 200 and "Label saved." in saved.text and label in saved.text
        self.track()
        assert "Track a job" in signed_in_session(self.server, "admin", ADMIN_PASSWORD).get(self.server.url + "/").text

    def readiness(self) -> dict:
        response = self.get("/readyz")
        assert response.status_code == 200
        return response.json()


def test_pages_polls_and_forms_keep_working_while_redis_is_stopped_and_use_it_again_once_back(tmp_path, redis_server, api):
    redis_server.start()
    with ftdash_server(tmp_path / "data", api_url=api.url, REDIS_URL=redis_server.url) as server:
        site = Site(server, api)
        site.everything_works("before")
        assert redis_server.keys(SESSION_KEYS), "sessions are cached in Redis while it runs"
        assert site.readiness()["cache"] == "ok"

        redis_server.stop()
        site.everything_works("while Redis is down")
        assert site.readiness() == {"database": "ok", "cache": "degraded", "worker_seen_seconds_ago": None}

        redis_server.start()  # empty: it kept nothing
        wait_for(lambda: site.readiness()["cache"] == "ok", what="ftdash to see Redis again")
        wait_for(lambda: site.get("/").status_code == 200 and redis_server.keys(SESSION_KEYS),
                 what="sessions cached in Redis again, without a restart")
        site.everything_works("after")
        assert "Traceback" not in server.log


def test_redis_down_at_start_is_no_error_and_its_warning_is_logged_once_not_per_request(tmp_path, redis_server, api):
    with ftdash_server(tmp_path / "data", api_url=api.url, workers=1, REDIS_URL=redis_server.url) as server:
        site = Site(server, api)
        worker = start_worker(server, tmp_path / "worker.log", FTDASH_WORKER_LIST_READS="false")  # one GET per job
        try:
            # Requests across several of the backend's retry windows: each window asks Redis again.
            until, rounds = time.monotonic() + 2.5 * RETRY_SECONDS, 0
            while rounds < 2 or time.monotonic() < until:
                site.everything_works(f"round {rounds}")
                rounds += 1
            assert server.log.count(OUTAGE_WARNING) == 1, server.log
            wait_for(lambda: "Background worker active" in site.get("/").text, what="the worker's heartbeat")
            refreshed = len(api.calls_for(site.job_id))
            wait_for(lambda: len(api.calls_for(site.job_id)) > refreshed, what="the worker to refresh the job")

            redis_server.start()
            wait_for(lambda: site.get("/").status_code == 200 and redis_server.keys(SESSION_KEYS),
                     what="sessions cached in Redis once it runs")
            site.everything_works("with Redis")
            assert server.log.count(OUTAGE_WARNING) == 1
            assert "INFO jobs.redis_cache Redis answers again" in server.log
            wait_for(lambda: "Redis answers again" in (tmp_path / "worker.log").read_text(), what="the worker to use Redis again")
        finally:
            stop_process(worker)
        worker_log = (tmp_path / "worker.log").read_text()
        assert worker_log.count(OUTAGE_WARNING) == 1 and "Traceback" not in worker_log, worker_log


def test_a_redis_that_stops_answering_holds_no_request_and_brings_no_signed_out_session_back(tmp_path, redis_server, api):
    redis_server.start()
    relay = CuttableRelay(redis_server.port)
    try:
        with ftdash_server(tmp_path / "data", api_url=api.url, REDIS_URL=f"redis://127.0.0.1:{relay.port}/0") as server:
            site = Site(server, api)
            session_id = site.session.cookies["ftdash_session"]
            cached_session = SESSION_KEYS.replace("*", session_id)
            assert redis_server.keys(cached_session)

            relay.cut()
            started = time.monotonic()
            site.everything_works("Redis cut off")
            # Dozens of cache calls: each would wait for Redis if a short timeout did not end it.
            assert time.monotonic() - started < 15
            assert post_form(site.session, server, "/accounts/logout/", {}).status_code == 200
            assert redis_server.keys(cached_session), "Redis still holds the session it cached"

            relay.restore()

            def signed_out() -> bool:
                # The old cookie, sent again whatever the answers say (a copy of it elsewhere).
                response = requests.get(server.url + "/tokens/", cookies={"ftdash_session": session_id},
                                        allow_redirects=False, timeout=10)
                return response.status_code == 302 and "/accounts/login/" in response.headers["Location"]

            # A process that saw Redis come back may read it before the one that signed out
            # has deleted that session from it: for a retry window at most, not until it expires.
            wait_for(signed_out, timeout=15, what="the signed-out session to be signed out")
            for _ in range(10):  # and on every worker process
                assert signed_out()
    finally:
        relay.close()


def test_while_redis_is_down_a_due_job_is_fetched_once_per_process_however_many_polls_ask(tmp_path, redis_server, api):
    # One process serving eight requests at once (gunicorn threads, as the worker's pool does):
    # without Redis their refresh locks are this process's own, and still exclude each other.
    with ftdash_server(tmp_path / "data", api_url=api.url, workers=1, REDIS_URL=redis_server.url,
                       GUNICORN_CMD_ARGS="--threads 8", FTDASH_REFRESH_SECONDS="600") as server:
        site = Site(server, api)
        fetched = len(api.calls_for(site.job_id))
        release = api.hold_next(job_id=site.job_id)
        server.sql("UPDATE jobs_trackedjob SET checked_at = ? WHERE id = ?", ("2000-01-01 00:00:00+00:00", site.job_pk))

        answers: list[int] = []

        def poll() -> None:
            answers.append(site.get(f"/live/cards/?v={site.job_pk}.stale", **POLL).status_code)

        polls = [threading.Thread(target=poll) for _ in range(8)]
        for thread in polls:
            thread.start()
        wait_for(lambda: len(api.calls_for(site.job_id)) > fetched, what="the first poll to ask the API")
        wait_for(lambda: len(answers) >= 7, what="the other polls to answer without waiting for it")
        release.set()
        for thread in polls:
            thread.join(timeout=30)
        assert answers == [200] * 8
        assert len(api.calls_for(site.job_id)) == fetched + 1


@contextlib.contextmanager
def gunicorn_without_database(tmp_path: Path) -> Iterator[str]:
    """ftdash served with a DATABASE_URL whose port nothing listens on; yields its URL."""
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items()
           if not k.startswith(("FTDASH_", "DJANGO_")) and k not in ("DATABASE_URL", "REDIS_URL")},
        "DJANGO_SETTINGS_MODULE": "ftdash.settings",
        "FTDASH_DATA_DIR": str(tmp_path / "data"),
        "FTDASH_DEBUG": "true",
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:{free_port()}/ftdash",
    }
    with open(tmp_path / "server.log", "w") as log:
        process = subprocess.Popen(
            [str(BIN / "gunicorn"), "ftdash.wsgi:application", "--workers", "1", "--bind", f"127.0.0.1:{port}"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        try:
            return requests.get(url + "/healthz", timeout=5).status_code == 503
        except requests.RequestException:
            assert process.poll() is None, (tmp_path / "server.log").read_text()
            return False

    try:
        wait_for(answers, timeout=60, what="gunicorn to answer")
        yield url
    finally:
        stop_process(process)


def test_readyz_answers_503_json_quickly_when_the_database_cannot_be_reached(tmp_path):
    with gunicorn_without_database(tmp_path) as url:
        started = time.monotonic()
        response = requests.get(url + "/readyz", timeout=10)
        assert time.monotonic() - started < 5
    assert response.status_code == 503
    assert response.json() == {"database": "unavailable", "cache": "degraded", "worker_seen_seconds_ago": None}
    assert "no-store" in response.headers["Cache-Control"]


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
