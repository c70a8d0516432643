"""PostgreSQL restarts under a running ftdash (issue 17, item 4), with real processes only.

ftdash runs under gunicorn (one worker, so every request meets the same persistent database
connection) against a PostgreSQL cluster this module creates on its own port; the tests stop
and start that cluster, never the shared one. While it is down, pages and polls answer 503
with a page that needs no database, the log says so once, and the worker waits (or stops
cleanly when told to); once it is back, the very first request works and the worker delivers
what was queued, once. The same 503 answers SQLite's "unable to open database file" (the data
dir gone), and a sign-in by an auth proxy's header, which a middleware reads before any view.
Which errors count as an outage: tests/test_database_outage.py.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import time

import pytest
import requests

from tests.support.fake_tokenfactory import ALIVE, FakeTokenFactory
from tests.support.postgres_cluster import postgres_cluster
from tests.support.server_process import ftdash_server, start_worker
from tests.support.waiting import wait_for
from tests.support.web_forms import (
    ADMIN_PASSWORD,
    add_channel,
    create_admin,
    post_form,
    save_token,
    signed_in_session,
    track_job,
)
from tests.support.webhooks import Receiver

SECRET = "sk-outage-0123456789-SECRET-pg15"
SENTENCE = "ftdash cannot reach its database right now; this page will work again once it is back"
OUTAGE_LINE = "ftdash cannot reach its database"


class Site:
    def __init__(self, cluster, api, server, session, receiver, token_pk):
        self.cluster, self.api, self.server = cluster, api, server
        self.session, self.receiver, self.token_pk = session, receiver, token_pk

    def get(self, path: str, **headers) -> requests.Response:
        return self.session.get(self.server.url + path, headers=headers, timeout=30)

    def track(self, **fields) -> tuple[dict, int]:
        remote = self.api.add_job(**fields)
        return remote, track_job(self.session, self.server, remote["id"], self.token_pk)

    def poll(self, path: str = "/live/cards/", query: str = "") -> requests.Response:
        return self.get(f"{path}?{query}", **{"HX-Request": "true", "HX-Current-URL": self.server.url + "/"})

    def posts_for(self, job_id: str) -> list[dict]:
        return [body for body in self.receiver.json() if body.get("job_id") == job_id]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("outage")
    with (
        postgres_cluster() as cluster,
        FakeTokenFactory() as api,
        Receiver() as receiver,
        ftdash_server(
            tmp / "data",
            api_url=api.url,
            workers=1,
            DATABASE_URL=cluster.create_database("ftdash"),
            FTDASH_ALLOW_PRIVATE_WEBHOOKS="true",  # the receiver is on loopback
            FTDASH_WORKER_INTERVAL_SECONDS="0.2",
            FTDASH_API_RETRIES="0",
            FTDASH_WORKER_LIST_READS="false",
        ) as server,
    ):
        api.add_token(SECRET)
        create_admin(server)
        session = signed_in_session(server, "admin", ADMIN_PASSWORD)
        token_pk = save_token(session, server, SECRET)
        add_channel(session, server, {"kind": "webhook", "url": receiver.url, "events": ["succeeded"]})
        yield Site(cluster, api, server, session, receiver, token_pk)


@pytest.fixture
def database_restarts(site):
    """Makes sure the cluster runs again after the test, whatever the test did."""
    yield
    with contextlib.suppress(subprocess.CalledProcessError):  # it was running already
        site.cluster.start()


def _assert_outage_page(response: requests.Response) -> None:
    assert response.status_code == 503, (response.status_code, response.text[-2000:])
    assert SENTENCE in response.text
    assert response.headers["Retry-After"] == "10"
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    page = response.text
    assert '<html lang="en">' in page and "<title>Database unavailable · ftdash</title>" in page
    assert "<h1>The database is not answering</h1>" in page
    assert "Traceback" not in page and "OperationalError" not in page


def test_during_an_outage_every_page_and_poll_answers_503_and_the_first_request_after_works(site, database_restarts):
    _, pk = site.track(suffix="outage-page", **ALIVE)
    assert site.get("/").status_code == 200
    log_before = len(site.server.log)

    site.cluster.stop()
    _assert_outage_page(site.get("/"))
    for path in ("/tokens/", f"/jobs/{pk}/", "/notifications/"):
        _assert_outage_page(site.get(path))
    _assert_outage_page(requests.get(site.server.url + "/accounts/login/", timeout=30))  # signed out
    _assert_outage_page(
        post_form(site.session, site.server, "/jobs/track/", {"job_id": "ftjob-" + "0" * 32, "token": site.token_pk})
    )
    for _ in range(10):  # an open tab keeps polling
        assert site.poll(query=f"v={pk}.x").status_code == 503
        assert site.poll(f"/jobs/{pk}/live/", f"v={pk}.x").status_code == 503

    log = site.server.log[log_before:]
    assert log.count(OUTAGE_LINE) == 1, log
    assert "Traceback" not in log and "Internal Server Error" not in log, log

    site.cluster.start()
    first = site.get("/")  # the very first request after the restart
    assert first.status_code == 200 and "outage-page" in first.text
    assert site.poll(query=f"v={pk}.x").status_code == 200
    log = site.server.log[log_before:]
    assert "the database answers again" in log and log.count(OUTAGE_LINE) == 1, log


def test_a_restart_between_two_requests_costs_no_request(site, database_restarts):
    # The gunicorn worker keeps its connection (conn_max_age=60): that connection dies with
    # the restart, and CONN_HEALTH_CHECKS must notice before the request uses it.
    assert site.get("/").status_code == 200
    site.cluster.stop()
    site.cluster.start()
    assert site.get("/").status_code == 200
    assert site.get("/tokens/").status_code == 200


@contextlib.contextmanager
def worker_process(site, log_path):
    worker = start_worker(site.server, log_path)
    try:
        yield worker
    finally:
        worker.terminate()
        worker.wait(timeout=60)


def _quiet_through_the_outage(worker, log_path) -> None:
    """The worker noticed the outage, and goes on through a dozen more rounds (0.2 s apart)
    with nothing more to say: one line, no traceback, still running."""
    wait_for(lambda: OUTAGE_LINE in log_path.read_text(), what="the worker to notice the outage")
    time.sleep(3)  # the window of rounds in which nothing more may be logged
    log = log_path.read_text()
    assert worker.poll() is None, log
    assert log.count(OUTAGE_LINE) == 1 and "Traceback" not in log, log


def _resumed(site, worker, log_path, watched: dict) -> None:
    seen = len(site.api.calls_for(watched["id"]))
    wait_for(lambda: len(site.api.calls_for(watched["id"])) >= seen + 3, what="the worker refreshing again")
    log = log_path.read_text()
    assert worker.poll() is None and "the database answers again" in log and "Traceback" not in log, log
    assert "Background worker active" in site.get("/").text


def test_a_running_worker_survives_the_restart_and_sends_nothing_twice(site, tmp_path, database_restarts):
    log_path = tmp_path / "worker.log"
    with worker_process(site, log_path) as worker:
        wait_for(lambda: "Background worker active" in site.get("/").text, what="the worker's heartbeat")
        done, _ = site.track(suffix="outage-sending", **ALIVE)
        watched, _ = site.track(suffix="outage-watched", **ALIVE)
        wait_for(lambda: len(site.api.calls_for(done["id"])) >= 2, what="the worker refreshing the job")

        # The receiver holds the webhook while the database goes away: it is delivered, but
        # the worker cannot record that. Within its lease it must not go out again.
        site.receiver.delay = 5
        try:
            site.api.advance(done["id"], ALIVE["total_steps"])
            wait_for(lambda: site.posts_for(done["id"]), what="the webhook to be sent")
            site.cluster.stop()
            _quiet_through_the_outage(worker, log_path)
        finally:
            site.receiver.delay = 0
        site.cluster.start()
        _resumed(site, worker, log_path, watched)
        assert len(site.posts_for(done["id"])) == 1


def test_a_notification_queued_before_the_outage_goes_out_once_after_it(site, tmp_path, database_restarts):
    done, done_pk = site.track(suffix="outage-queued", **ALIVE)
    watched, _ = site.track(suffix="outage-queued-watched", **ALIVE)
    # No worker yet: the job's page sees it finish, and queues its webhook.
    site.api.advance(done["id"], ALIVE["total_steps"])
    queued = (
        "SELECT count(*) FROM jobs_delivery d JOIN jobs_jobevent e ON e.id = d.event_id "
        "JOIN jobs_trackedjob j ON j.id = e.job_id WHERE j.job_id = ? AND d.state = 'pending'"
    )

    def webhook_queued() -> bool:
        assert site.get(f"/jobs/{done_pk}/").status_code == 200  # refreshes the job
        return site.server.sql(queued, (done["id"],)) == [(1,)]

    wait_for(webhook_queued, what="the finished job's webhook to be queued")
    site.cluster.stop()
    log_path = tmp_path / "worker.log"
    with worker_process(site, log_path) as worker:  # started while the database is down
        _quiet_through_the_outage(worker, log_path)
        assert site.posts_for(done["id"]) == []
        site.cluster.start()
        [body] = wait_for(lambda: site.posts_for(done["id"]), what="the queued webhook")
        assert body["event"] == "succeeded" and body["suffix"] == "outage-queued"
        _resumed(site, worker, log_path, watched)
        assert len(site.posts_for(done["id"])) == 1  # several rounds later: not sent again


def test_a_worker_told_to_stop_during_the_outage_stops_cleanly(site, tmp_path, database_restarts):
    log_path = tmp_path / "worker.log"
    worker = start_worker(site.server, log_path)
    try:
        wait_for(lambda: "Background worker active" in site.get("/").text, what="the worker's heartbeat")
        site.cluster.stop()
        wait_for(lambda: OUTAGE_LINE in log_path.read_text(), what="the worker to notice the outage")
        worker.terminate()  # it cannot remove its check-in; that ages out by itself
        assert worker.wait(timeout=60) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(timeout=10)
    log = log_path.read_text()
    assert re.search(r"worker \S+ stopped", log) and "Traceback" not in log, log


def test_while_the_sqlite_file_cannot_be_opened_pages_answer_503_until_it_is_back(tmp_path):
    # SQLite's "unable to open database file": the data dir is gone (an unmounted volume).
    with FakeTokenFactory() as api, ftdash_server(tmp_path / "data", api_url=api.url, DATABASE_URL="") as server:
        create_admin(server)
        session = signed_in_session(server, "admin", ADMIN_PASSWORD)
        assert session.get(server.url + "/", timeout=30).status_code == 200
        log_before = len(server.log)
        server.data_dir.rename(tmp_path / "unmounted")
        try:
            _assert_outage_page(session.get(server.url + "/", timeout=30))
            for _ in range(5):
                response = session.get(server.url + "/live/cards/", headers={"HX-Request": "true"}, timeout=30)
                assert response.status_code == 503
        finally:
            (tmp_path / "unmounted").rename(server.data_dir)
        assert session.get(server.url + "/", timeout=30).status_code == 200
        log = server.log[log_before:]
        assert log.count(OUTAGE_LINE) <= 2 and "Traceback" not in log, log  # once per gunicorn worker


def test_single_sign_on_answers_503_too_while_the_database_is_gone(tmp_path):
    # The auth proxy's header is read by a middleware, before any view: that sign-in fails there.
    with (
        FakeTokenFactory() as api,
        ftdash_server(
            tmp_path / "data",
            api_url=api.url,
            DATABASE_URL="",
            FTDASH_REMOTE_USER_HEADER="X-Forwarded-User",
            FTDASH_BEHIND_PROXY="true",
        ) as server,
    ):
        proxy = {"X-Forwarded-User": "ada"}
        assert requests.get(server.url + "/", headers=proxy, timeout=30).status_code == 200
        server.data_dir.rename(tmp_path / "unmounted")
        try:
            _assert_outage_page(requests.get(server.url + "/", headers=proxy, timeout=30))
        finally:
            (tmp_path / "unmounted").rename(server.data_dir)
        assert requests.get(server.url + "/", headers=proxy, timeout=30).status_code == 200
        assert "Traceback" not in server.log
