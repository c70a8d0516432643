"""Redis is optional at run time (issue 17, item 3), and /readyz tells the truth (item 5).

ftdash runs as a real gunicorn process against a redis-server of the test's own on a free port
(tests/support/redis_server.py), which the test stops and starts, or cuts off behind a TCP relay
that then swallows every byte (a Redis behind a broken network: connections hang, its data
stays). A real server rather than the test client: the outage has to be met by worker processes
that already hold connections to Redis, with the settings production uses. The shared Redis is
never touched. The cache and /readyz in this process: tests/test_redis_outage.py.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from jobs.redis_cache import RETRY_SECONDS
from tests.support.fake_tokenfactory import FakeTokenFactory
from tests.support.redis_server import CuttableRelay, RedisServer
from tests.support.server_process import BIN, ROOT, free_port, ftdash_server, start_worker, stop_process
from tests.support.waiting import wait_for
from tests.support.web_forms import ADMIN_PASSWORD, create_admin, post_form, save_token, signed_in_session, track_job

SECRET = "sk-redis-outage-0123456789-wxyz"
SESSION_KEYS = "ftdash:1:django.contrib.sessions.cached_db*"
OUTAGE_WARNING = "WARNING jobs.redis_cache Redis cannot be reached"
POLL = {"HX-Request": "true"}


@pytest.fixture
def redis_server(tmp_path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    yield server
    if server.process is not None:
        server.stop()


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
        return track_job(self.session, self.server, remote["id"], self.token_pk), remote["id"]

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


def test_pages_polls_and_forms_keep_working_while_redis_is_stopped_and_use_it_again_once_back(
    tmp_path, redis_server, api
):
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
        wait_for(
            lambda: site.get("/").status_code == 200 and redis_server.keys(SESSION_KEYS),
            what="sessions cached in Redis again, without a restart",
        )
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
            wait_for(
                lambda: site.get("/").status_code == 200 and redis_server.keys(SESSION_KEYS),
                what="sessions cached in Redis once it runs",
            )
            site.everything_works("with Redis")
            assert server.log.count(OUTAGE_WARNING) == 1
            assert "INFO jobs.redis_cache Redis answers again" in server.log
            wait_for(
                lambda: "Redis answers again" in (tmp_path / "worker.log").read_text(),
                what="the worker to use Redis again",
            )
        finally:
            stop_process(worker)
        worker_log = (tmp_path / "worker.log").read_text()
        assert worker_log.count(OUTAGE_WARNING) == 1 and "Traceback" not in worker_log, worker_log


def test_a_redis_that_stops_answering_holds_no_request_and_brings_no_signed_out_session_back(
    tmp_path, redis_server, api
):
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
                response = requests.get(
                    server.url + "/tokens/", cookies={"ftdash_session": session_id}, allow_redirects=False, timeout=10
                )
                return response.status_code == 302 and "/accounts/login/" in response.headers["Location"]

            # A process that saw Redis come back may read it before the one that signed out
            # has deleted that session from it: for a retry window at most, not until it expires.
            # On every worker process: ten answers in a row, within that bound (a loaded machine
            # can stretch one process's retry window past the first signed-out answer).
            wait_for(
                lambda: all(signed_out() for _ in range(10)),
                timeout=15,
                what="the signed-out session to be signed out on every worker",
            )
    finally:
        relay.close()


def test_while_redis_is_down_a_due_job_is_fetched_once_per_process_however_many_polls_ask(tmp_path, redis_server, api):
    # One process serving eight requests at once (gunicorn threads, as the worker's pool does):
    # without Redis their refresh locks are this process's own, and still exclude each other.
    with ftdash_server(
        tmp_path / "data",
        api_url=api.url,
        workers=1,
        REDIS_URL=redis_server.url,
        GUNICORN_CMD_ARGS="--threads 8",
        FTDASH_REFRESH_SECONDS="600",
    ) as server:
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
        **{
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("FTDASH_", "DJANGO_")) and k not in ("DATABASE_URL", "REDIS_URL")
        },
        "DJANGO_SETTINGS_MODULE": "ftdash.settings",
        "FTDASH_DATA_DIR": str(tmp_path / "data"),
        "FTDASH_DEBUG": "true",
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:{free_port()}/ftdash",
    }
    with open(tmp_path / "server.log", "w") as log:
        process = subprocess.Popen(
            [str(BIN / "gunicorn"), "ftdash.wsgi:application", "--workers", "1", "--bind", f"127.0.0.1:{port}"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
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
