"""Notifications: channels on the Notifications page, SSRF-safe webhooks, one delivery per
event and channel, retries with backoff, email, Slack."""

from __future__ import annotations

import datetime as dt
import json
import re
import socket
import time

import pytest
from django.core import mail
from django.utils import timezone

from jobs import notifications, services
from jobs.models import Delivery, JobEvent, Membership, NotificationChannel, TrackedJob
from tests.support.accounts import ALICE_SECRET
from tests.support.server_process import free_port
from tests.support.tracked_jobs import refreshed
from tests.support.webhooks import Receiver

ALL_EVENTS = ["succeeded", "failed", "cancelled", "stalled"]


@pytest.fixture
def receiver():
    with Receiver() as r:
        yield r


@pytest.fixture
def private_ok(settings):
    """Allow loopback webhooks, so the local receiver can get notifications."""
    settings.FTDASH_ALLOW_PRIVATE_WEBHOOKS = True


@pytest.fixture(autouse=True)
def quick_settings(settings):
    settings.FTDASH_API_RETRIES = 0
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.SITE_URL = "https://ftdash.example.com"


def add_channel(workspace, kind, target, events=ALL_EVENTS, user=None, actor=None):
    return services.channel_add(
        workspace=workspace, actor=actor or user, kind=kind, target=target, events=events, personal=user is not None
    )


@pytest.fixture
def track(fake_api, alice, alice_token):
    def track(workspace=None, token=None, **fields) -> TrackedJob:
        remote = fake_api.add_job(**fields)
        return services.job_track(
            workspace=workspace or alice.personal_workspace, token=token or alice_token, job_id=remote["id"], user=alice
        )

    return track


def section(page: str, workspace) -> str:
    return re.search(rf'<section class="panel" id="workspace-{workspace.pk}".*?</section>', page, re.S).group(0)


def loopback_hostname() -> str | None:
    """A name from /etc/hosts (not "localhost") that resolves to a loopback address."""
    try:
        with open("/etc/hosts") as hosts:
            lines = hosts.read().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split("#")[0].split()
        for name in fields[1:]:
            if name == "localhost" or name.endswith(".localhost"):
                continue
            try:
                address = socket.gethostbyname(name)
            except OSError:
                continue
            if address.startswith("127."):
                return name
    return None


# --- the page -----------------------------------------------------------------------------------


def test_the_notifications_page_offers_owners_every_channel_type(alice_client, team):
    page = alice_client.get("/").content.decode()
    assert '<a href="/notifications/"' in page and ">Notifications</a>" in page

    page = alice_client.get("/notifications/").content.decode()
    for workspace in (team, team.memberships.get(role="owner").user.personal_workspace):
        part = section(page, workspace)
        assert "Add channel" in part and "Channel type" in part
        for option in ("Email", "Webhook", "Slack"):
            assert f">{option}</option>" in part
        assert ">URL</label>" in part and ">Email address</label>" in part
        for event in ("Succeeded", "Failed", "Cancelled", "Stalled"):
            assert event in part
        assert f'href="/workspaces/{workspace.pk}/alerts/"' in part  # the stall limit is set there


def test_a_member_may_only_subscribe_their_own_email(client, bob, team):
    client.force_login(bob)
    part = section(client.get("/notifications/").content.decode(), team)
    assert ">Email</option>" in part
    assert ">Webhook</option>" not in part and ">Slack</option>" not in part
    assert ">URL</label>" not in part
    assert "No notifications set up here for you yet" in part

    response = client.post(
        f"/notifications/workspaces/{team.pk}/channels/",
        {"kind": "email", "email": "bob@example.com", "events": ["failed"]},
    )
    assert response.status_code == 302
    [channel] = NotificationChannel.objects.all()
    assert (channel.user, channel.target, channel.events) == (bob, "bob@example.com", ["failed"])
    assert "bob@example.com" in section(client.get("/notifications/").content.decode(), team)


