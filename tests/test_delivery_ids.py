"""Deliveries that receivers can tell apart, and that a dying worker neither loses nor repeats
silently: a stable `X-Ftdash-Delivery` id on every attempt, attempts counted when claimed, a
claim that runs out (`FTDASH_DELIVERY_LEASE_SECONDS`) retried, and only the current claim
recording an outcome.

The first tests run in this process against real HTTP receivers; the last ones run real
`manage.py poll_jobs` processes, killed or stopped while a receiver holds its answer, so that
the worker has sent the notification but not yet recorded it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import threading
import uuid

import pytest
import requests
from django.core import mail
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.operations import AddField
from django.utils import timezone

from jobs import notifications, services
from jobs.models import Delivery, TrackedJob
from jobs.sync import refresh
from tests.conftest import track_remote_job
from tests.fake_tokenfactory import FakeTokenFactory
from tests.server_process import ftdash_server, post_form, start_worker, wait_for
from tests.test_notifications import Receiver

HEADER = "X-Ftdash-Delivery"
ERROR = {"code": "invalid_training_file", "message": "Line 17 has no messages list", "param": "training_file"}


@pytest.fixture(autouse=True)
def quick_settings(settings):
    settings.FTDASH_API_RETRIES = 0
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.FTDASH_ALLOW_PRIVATE_WEBHOOKS = True  # the receivers are on loopback


def add_channel(user, kind: str, target: str):
    return services.channel_add(workspace=user.personal_workspace, actor=user, kind=kind, target=target,
                                events=["succeeded", "failed"], personal=False)


def fail_a_job(fake_api, user, token) -> TrackedJob:
    job = track_remote_job(fake_api, user, token, total_steps=100, trained_steps=50)
    fake_api.update_job(job.job_id, status="failed", error=ERROR)
    return refresh.refresh_now(TrackedJob.objects.get(pk=job.pk))


# --- in this process --------------------------------------------------------------------------


def test_a_retried_delivery_carries_the_same_id_and_every_delivery_its_own(
        alice, alice_token, alice_client, fake_api):
    with Receiver(status=500) as hook, Receiver() as slack:
        webhook = add_channel(alice, "webhook", hook.url)
        slack_channel = add_channel(alice, "slack", slack.url)
        email_channel = add_channel(alice, "email", "alerts@example.com")
        job = fail_a_job(fake_api, alice, alice_token)
        assert notifications.deliver_due() == 3
        hook.status = 200
        Delivery.objects.filter(state="pending").update(next_attempt_at=timezone.now())
        assert notifications.deliver_due() == 1
        other_job = fail_a_job(fake_api, alice, alice_token)
        assert notifications.deliver_due() == 3
        first, second, third = hook.requests

    delivery = Delivery.objects.get(channel=webhook, event__job=job)
    delivery_id = str(delivery.delivery_id)
    assert (delivery.state, delivery.attempts) == ("sent", 2)
    # The failed attempt and the one that passed: one id, in the header and in the body.
    assert first["headers"][HEADER] == second["headers"][HEADER] == delivery_id
    assert json.loads(first["body"]) == json.loads(second["body"])
    assert json.loads(first["body"])["delivery_id"] == delivery_id
    # Another job's event to the same receiver is another delivery, with another id.
    other = Delivery.objects.get(channel=webhook, event__job=other_job)
    assert third["headers"][HEADER] == json.loads(third["body"])["delivery_id"] == str(other.delivery_id)
    assert str(other.delivery_id) != delivery_id

    # Slack gets the header, and its body stays the one field Slack documents for a plain message.
    slack_delivery = Delivery.objects.get(channel=slack_channel, event__job=job)
    slack_request = slack.requests[0]
    assert slack_request["headers"][HEADER] == str(slack_delivery.delivery_id)
    assert list(json.loads(slack_request["body"])) == ["text"]
    # Email too, as a message header.
    email_delivery = Delivery.objects.get(channel=email_channel, event__job=job)
    email = next(message for message in mail.outbox if job.job_id in message.subject)
    assert email.message()[HEADER] == str(email_delivery.delivery_id)

    ids = {delivery.delivery_id, slack_delivery.delivery_id, email_delivery.delivery_id}
    assert len(ids) == 3  # the same event, three channels: three deliveries

    page = alice_client.get("/notifications/").content.decode()
    assert 'badge-succeeded">sent</span> after 2 attempts' in page
    assert f"Delivery ID <code>{delivery_id}</code>" in page


def test_a_delivery_whose_last_attempt_lost_its_worker_is_given_up_not_sent_again(
        alice, alice_token, alice_client, fake_api):
    with Receiver() as hook:
        add_channel(alice, "webhook", hook.url)
        fail_a_job(fake_api, alice, alice_token)
        # As a worker killed mid-send leaves it: claimed for its fifth attempt, lease run out.
        Delivery.objects.update(state="sending", attempts=notifications.MAX_ATTEMPTS,
                                next_attempt_at=timezone.now())
        assert notifications.deliver_due() == 0
        assert hook.requests == []
    delivery = Delivery.objects.get()
    assert (delivery.state, delivery.attempts) == ("failed", notifications.MAX_ATTEMPTS)
    page = alice_client.get("/notifications/").content.decode()
    assert "ftdash stopped before the receiver answered its last attempt; it may have arrived" in page


@pytest.mark.django_db(transaction=True)
def test_a_test_notification_being_sent_is_not_sent_again_by_a_worker(alice):
    """A "Send test" is sent from the web request; a worker's round meanwhile leaves it alone."""
    with Receiver(hold=True) as hook:
        channel = add_channel(alice, "webhook", hook.url)
        tested = []

        def send_test():
            try:
                tested.append(notifications.send_test(channel))
            finally:
                connection.close()

        sending = threading.Thread(target=send_test)
        sending.start()
        try:
            wait_for(lambda: hook.requests, what="the test notification to arrive")
            worker_round = notifications.deliver_due()  # what a worker does while the answer waits
        finally:
            hook.answering.set()
            sending.join(timeout=60)
        assert len(hook.requests) == 1
    assert worker_round == 0
    assert [(d.state, d.attempts) for d in tested] == [("sent", 1)]
    assert Delivery.objects.get().state == "sent"


