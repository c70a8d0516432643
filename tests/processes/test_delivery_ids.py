"""Deliveries that a dying worker neither loses nor repeats silently, with real `manage.py
poll_jobs` processes killed or stopped while a receiver holds its answer, so that the worker has
sent the notification but not yet recorded it: one retry with the same `X-Ftdash-Delivery` id
once the claim runs out (`FTDASH_DELIVERY_LEASE_SECONDS`), and only the current claim recording
an outcome. Delivery ids in this process: tests/test_delivery_ids.py.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import uuid

import pytest
import requests

from tests.support.fake_tokenfactory import FakeTokenFactory
from tests.support.server_process import ftdash_server, start_worker
from tests.support.waiting import wait_for
from tests.support.web_forms import add_channel, first_run, save_token, track_job
from tests.support.webhooks import Receiver

HEADER = "X-Ftdash-Delivery"
SECRET = "sk-deliveries-0123456789-SECRET-dl42"
PASSWORD = "a-long-Passphrase-for-deliveries"
LEASE_SECONDS = 2


class Site:
    """A server, a fake API and a webhook receiver, set up through the web UI."""

    def __init__(self, api, server, session, receiver, tmp, token_pk):
        self.api, self.server, self.session, self.receiver, self.tmp = api, server, session, receiver, tmp
        self.token_pk = token_pk
        self.workers = []

    def start_worker(self):
        log = self.tmp / f"worker-{len(self.workers) + 1}.log"
        worker = start_worker(self.server, log)
        self.workers.append((worker, log))
        return worker

    def log_of(self, worker) -> str:
        return next(log for started, log in self.workers if started is worker).read_text()

    def kill_workers(self) -> None:
        for worker, _ in self.workers:
            if worker.poll() is None:
                os.kill(worker.pid, signal.SIGCONT)  # in case a test left it stopped
                worker.kill()
                worker.wait(timeout=10)

    def finish_a_job(self, suffix: str) -> str:
        """Track a running job through the dashboard's form; it then succeeds upstream."""
        remote = self.api.add_job(total_steps=100, trained_steps=50, suffix=suffix)
        track_job(self.session, self.server, remote["id"], self.token_pk)
        self.api.update_job(remote["id"], status="succeeded", trained_steps=100)
        return remote["id"]

    def posts_for(self, job_id: str) -> list[dict]:
        return [r for r in list(self.receiver.requests) if json.loads(r["body"]).get("job_id") == job_id]

    def deliveries_for(self, job_id: str) -> list[tuple[uuid.UUID, str, int]]:
        rows = self.server.sql(
            "SELECT d.delivery_id, d.state, d.attempts FROM jobs_delivery d"
            " JOIN jobs_jobevent e ON d.event_id = e.id JOIN jobs_trackedjob j ON e.job_id = j.id"
            " WHERE j.job_id = ?",
            (job_id,),
        )
        return [(uuid.UUID(str(delivery_id)), state, attempts) for delivery_id, state, attempts in rows]

    def heartbeat(self, worker) -> str | None:
        rows = self.server.sql(
            "SELECT last_seen FROM jobs_workerheartbeat WHERE name = ?", (f"{socket.gethostname()}:{worker.pid}",)
        )
        return str(rows[0][0]) if rows else None

    def notifications_page(self) -> str:
        response = self.session.get(self.server.url + "/notifications/", timeout=10)
        assert response.status_code == 200
        return response.text


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("deliveries")
    with (
        FakeTokenFactory() as api,
        Receiver(hold=True) as receiver,
        ftdash_server(
            tmp / "data",
            api_url=api.url,
            workers=1,
            FTDASH_ALLOW_PRIVATE_WEBHOOKS="true",  # the receiver is on loopback
            FTDASH_DELIVERY_LEASE_SECONDS=str(LEASE_SECONDS),
            FTDASH_WORKER_INTERVAL_SECONDS="0.2",
            FTDASH_API_RETRIES="0",
            FTDASH_WORKER_LIST_READS="false",
        ) as server,
    ):
        api.add_token(SECRET)
        session = requests.Session()
        first_run(session, server, "admin", PASSWORD)
        token_pk = save_token(session, server, SECRET)
        add_channel(session, server, {"kind": "webhook", "url": receiver.url, "events": ["succeeded"]})
        site = Site(api, server, session, receiver, tmp, token_pk)
        try:
            yield site
        finally:
            receiver.answering.set()
            site.kill_workers()


