"""Training-health alerts as people see them (issue 20): a warning badge per open alert on the
card and the job page, the timeline's record of each alert and its clearing, the dashboard's
"Has an alert" filter, and "Mute alerts" / "Unmute" (editing roles, audited): while muted the
badges stay and nobody is notified.

Alerts are raised by the real sync where that is simple (checkpoints on the fake Token Factory,
then a refresh), and stored directly for what is only rendering."""

from __future__ import annotations

import datetime as dt
import re
from html import unescape

import pytest
from django.core.cache import caches
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from jobs import notifications, services
from jobs.live import job_version
from jobs.models import AuditEvent, JobAlert, JobEvent, Membership, TrackedJob
from tests.support.accounts import new_user
from tests.support.django_client import signed_in
from tests.support.tracked_jobs import refreshed
from tests.support.webhooks import subscribed_receiver

POLL = {"HTTP_HX_REQUEST": "true"}
NAN = float("nan")
TEAM_SECRET = "sk-team-secret-0123456789"


@pytest.fixture(autouse=True)
def quick_settings(settings):
    settings.FTDASH_API_RETRIES = 0
    settings.FTDASH_ALLOW_PRIVATE_WEBHOOKS = True  # the loopback Receiver
    settings.SITE_URL = "https://ftdash.example.com"


@pytest.fixture
def hook(alice):
    """A webhook of alice's workspace subscribed to the four training-health rules."""
    with subscribed_receiver(
        workspace=alice.personal_workspace, actor=alice, events=["overfitting", "diverged", "eta_slipped", "slow"]
    ) as receiver:
        yield receiver


def next_epoch(fake_api, job: TrackedJob, **metrics) -> TrackedJob:
    """The job trains one more epoch (10 steps of 100, 10 epochs) and writes its checkpoint with
    `metrics`; a refresh then reads it, as the worker or a page does."""
    fake_api.advance(job.job_id, 10)
    fake_api.add_checkpoint(job.job_id, metrics=metrics)
    return refreshed(job)


def open_alert(job: TrackedJob, rule: str, message: str, **fields) -> JobAlert:
    """An alert stored as jobs.sync.health stores one (with the job's alerts_changed_at)."""
    now = timezone.now()
    alert = JobAlert.objects.create(job=job, rule=rule, message=message, raised_at=now, **fields)
    TrackedJob.objects.filter(pk=job.pk).update(alerts_changed_at=now)
    job.alerts_changed_at = now
    return alert


def text_of(html: str) -> str:
    text = re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html))).strip()
    return re.sub(r" ([:;,)])", r"\1", text)  # a tag's end before punctuation


def card_of(page: str, job: TrackedJob) -> str:
    start = page.index(f'<li class="job-card" id="job-{job.pk}"')
    following = page.find('<li class="job-card"', start + 1)
    return page[start : following if following != -1 else page.index("</section>", start)]


def alerts_panel(page: str) -> str | None:
    found = re.search(r'<section class="panel alerts-panel".*?</section>', page, re.S)
    return found.group(0) if found else None


def timeline_rows(page: str) -> list[tuple[str, str]]:
    timeline = re.search(r'<h2 id="timeline-heading">.*?</ol>', page, re.S).group(0)
    return [
        (kind, text_of(body))
        for kind, body in re.findall(r'<li class="timeline-(\w+)[^"]*">(.*?)</li>', timeline, re.S)
    ]


def page_of(client, job: TrackedJob) -> str:
    response = client.get(reverse("job_detail", args=[job.pk]))
    assert response.status_code == 200
    return response.content.decode()


def dashboard(client, query: str = "") -> str:
    response = client.get("/" + query)
    assert response.status_code == 200
    return response.content.decode()


def shown_ids(page: str) -> list[str]:
    return re.findall(r'<a class="job-id" href="/jobs/\d+/">([^<]+)</a>', page)


# --- badges -------------------------------------------------------------------------------------


def test_an_alert_the_sync_raises_shows_on_the_card_and_the_job_page(fake_api, running_job, alice_client):
    job = next_epoch(fake_api, running_job, train_loss=0.9, valid_loss=1.0)
    job = next_epoch(fake_api, job, train_loss=NAN, valid_loss=1.0)
    [alert] = JobAlert.objects.filter(job=job)
    assert alert.rule == "diverged" and alert.is_open

    card = text_of(card_of(dashboard(alice_client), job))
    assert "Alert: Diverged" in card
    assert alert.message in card and "not a number" in card

    page = page_of(alice_client, job)
    panel = alerts_panel(page)
    assert panel is not None
    assert '<h2 id="alerts-heading">Alerts</h2>' in panel
    assert '<ul class="job-alerts"' in panel and '<span class="badge badge-alert">' in panel
    assert f"Alert: Diverged {alert.message}" in text_of(panel)
    # Near the top of the live part: before the progress panel.
    live = page[page.index('id="job-live"') :]
    assert live.index("alerts-heading") < live.index("progress-heading")