PRIVATE_URLS = [
    "http://127.0.0.1/",
    "http://10.0.0.1/",
    "http://169.254.169.254/latest/meta-data/",
    "http://[::1]/",
    "http://localhost/",
    "http://192.168.1.20:8080/hook",
    "http://[::ffff:127.0.0.1]/",
    "http://0.0.0.0/",
    "http://[64:ff9b::7f00:1]/",
    "http://[2002:7f00:1::]/",
    "http://[::7f00:1]/",
    "http://[fe80::1]/",
    "http://224.0.0.1/",
]
REFUSED = "is not a public internet address"


@pytest.mark.parametrize("url", PRIVATE_URLS)
def test_webhooks_to_private_loopback_or_link_local_addresses_are_refused(alice_client, alice, url, settings):
    workspace = alice.personal_workspace
    response = alice_client.post(
        f"/notifications/workspaces/{workspace.pk}/channels/", {"kind": "webhook", "url": url, "events": ["failed"]}
    )
    assert response.status_code == 422
    text = response.content.decode()
    assert REFUSED in text
    assert not NotificationChannel.objects.exists()

    settings.FTDASH_ALLOW_PRIVATE_WEBHOOKS = True
    response = alice_client.post(
        f"/notifications/workspaces/{workspace.pk}/channels/", {"kind": "webhook", "url": url, "events": ["failed"]}
    )
    assert response.status_code == 302
    assert NotificationChannel.objects.get().target == url


@pytest.mark.parametrize(
    "url",
    [
        "ftp://hooks.example.com/x",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "gopher://hooks.example.com/",
        "https://user:pw@hooks.example.com/x",
    ],
)
def test_webhooks_need_a_plain_http_or_https_url(alice_client, alice, url, private_ok):
    response = alice_client.post(
        f"/notifications/workspaces/{alice.personal_workspace.pk}/channels/",
        {"kind": "slack", "url": url, "events": ["failed"]},
    )
    assert response.status_code == 422
    assert not NotificationChannel.objects.exists()
    with pytest.raises(notifications.UnsafeDestination):
        notifications.check_webhook_url(url)


def test_a_public_webhook_url_is_accepted(alice_client, alice):
    response = alice_client.post(
        f"/notifications/workspaces/{alice.personal_workspace.pk}/channels/",
        {"kind": "webhook", "url": "https://hooks.example.com/ftdash", "events": ["failed"]},
    )
    assert response.status_code == 302
    assert NotificationChannel.objects.get().target == "https://hooks.example.com/ftdash"


def test_a_name_that_resolves_to_loopback_is_refused_when_connecting(alice, alice_client, receiver, monkeypatch):
    name = loopback_hostname()  # .ci/run provides ftdash-loopback.test in /etc/hosts
    if name is None:
        # Never a skip: where /etc/hosts has no such name, this test's own resolver has one.
        name = "ftdash-loopback.test"
        real_getaddrinfo = socket.getaddrinfo
        monkeypatch.setattr(
            socket,
            "getaddrinfo",
            lambda host, *args, **kwargs: real_getaddrinfo("127.0.0.1" if host == name else host, *args, **kwargs),
        )
    url = receiver.url.replace("127.0.0.1", name)
    assert notifications.check_webhook_url(url) == url  # a name: it cannot be judged before resolving
    channel = add_channel(alice.personal_workspace, "webhook", url, actor=alice)

    response = alice_client.post(f"/notifications/channels/{channel.pk}/test/", follow=True)

    assert f"failed: ftdash does not send notifications to {name}: it {REFUSED}" in response.content.decode()
    assert receiver.requests == []
    assert Delivery.objects.get().state == "failed"