@pytest.fixture
def held(site):
    """No worker left from an earlier test; the receiver records each notification at once and
    holds its answer until told."""
    site.kill_workers()
    site.receiver.status = 200
    site.receiver.answering.clear()
    yield site.receiver
    site.receiver.answering.set()


def test_a_worker_killed_before_recording_the_answer_is_followed_by_one_retry_with_the_same_id(site, held):
    job_id = site.finish_a_job("killed-worker")
    worker = site.start_worker()
    wait_for(lambda: site.posts_for(job_id), timeout=60, what="the worker to send the notification")
    # Sent, and the receiver got it; its answer is held, so nothing is recorded yet.
    worker.kill()
    worker.wait(timeout=10)
    [(delivery_id, state, attempts)] = site.deliveries_for(job_id)
    assert (state, attempts) == ("sending", 1)  # the attempt counts, though its outcome was lost

    held.answering.set()
    retry = site.start_worker()
    wait_for(
        lambda: site.deliveries_for(job_id)[0][1] == "sent",
        timeout=60,
        what="a new worker to send it again once the lease ran out",
    )
    seen = site.heartbeat(retry)
    wait_for(lambda: site.heartbeat(retry) != seen, what="another round of the new worker")

    first, second = site.posts_for(job_id)
    assert first["headers"][HEADER] == second["headers"][HEADER] == str(delivery_id)
    assert json.loads(first["body"])["delivery_id"] == json.loads(second["body"])["delivery_id"] == str(delivery_id)
    assert json.loads(first["body"]) == json.loads(second["body"])
    assert site.deliveries_for(job_id) == [(delivery_id, "sent", 2)]
    page = site.notifications_page()
    assert 'badge-succeeded">sent</span> after 2 attempts' in page
    assert f"Delivery ID <code>{delivery_id}</code>" in page


def test_a_worker_that_comes_back_after_its_lease_ran_out_does_not_overwrite_the_retry(site, held):
    """Stopped (SIGSTOP) with its notification sent; another worker retries and records it sent;
    the first then reads its (failed) answer and must not turn the delivery back to pending."""
    job_id = site.finish_a_job("stopped-worker")
    held.status = 500
    stale = site.start_worker()
    wait_for(lambda: site.posts_for(job_id), timeout=60, what="the first worker to send the notification")
    os.kill(stale.pid, signal.SIGSTOP)
    try:
        held.answering.set()  # the 500 waits in the stopped worker's socket
        wait_for(lambda: "answered" in site.posts_for(job_id)[0], what="the receiver to answer 500")
        held.status = 200
        site.start_worker()
        wait_for(
            lambda: site.deliveries_for(job_id)[0][1] == "sent",
            timeout=60,
            what="another worker to retry once the lease ran out",
        )
        resumed_after = site.heartbeat(stale)
    finally:
        os.kill(stale.pid, signal.SIGCONT)
    # Its next round starts only once this one has dealt with the 500 it read.
    wait_for(lambda: site.heartbeat(stale) != resumed_after, timeout=60, what="the first worker's next round")

    [(delivery_id, state, attempts)] = site.deliveries_for(job_id)
    assert (state, attempts) == ("sent", 2)
    assert [post["headers"][HEADER] for post in site.posts_for(job_id)] == [str(delivery_id)] * 2
    assert 'badge-succeeded">sent</span> after 2 attempts' in site.notifications_page()
    assert "could not be recorded after attempt 1: another worker took it over" in site.log_of(stale)