def test_every_open_alert_gets_its_badge_and_a_cleared_one_none(make_job, alice_client):
    job = make_job(status="running")
    open_alert(job, "overfitting", "Validation loss has risen for 2 checkpoints (0.81 → 0.86 → 0.93)")
    open_alert(job, "slow", "Steps per minute fell to 30% of this job's median")
    open_alert(job, "eta_slipped", "The finish moved 2 h later", cleared_at=timezone.now())

    for html in (card_of(dashboard(alice_client), job), alerts_panel(page_of(alice_client, job))):
        text = text_of(html)
        assert "Alert: Overfitting Validation loss has risen for 2 checkpoints (0.81 → 0.86 → 0.93)" in text
        assert "Alert: Slow Steps per minute fell to 30% of this job's median" in text
        assert "ETA slipped" not in text and "2 h later" not in text
        assert html.count('class="job-alert job-alert-') == 2


def test_a_job_without_alerts_shows_no_badge_and_no_panel(make_job, alice_client):
    job = make_job(status="running")
    assert "badge-alert" not in card_of(dashboard(alice_client), job)
    assert alerts_panel(page_of(alice_client, job)) is None


def test_a_message_is_shown_as_text_never_as_markup(make_job, alice_client):
    job = make_job(status="running")
    open_alert(job, "overfitting", "best is epoch 3 (<img src=x onerror=alert(1)>)")
    for html in (dashboard(alice_client), page_of(alice_client, job)):
        assert "<img src=x" not in html
        assert "(&lt;img src=x onerror=alert(1)&gt;)" in html


def test_a_cleared_alert_loses_its_badge_and_the_timeline_shows_both(fake_api, running_job, alice_client, hook):
    job = next_epoch(fake_api, running_job, train_loss=0.9, valid_loss=1.0)
    job = next_epoch(fake_api, job, train_loss=0.8, valid_loss=NAN)
    assert "Alert: Diverged" in text_of(alerts_panel(page_of(alice_client, job)))
    assert "badge-alert" in card_of(dashboard(alice_client), job)

    job = next_epoch(fake_api, job, train_loss=0.7, valid_loss=0.9)  # back to finite, not doubled
    assert not JobAlert.objects.filter(job=job, cleared_at__isnull=True).exists()
    page = page_of(alice_client, job)
    assert alerts_panel(page) is None
    assert "badge-alert" not in card_of(dashboard(alice_client), job)

    rows = timeline_rows(page)
    diverged = [text for kind, text in rows if kind == "diverged"]
    cleared = [text for kind, text in rows if kind == "alert_cleared"]
    assert len(diverged) == 1 and "Alert: Diverged" in diverged[0] and "valid loss of epoch 2" in diverged[0]
    assert len(cleared) == 1 and "Diverged cleared" in cleared[0]
    assert [kind for kind, _ in rows].index("diverged") < [kind for kind, _ in rows].index("alert_cleared")
    # The raise was notified once; the clearing is on the timeline only.
    notifications.deliver_due()
    assert [body["event"] for body in hook.json()] == ["diverged"]


def test_an_alert_does_not_cut_short_how_long_the_state_around_it_lasted(make_job, alice_client):
    job = make_job(status="running")
    now = timezone.now()
    JobEvent.objects.filter(job=job).delete()
    for kind, minutes, message in (
        ("status", 30, "queued → running"),
        ("overfitting", 20, "Validation loss has risen for 2 checkpoints"),
        ("alert_cleared", 10, "Overfitting cleared"),
    ):
        JobEvent.objects.create(
            job=job, kind=kind, status="running", message=message, at=now - dt.timedelta(minutes=minutes)
        )
    rows = dict(timeline_rows(page_of(alice_client, job)))
    assert rows["status"].endswith("· 30 min")  # still running: the alert and its clearing are no new states
    assert "Alert: Overfitting Validation loss has risen for 2 checkpoints" in rows["overfitting"]
    assert "min" not in rows["overfitting"] and "min" not in rows["alert_cleared"]


# --- "Has an alert" -----------------------------------------------------------------------------


