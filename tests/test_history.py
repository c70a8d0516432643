"""A tracked job's history: one event per transition, a timeline on its page, and stalls."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.utils import timezone

from jobs import services
from jobs.models import JobEvent, TrackedJob
from tests.support.tracked_jobs import move_back, refreshed


@pytest.fixture(autouse=True)
def quick_settings(settings):
    settings.FTDASH_API_RETRIES = 0
    settings.FTDASH_REFRESH_SECONDS = 5
    settings.FTDASH_STALL_MINUTES = 30


@pytest.fixture
def track(fake_api, alice, alice_token):
    def track(**fields) -> TrackedJob:
        remote = fake_api.add_job(**fields)
        return services.job_track(
            workspace=alice.personal_workspace, token=alice_token, job_id=remote["id"], user=alice
        )

    return track


def kinds(job) -> list[tuple[str, str]]:
    return list(job.events.values_list("kind", "status"))


def timeline_section(page: str) -> str:
    return re.search(r'<h2 id="timeline-heading">.*?</ol>', page, re.S).group(0)


def test_tracking_a_job_records_that_tracking_started(track):
    job = track(status="queued")
    [event] = job.events.all()
    assert (event.kind, event.status) == ("tracked", "queued")
    assert event.get_kind_display() == "Tracking started"
    assert "Tracking started" in event.message and "queued" in event.message


def test_each_status_change_is_recorded_once(track, fake_api):
    job = track(status="queued", total_steps=100, trained_steps=0)
    for _ in range(3):
        refreshed(job)
    assert kinds(job) == [("tracked", "queued")]

    fake_api.update_job(job.job_id, status="running")
    for _ in range(3):
        refreshed(job)
    assert kinds(job) == [("tracked", "queued"), ("status", "running")]
    assert job.events.get(kind="status").message == "queued → running"

    fake_api.update_job(job.job_id, trained_steps=5)
    refreshed(job)
    fake_api.update_job(job.job_id, trained_steps=9)
    refreshed(job)
    first = job.events.get(kind="first_progress")
    assert first.message == "First progress: step 5"

    fake_api.update_job(job.job_id, status="succeeded", trained_steps=100)
    for _ in range(3):
        refreshed(job)
    assert kinds(job) == [
        ("tracked", "queued"),
        ("status", "running"),
        ("first_progress", "running"),
        ("status", "succeeded"),
        ("finished", "succeeded"),
    ]


def test_a_failure_records_its_error_code_and_message(track, fake_api):
    job = track(total_steps=100, trained_steps=10)
    fake_api.update_job(
        job.job_id,
        status="failed",
        error={"code": "invalid_training_file", "message": "Line 17 has no messages list", "param": "training_file"},
    )
    refreshed(job)
    refreshed(job)
    [finished] = job.events.filter(kind="finished")
    assert finished.status == "failed"
    assert "invalid_training_file" in finished.message and "Line 17 has no messages list" in finished.message


def test_the_job_page_shows_the_timeline_with_how_long_each_state_lasted(track, fake_api, alice_client):
    job = track(status="queued", total_steps=100, trained_steps=0)
    fake_api.update_job(job.job_id, status="running")
    refreshed(job)
    fake_api.update_job(job.job_id, trained_steps=10)
    refreshed(job)
    fake_api.update_job(job.job_id, status="succeeded", trained_steps=100)
    refreshed(job)
    # Spread the events out: tracked 30 min ago, running 25, first progress 20, finished 5.
    now = timezone.now()
    events = list(job.events.order_by("pk"))
    for event, minutes in zip(events, (30, 25, 20, 5, 5), strict=False):
        JobEvent.objects.filter(pk=event.pk).update(at=now - dt.timedelta(minutes=minutes))

    timeline = timeline_section(alice_client.get(f"/jobs/{job.pk}/").content.decode())

    items = re.findall(r"<li class=\"timeline-(\w+)\">(.*?)</li>", timeline, re.S)
    assert [kind for kind, _ in items] == ["tracked", "status", "first_progress", "status", "finished"]
    text = [re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body)).strip() for _, body in items]
    assert "queued" in text[0] and "Tracking started" in text[0] and text[0].endswith("· 5 min")
    assert "queued → running" in text[1] and text[1].endswith("· 5 min")
    assert "First progress: step 10" in text[2] and text[2].endswith("· 15 min")
    assert "running → succeeded" in text[3]
    assert "succeeded" in text[4] and "min" not in text[4]  # a finished job's last state has no end


def test_a_running_job_still_being_watched_shows_how_long_its_state_has_lasted(track, alice_client):
    job = track(total_steps=100, trained_steps=10)
    JobEvent.objects.filter(job=job).update(at=timezone.now() - dt.timedelta(minutes=12))
    timeline = timeline_section(alice_client.get(f"/jobs/{job.pk}/").content.decode())
    assert "Tracking started" in timeline and "· 12 min" in timeline


# --- stalls ---------------------------------------------------------------------------------


def test_a_running_job_without_progress_stalls_once(track, settings, alice_client):
    settings.FTDASH_STALL_MINUTES = 10
    job = track(total_steps=100, trained_steps=40)
    moving = track(total_steps=100, trained_steps=10, steps_per_call=1)
    refreshed(job)
    move_back(job, 9)
    refreshed(job)
    assert TrackedJob.objects.get(pk=job.pk).stalled_at is None  # not yet: 9 of 10 minutes

    move_back(job, 11)
    move_back(moving, 11)
    for _ in range(5):
        refreshed(job)
        refreshed(moving)

    job.refresh_from_db()
    assert job.stalled_at is not None
    [stall] = job.events.filter(kind="stalled")
    assert stall.status == "running" and stall.message == "No progress for 11 min (stuck at step 40)"
    assert TrackedJob.objects.get(pk=moving.pk).stalled_at is None

    dashboard = alice_client.get("/").content.decode()
    card = re.search(rf'<li class="job-card" id="job-{job.pk}".*?</li>', dashboard, re.S)
    assert card and 'class="badge badge-stalled"' in card.group(0)
    stalled = alice_client.get("/?status=stalled").content.decode()
    assert job.job_id in stalled and moving.job_id not in stalled
    assert 'class="badge badge-stalled"' in alice_client.get(f"/jobs/{job.pk}/").content.decode()


def test_a_tiny_stall_limit_from_the_settings_is_honoured(track, settings):
    settings.FTDASH_STALL_MINUTES = 0.001  # 60 ms
    job = track(total_steps=100, trained_steps=40)
    TrackedJob.objects.filter(pk=job.pk).update(progress_changed_at=timezone.now() - dt.timedelta(seconds=1))
    for _ in range(3):
        refreshed(job)
    assert job.events.filter(kind="stalled").count() == 1
    assert TrackedJob.objects.get(pk=job.pk).stalled_at is not None


def test_progress_clears_a_stall_and_a_new_stall_is_reported_again(track, fake_api, settings, alice_client):
    settings.FTDASH_STALL_MINUTES = 10
    job = track(total_steps=100, trained_steps=40)
    move_back(job, 11)
    refreshed(job)
    assert TrackedJob.objects.get(pk=job.pk).stalled_at is not None

    fake_api.update_job(job.job_id, trained_steps=41)
    refreshed(job)
    job.refresh_from_db()
    assert job.stalled_at is None
    assert job.events.filter(kind="stalled").count() == 1
    assert job.job_id not in alice_client.get("/?status=stalled").content.decode()
    assert "badge-stalled" not in alice_client.get("/").content.decode()

    move_back(job, 11)
    refreshed(job)
    assert job.events.filter(kind="stalled").count() == 2


def test_a_job_queued_longer_than_the_workspace_allows_is_stalled(track, alice, alice_client):
    workspace = alice.personal_workspace
    workspace.queue_stall_minutes = 60
    workspace.save()
    waiting = track(status="queued")
    patient = track(status="queued")
    move_back(waiting, 61)
    move_back(patient, 59)
    for _ in range(3):
        refreshed(waiting)
        refreshed(patient)

    [stall] = TrackedJob.objects.get(pk=waiting.pk).events.filter(kind="stalled")
    assert stall.status == "queued" and stall.message == "Still queued after 61 min"
    assert TrackedJob.objects.get(pk=patient.pk).stalled_at is None
    stalled = alice_client.get("/?status=stalled").content.decode()
    assert waiting.job_id in stalled and patient.job_id not in stalled


def test_a_finished_job_never_stalls(track, fake_api):
    job = track(total_steps=100, trained_steps=40)
    fake_api.update_job(job.job_id, status="cancelled")
    refreshed(job)
    move_back(job, 10_000)
    refreshed(job)
    assert not job.events.filter(kind="stalled").exists()