@pytest.fixture
def listener():
    """A loopback port that is listening but never answers: any connection stays in its queue."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        sock.setblocking(False)
        yield sock


def connections_to(sock: socket.socket) -> int:
    count = 0
    while True:
        try:
            sock.accept()[0].close()
        except BlockingIOError:
            return count
        count += 1


LOOPBACK_FORMS = ["localhost", "[::ffff:127.0.0.1]", "[64:ff9b::7f00:1]", "[2002:7f00:1::]", "[::7f00:1]"]


@pytest.mark.parametrize("host", LOOPBACK_FORMS)
@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_refused_host_gets_no_connection_at_all(listener, host, scheme, db):
    """Not even a TCP handshake (or a TLS ClientHello): the address is judged before connecting."""
    port = listener.getsockname()[1]
    with pytest.raises(notifications.UnsafeDestination, match=REFUSED):
        notifications.post_json(f"{scheme}://{host}:{port}/hook", {"text": "hello"})
    time.sleep(0.05)
    assert connections_to(listener) == 0


def test_refusals_read_the_same_for_an_open_and_a_closed_port(listener, db):
    open_port, closed_port = listener.getsockname()[1], free_port()
    answers = []
    for port in (open_port, closed_port):
        with pytest.raises(notifications.UnsafeDestination) as refused:
            notifications.post_json(f"https://localhost:{port}/services/T1/B2/XYZ", {"text": "hi"})
        answers.append(str(refused.value))
    assert answers[0] == answers[1]
    assert str(open_port) not in answers[0] and "127.0.0.1" not in answers[0]
    assert connections_to(listener) == 0


def test_an_allowed_name_is_called_at_its_checked_address_with_its_own_host_header(alice, receiver, private_ok):
    url = receiver.url.replace("127.0.0.1", "localhost")
    channel = add_channel(alice.personal_workspace, "webhook", url, actor=alice)
    assert notifications.send_test(channel).state == "sent"
    [request] = receiver.requests
    assert request["headers"]["Host"] == f"localhost:{receiver.server.server_address[1]}"


def test_redirects_are_not_followed(alice, private_ok):
    with Receiver() as target, Receiver(status=302) as redirector:
        redirector.location = target.url
        channel = add_channel(alice.personal_workspace, "webhook", redirector.url, actor=alice)
        delivery = notifications.send_test(channel)
        assert len(redirector.requests) == 1
        assert target.requests == []
    assert delivery.state == "failed" and "HTTP 302" in delivery.last_error


def test_send_test_delivers_and_the_page_says_so(alice, alice_client, receiver, private_ok):
    channel = add_channel(alice.personal_workspace, "webhook", receiver.url, actor=alice)
    response = alice_client.post(f"/notifications/channels/{channel.pk}/test/", follow=True)
    assert f"Sent a test notification to {channel.masked_target}" in response.content.decode()
    [body] = receiver.json()
    assert body["event"] == "test" and body["job_id"] == "ftjob-test"
    page = alice_client.get("/notifications/").content.decode()
    assert "Test notification — test" in page and 'badge-succeeded">sent' in page


def test_a_failed_test_says_why(alice, alice_client, private_ok):
    with Receiver(status=500) as failing:
        channel = add_channel(alice.personal_workspace, "slack", failing.url, actor=alice)
        response = alice_client.post(f"/notifications/channels/{channel.pk}/test/", follow=True)
    assert "failed: the receiver answered HTTP 500" in response.content.decode()


# --- deliveries of job events -------------------------------------------------------------------


def test_a_job_event_is_delivered_once_to_every_channel(alice, alice_token, track, fake_api, private_ok):
    workspace = alice.personal_workspace
    alice.email = "alice@example.com"
    alice.save()
    with Receiver() as hook_a, Receiver() as hook_b, Receiver() as slack:
        add_channel(workspace, "webhook", hook_a.url, actor=alice)
        add_channel(workspace, "webhook", hook_b.url, actor=alice)
        add_channel(workspace, "slack", slack.url, actor=alice)
        add_channel(workspace, "email", "alerts@example.com", actor=alice)
        job = track(total_steps=100, trained_steps=50, model="meta-llama/Llama-3.1-8B", suffix="support-bot")
        fake_api.update_job(
            job.job_id,
            status="failed",
            error={
                "code": "invalid_training_file",
                "message": "Line 17 has no messages list",
                "param": "training_file",
            },
        )
        refreshed(job)
        refreshed(job)
        assert notifications.deliver_due() == 4
        assert notifications.deliver_due() == 0

        assert len(hook_a.requests) == len(hook_b.requests) == len(slack.requests) == 1
        request = hook_a.requests[0]
        assert request["headers"]["Content-Type"] == "application/json"
        body = json.loads(request["body"])
        [other] = hook_b.json()
        # The same event, but two deliveries: each has its own id.
        assert other.pop("delivery_id") != body["delivery_id"]
        assert other == {key: value for key, value in body.items() if key != "delivery_id"}
        slack_body = slack.json()[0]

    assert body["event"] == "failed" and body["status"] == "failed"
    assert body["job_id"] == job.job_id
    assert (body["model"], body["suffix"]) == ("meta-llama/Llama-3.1-8B", "support-bot")
    assert body["created_at"] and body["finished_at"] and body["event_at"]
    assert body["url"] == f"https://ftdash.example.com/jobs/{job.pk}/"
    assert body["error"]["code"] == "invalid_training_file"
    assert body["error"]["message"] == "Line 17 has no messages list"
    raw = hook_a.bodies[0].decode() + slack.bodies[0].decode()
    secret = alice_token.secret_encrypted
    assert ALICE_SECRET not in raw and secret not in raw and ALICE_SECRET[-4:] not in raw

    assert list(slack_body) == ["text"]
    assert job.job_id in slack_body["text"] and "failed" in slack_body["text"]
    assert "invalid_training_file" in slack_body["text"]

    [email] = mail.outbox
    assert email.to == ["alerts@example.com"]
    assert job.job_id in email.subject and "failed" in email.subject
    assert "invalid_training_file" in email.body and "Line 17 has no messages list" in email.body
    assert f"https://ftdash.example.com/jobs/{job.pk}/" in email.body
    assert ALICE_SECRET not in email.body + email.subject
    assert Delivery.objects.filter(state="sent").count() == 4


def test_a_success_and_a_stall_are_delivered_too(alice, track, fake_api, receiver, private_ok, settings):
    settings.FTDASH_STALL_MINUTES = 10
    add_channel(alice.personal_workspace, "webhook", receiver.url, actor=alice)
    done = track(total_steps=100, trained_steps=50)
    stuck = track(total_steps=100, trained_steps=30)
    fake_api.update_job(done.job_id, status="succeeded", trained_steps=100)
    refreshed(done)
    TrackedJob.objects.filter(pk=stuck.pk).update(progress_changed_at=timezone.now() - dt.timedelta(minutes=11))
    refreshed(stuck)
    refreshed(stuck)
    notifications.deliver_due()
    by_job = {body["job_id"]: body for body in receiver.json()}
    assert len(receiver.requests) == 2
    assert by_job[done.job_id]["event"] == "succeeded" and "error" not in by_job[done.job_id]
    assert by_job[stuck.job_id]["event"] == "stalled" and by_job[stuck.job_id]["status"] == "running"
    assert "stuck at step 30" in by_job[stuck.job_id]["message"]


def test_a_channel_gets_only_the_events_it_subscribed_to(alice, track, fake_api, private_ok):
    with Receiver() as failures_only, Receiver() as successes:
        add_channel(alice.personal_workspace, "webhook", failures_only.url, events=["failed"], actor=alice)
        add_channel(alice.personal_workspace, "webhook", successes.url, events=["succeeded"], actor=alice)
        job = track(total_steps=100, trained_steps=50)
        fake_api.update_job(job.job_id, status="succeeded", trained_steps=100)
        refreshed(job)
        notifications.deliver_due()
        assert failures_only.requests == []
        assert [b["event"] for b in successes.json()] == ["succeeded"]


def test_a_failing_receiver_is_retried_with_backoff_then_given_up(alice, alice_client, track, fake_api, private_ok):
    with Receiver(status=500) as failing:
        channel = add_channel(alice.personal_workspace, "webhook", failing.url, actor=alice)
        job = track(total_steps=100, trained_steps=50)
        fake_api.update_job(job.job_id, status="cancelled")
        refreshed(job)
        [delivery] = Delivery.objects.all()
        waits = []
        for attempt in range(1, notifications.MAX_ATTEMPTS + 1):
            started = timezone.now()
            assert notifications.deliver_due() == 1
            assert notifications.deliver_due() == 0  # not due again right away
            delivery.refresh_from_db()
            assert delivery.attempts == attempt
            assert delivery.last_error == "the receiver answered HTTP 500"
            if attempt < notifications.MAX_ATTEMPTS:
                assert delivery.state == "pending"
                waits.append(round((delivery.next_attempt_at - started).total_seconds()))
                page = alice_client.get("/notifications/").content.decode()
                plural = "s" if attempt > 1 else ""
                assert f"pending</span> after {attempt} attempt{plural}: the receiver answered HTTP 500" in page
                Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
        assert delivery.state == "failed"
        assert len(failing.requests) == notifications.MAX_ATTEMPTS
    assert waits == [30, 60, 120, 240]
    Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
    assert notifications.deliver_due() == 0
    page = alice_client.get("/notifications/").content.decode()
    assert "failed</span> the receiver answered HTTP 500" in page
    assert channel.masked_target in page and channel.target not in page


def test_the_same_event_is_queued_once_per_channel(alice, track, fake_api, private_ok, receiver):
    add_channel(alice.personal_workspace, "webhook", receiver.url, actor=alice)
    add_channel(alice.personal_workspace, "email", "a@example.com", actor=alice)
    job = track(total_steps=100, trained_steps=50)
    fake_api.update_job(job.job_id, status="succeeded", trained_steps=100)
    refreshed(job)
    event = JobEvent.objects.get(job=job, kind="finished")
    assert Delivery.objects.count() == 2
    assert notifications.queue_for_events([event]) == 0
    assert notifications.queue_for_events([event, event]) == 0
    assert Delivery.objects.count() == 2
    notifications.deliver_due()
    assert len(receiver.requests) == 1 and len(mail.outbox) == 1


def test_two_senders_at_once_send_each_delivery_once(alice, track, fake_api, private_ok, monkeypatch):
    """Another worker's round runs while ours is sending its first delivery: ours had already
    read the list of due deliveries, so both rounds hold the same stale list."""
    with Receiver() as hook:
        add_channel(alice.personal_workspace, "webhook", hook.url, actor=alice)
        jobs = [track(total_steps=100, trained_steps=50) for _ in range(3)]
        for job in jobs:
            fake_api.update_job(job.job_id, status="succeeded", trained_steps=100)
            refreshed(job)
        assert Delivery.objects.filter(state="pending").count() == 3

        send, other_round = notifications.send, {}

        def send_while_another_worker_runs(delivery):
            if not other_round:
                other_round["started"] = True
                other_round["sent"] = notifications.deliver_due()
            send(delivery)

        monkeypatch.setattr(notifications, "send", send_while_another_worker_runs)
        ours = notifications.deliver_due()

        assert sorted(b["job_id"] for b in hook.json()) == sorted(j.job_id for j in jobs)
    assert ours + other_round["sent"] == 3 and other_round["sent"] == 2
    assert Delivery.objects.filter(state="sent", attempts=1).count() == 3


def test_a_former_member_gets_no_more_notifications_about_the_team(alice, bob, team, track, fake_api):
    """bob subscribed to the team's failures by email, then left (or was removed)."""
    team_token = services.token_create(workspace=team, user=alice, name="team", secret=ALICE_SECRET)
    add_channel(team, "email", "bob@example.com", events=["failed"], user=bob)
    services.member_remove(membership=Membership.objects.get(workspace=team, user=bob), actor=alice)

    job = track(workspace=team, token=team_token, total_steps=100, trained_steps=50, suffix="secret-project")
    fake_api.update_job(job.job_id, status="failed", error={"code": "oom", "message": "out of memory"})
    refreshed(job)
    notifications.deliver_due()

    assert [m.to for m in mail.outbox] == [], "an outsider was emailed about the team's job"