def test_has_an_alert_keeps_the_jobs_with_an_open_alert(make_job, alice_client):
    alerting = make_job(status="running", suffix="alerting")
    finished_alerting = make_job(status="succeeded", suffix="finished-alerting", finished_at=1753345102)
    cleared = make_job(status="running", suffix="cleared")
    quiet = make_job(status="running", suffix="quiet")
    open_alert(alerting, "slow", "Slower than usual")
    open_alert(finished_alerting, "overfitting", "Validation loss rose")
    open_alert(cleared, "diverged", "NaN", cleared_at=timezone.now())

    assert set(shown_ids(dashboard(alice_client))) == {j.job_id for j in (alerting, finished_alerting, cleared, quiet)}
    page = dashboard(alice_client, "?alert=1")
    assert set(shown_ids(page)) == {alerting.job_id, finished_alerting.job_id}
    # The box is labelled, ticked, and the view says how to show every job again.
    assert re.search(
        r'<label for="filter_alert">Has an alert</label>\s*<input type="checkbox" name="alert" value="1"[^>]* id="filter_alert" checked>',
        page,
    )
    assert "Show all jobs" in page
    # With the other filters: the status too.
    assert shown_ids(dashboard(alice_client, "?alert=1&status=running")) == [alerting.job_id]
    assert shown_ids(dashboard(alice_client, "?alert=1&q=finished")) == [finished_alerting.job_id]
    # The summary counts what the filters keep.
    assert '<span class="summary-count">1</span> <span class="summary-label">Running</span>' in page
    # Unticked (or junk): every job.
    assert len(shown_ids(dashboard(alice_client, "?alert=0"))) == 4
    assert 'id="filter_alert" checked' not in dashboard(alice_client)


def test_the_export_keeps_the_alert_filter(make_job, alice_client):
    alerting, quiet = make_job(status="running"), make_job(status="running")
    open_alert(alerting, "slow", "Slower than usual")
    csv = alice_client.get(reverse("dashboard_export") + "?alert=1").content.decode()
    assert alerting.job_id in csv and quiet.job_id not in csv


def _queries(client, url) -> int:
    caches["rendered"].clear()  # every card rendered afresh: the worst case
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


def test_has_an_alert_and_the_badges_cost_the_same_queries_for_10_jobs_or_100(make_job, alice_client):
    def add(count):
        for i in range(count):
            job = make_job(status="running")
            open_alert(job, "slow", f"Slower than usual ({i})")
            if i % 2:
                open_alert(job, "diverged", "NaN")
                services.job_alerts_mute(job, job.added_by)

    add(10)
    with_10 = [_queries(alice_client, url) for url in ("/?alert=1", "/")]
    add(90)
    with_100 = [_queries(alice_client, url) for url in ("/?alert=1", "/")]
    assert with_10 == with_100
    assert len(shown_ids(dashboard(alice_client, "?alert=1"))) == 50  # a page's worth


# --- Mute alerts ----------------------------------------------------------------------------------


def test_a_member_mutes_and_unmutes_a_jobs_alerts_audited(alice, bob, team, fake_api):
    token = services.token_create(workspace=team, user=alice, name="team", secret=TEAM_SECRET)
    fake_api.add_token(TEAM_SECRET)
    remote = fake_api.add_job(total_steps=100, trained_steps=10)
    job = services.job_track(workspace=team, token=token, job_id=remote["id"], user=alice)
    open_alert(job, "slow", "Slower than usual")
    bob_client = signed_in(bob)
    page = page_of(bob_client, job)
    assert re.search(r'<form method="post" action="/jobs/\d+/alerts/mute/"', page)
    assert ">Mute alerts</button>" in page and ">Unmute</button>" not in page

    response = bob_client.post(reverse("job_alerts_mute", args=[job.pk]), follow=True)
    assert response.status_code == 200
    page = response.content.decode()
    job.refresh_from_db()
    assert job.alerts_muted_at is not None and job.alerts_muted_by == bob
    today = timezone.localtime(job.alerts_muted_at).strftime("%-d %b %Y")
    assert f"Alerts muted by bob on {today}: badges stay, notifications are not sent" in text_of(alerts_panel(page))
    assert "Alert: Slow Slower than usual" in text_of(alerts_panel(page))  # the badge stays
    assert ">Unmute</button>" in page and ">Mute alerts</button>" not in page
    assert "alerts muted" in card_of(dashboard(bob_client), job)
    [muted] = AuditEvent.objects.filter(workspace=team, action="job.alerts_mute")
    assert muted.actor == bob and job.job_id in muted.description

    # A second mute (a stale page) keeps the first one.
    bob_client.post(reverse("job_alerts_mute", args=[job.pk]))
    assert AuditEvent.objects.filter(action="job.alerts_mute").count() == 1

    response = signed_in(alice).post(reverse("job_alerts_unmute", args=[job.pk]), follow=True)
    page = response.content.decode()
    job.refresh_from_db()
    assert job.alerts_muted_at is None and job.alerts_muted_by is None
    assert "Alerts muted" not in page and ">Mute alerts</button>" in page
    assert "alerts muted" not in card_of(dashboard(bob_client), job)
    [unmuted] = AuditEvent.objects.filter(workspace=team, action="job.alerts_unmute")
    assert unmuted.actor == alice


