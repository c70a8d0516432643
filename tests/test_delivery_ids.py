"""Deliveries that receivers can tell apart: a stable `X-Ftdash-Delivery` id on every attempt,
attempts counted when claimed, a delivery whose last attempt lost its worker given up, and ids
given to deliveries made before they existed. In this process, against real HTTP receivers;
workers killed or stopped mid-delivery: tests/processes/test_delivery_ids.py.
"""

from __future__ import annotations

import json
import threading
import uuid

import pytest
from django.core import mail
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.operations import AddField
from django.utils import timezone

from jobs import notifications, services
from jobs.models import Delivery, TrackedJob
from jobs.sync import refresh
from tests.support.accounts import track_remote_job
from tests.support.waiting import wait_for
from tests.support.webhooks import Receiver

HEADER = "X-Ftdash-Delivery"
ERROR = {"code": "invalid_training_file", "message": "Line 17 has no messages list", "param": "training_file"}


@pytest.fixture(autouse=True)
def quick_settings(settings):
    settings.FTDASH_API_RETRIES = 0
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.FTDASH_ALLOW_PRIVATE_WEBHOOKS = True  # the receivers are on loopback


def add_channel(user, kind: str, target: str):
    return services.channel_add(
        workspace=user.personal_workspace,
        actor=user,
        kind=kind,
        target=target,
        events=["succeeded", "failed"],
        personal=False,
    )


def fail_a_job(fake_api, user, token) -> TrackedJob:
    job = track_remote_job(fake_api, user, token, total_steps=100, trained_steps=50)
    fake_api.update_job(job.job_id, status="failed", error=ERROR)
    return refresh.refresh_now(TrackedJob.objects.get(pk=job.pk))


def test_a_retried_delivery_carries_the_same_id_and_every_delivery_its_own(alice, alice_token, alice_client, fake_api):
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
    alice, alice_token, alice_client, fake_api
):
    with Receiver() as hook:
        add_channel(alice, "webhook", hook.url)
        fail_a_job(fake_api, alice, alice_token)
        # As a worker killed mid-send leaves it: claimed for its fifth attempt, lease run out.
        Delivery.objects.update(state="sending", attempts=notifications.MAX_ATTEMPTS, next_attempt_at=timezone.now())
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
        if any(
            isinstance(op, AddField) and op.model_name == "delivery" and op.name == "delivery_id"
            for op in migration.operations
        ):
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
            workspace=workspace, kind="webhook", target="https://hooks.example.com/x", events=["failed"]
        )
        for _ in range(3):
            old.get_model("jobs", "Delivery").objects.create(channel=channel, payload={"event": "failed"})
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(latest)
    ids = list(Delivery.objects.values_list("delivery_id", flat=True))
    assert len(ids) == 3 and all(isinstance(i, uuid.UUID) for i in ids) and len(set(ids)) == 3
    new = Delivery.objects.create(channel_id=channel.pk, payload={"event": "failed"})
    assert new.delivery_id not in ids