# --- Slack markup, and webhook URLs as secrets --------------------------------------------------


def test_slack_messages_escape_markup_in_labels_and_upstream_text(alice, track, fake_api, private_ok):
    with Receiver() as slack:
        add_channel(alice.personal_workspace, "slack", slack.url, actor=alice)
        job = track(total_steps=100, trained_steps=50, suffix="a<b>&c")
        services.job_label(job=job, label="<!channel> R&D <https://evil.example|click>")
        fake_api.update_job(
            job.job_id,
            status="failed",
            error={"code": "bad<code>", "message": "Use <@U123> & <!here> now", "param": None},
        )
        refreshed(job)
        notifications.deliver_due()
        [body] = slack.json()

    text = body["text"]
    assert "&lt;!channel&gt; R&amp;D &lt;https://evil.example|click&gt;" in text
    assert "bad&lt;code&gt;: Use &lt;@U123&gt; &amp; &lt;!here&gt; now" in text
    assert "a&lt;b&gt;&amp;c" in text
    assert "<" not in text and ">" not in text
    assert f"https://ftdash.example.com/jobs/{job.pk}/" in text


SLACK_URL_PATH = "/services/T0AAAAAAA/B0BBBBBBB/Zx9SecretSlackTokenQ7"


def test_webhook_urls_are_masked_on_pages_in_the_audit_trail_and_in_errors(alice, alice_client, private_ok, caplog):
    closed = free_port()
    url = f"http://127.0.0.1:{closed}{SLACK_URL_PATH}"
    workspace = alice.personal_workspace
    page = alice_client.post(
        f"/notifications/workspaces/{workspace.pk}/channels/",
        {"kind": "slack", "url": url, "events": ["failed"]},
        follow=True,
    ).content.decode()
    channel = NotificationChannel.objects.get()
    assert channel.target == url  # stored whole: it is needed to send
    masked = f"http://127.0.0.1:{closed}/…enQ7"
    assert channel.masked_target == masked
    assert f"Added Slack → {masked}" in page

    with caplog.at_level("DEBUG"):
        tested = alice_client.post(f"/notifications/channels/{channel.pk}/test/", follow=True).content.decode()
    assert f"The test notification to {masked} failed: could not connect to 127.0.0.1" in tested

    confirm = alice_client.get(f"/notifications/channels/{channel.pk}/delete/").content.decode()
    alice_client.post(f"/notifications/channels/{channel.pk}/delete/")
    audit = alice_client.get(f"/workspaces/{workspace.pk}/audit/").content.decode()
    assert f"added Slack notifications to {masked}" in audit
    assert f"removed Slack notifications to {masked}" in audit

    secret = SLACK_URL_PATH.rsplit("/", 1)[1]
    for text in (page, tested, confirm, audit, caplog.text):
        assert secret not in text and "B0BBBBBBB" not in text
    assert "failed: could not connect to 127.0.0.1" in caplog.text


def test_an_email_channel_shows_its_address(alice, alice_client):
    add_channel(alice.personal_workspace, "email", "alerts@example.com", actor=alice)
    assert "alerts@example.com" in alice_client.get("/notifications/").content.decode()