def test_viewers_see_the_badges_but_cannot_mute_and_outsiders_get_404(alice, charlie, team, make_job):
    job = make_job(workspace=team, status="running")
    open_alert(job, "slow", "Slower than usual")
    dave = new_user("dave")
    Membership.objects.create(workspace=team, user=dave, role=Membership.Role.VIEWER)
    viewer = signed_in(dave)
    page = page_of(viewer, job)
    assert "Alert: Slow Slower than usual" in text_of(alerts_panel(page))
    assert "Mute alerts" not in page
    for name in ("job_alerts_mute", "job_alerts_unmute"):
        assert viewer.post(reverse(name, args=[job.pk])).status_code == 403
        assert signed_in(charlie).post(reverse(name, args=[job.pk])).status_code == 404
        assert viewer.get(reverse(name, args=[job.pk])).status_code == 405
    assert TrackedJob.objects.get(pk=job.pk).alerts_muted_at is None
    assert not AuditEvent.objects.filter(action__startswith="job.alerts_").exists()


def test_a_muted_job_raises_its_badge_but_notifies_nobody_until_unmuted(fake_api, running_job, alice_client, hook):
    job = next_epoch(fake_api, running_job, train_loss=0.9, valid_loss=1.0)
    assert alice_client.post(reverse("job_alerts_mute", args=[job.pk])).status_code == 302

    job = next_epoch(fake_api, job, train_loss=NAN, valid_loss=1.0)
    assert JobAlert.objects.filter(job=job, rule="diverged", cleared_at__isnull=True).exists()
    assert "Alert: Diverged" in text_of(alerts_panel(page_of(alice_client, job)))
    notifications.deliver_due()
    assert hook.requests == []  # muted: the badge stays, nobody is told

    job = next_epoch(fake_api, job, train_loss=0.8, valid_loss=0.9)  # cleared while muted
    assert alice_client.post(reverse("job_alerts_unmute", args=[job.pk])).status_code == 302
    job = next_epoch(fake_api, job, train_loss=0.7, valid_loss=NAN)  # a new alert, unmuted
    notifications.deliver_due()
    [body] = hook.json()
    assert body["event"] == "diverged" and body["job_id"] == job.job_id
    assert "valid loss of epoch 4" in body["message"]
    assert body["url"] == f"https://ftdash.example.com/jobs/{job.pk}/"


# --- live updates ---------------------------------------------------------------------------------


def test_muting_changes_the_live_version_so_open_pages_and_cards_update(make_job, alice_client):
    job = make_job(status="running")
    open_alert(job, "slow", "Slower than usual")
    before = job_version(TrackedJob.objects.get(pk=job.pk))
    alice_client.post(reverse("job_alerts_mute", args=[job.pk]))
    after = job_version(TrackedJob.objects.get(pk=job.pk))
    assert after != before

    part = alice_client.get(f"/jobs/{job.pk}/live/?v={job.pk}.{before}", **POLL)
    assert part.status_code == 200
    assert "Alerts muted by alice on" in text_of(part.content.decode())
    card = alice_client.get(f"/live/cards/?v={job.pk}.{before}", **POLL)
    assert card.status_code == 200 and "alerts muted" in card.content.decode()
    assert "Alert: Slow" in text_of(card.content.decode())
    # And once shown, nothing more to send.
    assert alice_client.get(f"/live/cards/?v={job.pk}.{after}", **POLL).status_code == 204


def test_an_alert_raised_changes_the_card_and_an_unchanged_poll_reads_no_alerts(fake_api, running_job, alice_client):
    job = next_epoch(fake_api, running_job, train_loss=0.9, valid_loss=1.0)
    before = job_version(job)
    job = next_epoch(fake_api, job, train_loss=NAN, valid_loss=1.0)
    card = alice_client.get(f"/live/cards/?v={job.pk}.{before}", **POLL)
    assert card.status_code == 200 and "Alert: Diverged" in text_of(card.content.decode())

    current = job_version(TrackedJob.objects.get(pk=job.pk))
    with CaptureQueriesContext(connection) as queries:
        assert alice_client.get(f"/live/cards/?v={job.pk}.{current}", **POLL).status_code == 204
    assert not [q for q in queries.captured_queries if "jobalert" in q["sql"].lower()]