def the_migration_that_adds_delivery_ids(executor: MigrationExecutor) -> tuple[str, str]:
    """Found by what it does, so that renumbering migrations does not break this test."""
    for key, migration in executor.loader.disk_migrations.items():
        if any(isinstance(op, AddField) and op.model_name == "delivery" and op.name == "delivery_id"
               for op in migration.operations):
            return key
    raise AssertionError("no migration adds Delivery.delivery_id")


@pytest.mark.django_db(transaction=True)
def test_deliveries_made_before_ids_existed_get_one_each_when_migrating():
    executor = MigrationExecutor(connection)
    adding = the_migration_that_adds_delivery_ids(executor)
    before = list(executor.loader.graph.node_map[adding].parents)
    latest = executor.loader.graph.leaf_nodes()
    executor.migrate([(node.key[0], node.key[1]) for node in before])
    try:
        old = executor.loader.project_state([(node.key[0], node.key[1]) for node in before]).apps
        workspace = old.get_model("jobs", "Workspace").objects.create(name="Old team")
        channel = old.get_model("jobs", "NotificationChannel").objects.create(
            workspace=workspace, kind="webhook", target="https://hooks.example.com/x", events=["failed"])
        for _ in range(3):
            old.get_model("jobs", "Delivery").objects.create(channel=channel, payload={"event": "failed"})
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(latest)
    ids = list(Delivery.objects.values_list("delivery_id", flat=True))
    assert len(ids) == 3 and all(isinstance(i, uuid.UUID) for i in ids) and len(set(ids)) == 3
    new = Delivery.objects.create(channel_id=channel.pk, payload={"event": "failed"})
    assert new.delivery_id not in ids


# --- real worker processes --------------------------------------------------------------------

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
        response = post_form(self.session, self.server, "/jobs/track/",
                             {"job_id": remote["id"], "token": self.token_pk})
        assert response.status_code == 200 and f"Now tracking {remote['id']}" in response.text
        self.api.update_job(remote["id"], status="succeeded", trained_steps=100)
        return remote["id"]

    def posts_for(self, job_id: str) -> list[dict]:
        return [r for r in list(self.receiver.requests) if json.loads(r["body"]).get("job_id") == job_id]

    def deliveries_for(self, job_id: str) -> list[tuple[uuid.UUID, str, int]]:
        rows = self.server.sql(
            "SELECT d.delivery_id, d.state, d.attempts FROM jobs_delivery d"
            " JOIN jobs_jobevent e ON d.event_id = e.id JOIN jobs_trackedjob j ON e.job_id = j.id"
            " WHERE j.job_id = ?", (job_id,))
        return [(uuid.UUID(str(delivery_id)), state, attempts) for delivery_id, state, attempts in rows]

    def heartbeat(self, worker) -> str | None:
        rows = self.server.sql("SELECT last_seen FROM jobs_workerheartbeat WHERE name = ?",
                               (f"{socket.gethostname()}:{worker.pid}",))
        return str(rows[0][0]) if rows else None

    def notifications_page(self) -> str:
        response = self.session.get(self.server.url + "/notifications/", timeout=10)
        assert response.status_code == 200
        return response.text


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("deliveries")
    with FakeTokenFactory() as api, Receiver(hold=True) as receiver, ftdash_server(
        tmp / "data", api_url=api.url, workers=1,
        FTDASH_ALLOW_PRIVATE_WEBHOOKS="true",  # the receiver is on loopback
        FTDASH_DELIVERY_LEASE_SECONDS=str(LEASE_SECONDS),
        FTDASH_WORKER_INTERVAL_SECONDS="0.2", FTDASH_API_RETRIES="0", FTDASH_WORKER_LIST_READS="false",
    ) as server:
        api.add_token(SECRET)
        session = requests.Session()
        session.get(server.url + "/setup/")
        response = post_form(session, server, "/setup/",
                             {"username": "admin", "password1": PASSWORD, "password2": PASSWORD})
        assert response.status_code == 200 and "/tokens/" in response.url
        response = post_form(session, server, "/tokens/", {"name": "main", "secret": SECRET})
        token_pk = int(re.search(r"/tokens/(\d+)/test/", response.text).group(1))
        page = session.get(server.url + "/notifications/").text
        workspace_pk = re.search(r"/notifications/workspaces/(\d+)/channels/", page).group(1)
        response = post_form(session, server, f"/notifications/workspaces/{workspace_pk}/channels/",
                             {"kind": "webhook", "url": receiver.url, "events": ["succeeded"]})
        assert response.status_code == 200 and "Added" in response.text
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
    wait_for(lambda: site.deliveries_for(job_id)[0][1] == "sent", timeout=60,
             what="a new worker to send it again once the lease ran out")
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
        wait_for(lambda: site.deliveries_for(job_id)[0][1] == "sent", timeout=60,
                 what="another worker to retry once the lease ran out")
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
