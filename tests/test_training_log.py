"""A job's events and checkpoints: fetched beside the snapshot, only what is new, kept locally,
shown on the job page (escaped, filterable, paged) with a checkpoints table and curves."""

from __future__ import annotations

import datetime as dt
import re
import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from jobs import refresh, training_log
from jobs.models import TrackedJob, TrainingCheckpoint, TrainingEvent
from tests.conftest import track_remote_job


@pytest.fixture(autouse=True)
def quick_settings(settings):
    settings.FTDASH_API_RETRIES = 0
    settings.FTDASH_API_READ_TIMEOUT = 2.0
    settings.FTDASH_REFRESH_SECONDS = 5
    settings.FTDASH_QUEUED_REFRESH_SECONDS = 30


@pytest.fixture(autouse=True)
def fresh_cache(db):
    from django.core.cache import caches

    caches["default"].clear()
    caches["rendered"].clear()


def track(fake_api, alice, token, **fields) -> TrackedJob:
    job = track_remote_job(fake_api, alice, token, **fields)
    fake_api.reset_calls()
    return job


def age(job: TrackedJob, seconds: float = 60) -> None:
    """Pretend the last refresh attempt was `seconds` ago, so the job is due."""
    TrackedJob.objects.filter(pk=job.pk).update(checked_at=timezone.now() - dt.timedelta(seconds=seconds))


def poll(job: TrackedJob) -> TrackedJob:
    return refresh.refresh_if_due(TrackedJob.objects.get(pk=job.pk))


def calls_to(fake_api, job: TrackedJob, what: str) -> list:
    return [call for call in fake_api.calls_for(job.job_id) if call.path.endswith("/" + what)]


def stored_messages(job: TrackedJob) -> list[str]:
    return list(TrainingEvent.objects.filter(job=job).order_by("created_at", "pk").values_list("message", flat=True))


def add_events(fake_api, job: TrackedJob, n: int, *, later: int = 10, prefix: str = "step") -> None:
    """`n` events a second apart, starting `later` seconds from now (after the seeded ones)."""
    start = int(time.time()) + later
    for i in range(n):
        fake_api.add_event(job.job_id, f"{prefix} {i}", created_at=start + i)


# ---------------------------------------------------------------------------- events


def test_a_refresh_stores_the_jobs_events_once_each(fake_api, alice, alice_token):
    job = track(fake_api, alice, alice_token, total_steps=100, trained_steps=10)
    age(job)
    poll(job)

    messages = stored_messages(job)
    assert messages[0].startswith("Created fine-tuning job")
    assert "Fine-tuning job started" in messages
    assert len(calls_to(fake_api, job, "events")) == 1

    age(job)
    poll(job)
    assert stored_messages(job) == messages  # nothing new, nothing twice


@pytest.mark.parametrize("newest_first", [False, True], ids=["oldest-first", "newest-first"])
def test_events_are_read_across_pages_and_then_only_what_is_new(fake_api, alice, alice_token, newest_first):
    fake_api.set_events_order(newest_first=newest_first)
    job = track(fake_api, alice, alice_token, total_steps=100, trained_steps=10)
    add_events(fake_api, job, 250)  # three pages of 100 with the seeded ones
    age(job)
    poll(job)

    messages = stored_messages(job)
    assert len(messages) == 253
    assert messages[-250:] == [f"step {i}" for i in range(250)]
    assert len(calls_to(fake_api, job, "events")) == 3

    fake_api.reset_calls()
    add_events(fake_api, job, 120, later=1000, prefix="later")
    age(job)
    poll(job)
    assert stored_messages(job)[-120:] == [f"later {i}" for i in range(120)]
    assert len(stored_messages(job)) == 373
    # Only the new ones were read: two pages, not four.
    assert len(calls_to(fake_api, job, "events")) == 2

    fake_api.reset_calls()
    age(job)
    poll(job)
    assert len(calls_to(fake_api, job, "events")) == 1  # a steady sync is one call
    assert len(stored_messages(job)) == 373


def test_event_levels_are_named_alike_and_long_messages_are_cut(fake_api, alice, alice_token):
    job = track(fake_api, alice, alice_token, total_steps=100, trained_steps=10)
    fake_api.add_event(job.job_id, "x" * 20_000, level="warn")
    fake_api.add_event(job.job_id, "broken", level="ERROR")
    age(job)
    poll(job)

    long, broken = TrainingEvent.objects.filter(job=job).order_by("-pk")[:2][::-1]
    assert long.level == "warning" and len(long.message) == training_log.MAX_MESSAGE_CHARS
    assert broken.level == "error"


def test_events_of_a_finished_job_are_fetched_once_more_and_never_again(fake_api, alice, alice_token):
    job = track(fake_api, alice, alice_token, total_steps=100, trained_steps=10)
    age(job)
    poll(job)
    fake_api.add_event(job.job_id, "last words before the end")
    fake_api.update_job(job.job_id, status="succeeded", trained_steps=100)
    fake_api.add_checkpoint(job.job_id, step_number=100)
    age(job)
    job = poll(job)

    assert job.status == "succeeded"
    assert "last words before the end" in stored_messages(job)
    assert "Fine-tuning job successfully completed" in stored_messages(job)
    assert TrainingCheckpoint.objects.filter(job=job, step=100).exists()

    fake_api.reset_calls()
    fake_api.add_event(job.job_id, "said after the final read")
    for _ in range(3):
        refresh.refresh_now(TrackedJob.objects.get(pk=job.pk))
        poll(job)
        age(job)
    assert calls_to(fake_api, job, "events") == [] and calls_to(fake_api, job, "checkpoints") == []
    assert "said after the final read" not in stored_messages(job)


def test_a_job_tracked_after_it_ended_gets_its_log_on_the_first_view(fake_api, alice, alice_token, alice_client):
    job = track(fake_api, alice, alice_token, status="succeeded", total_steps=100, trained_steps=100)
    fake_api.add_checkpoint(job.job_id, step_number=100)
    fake_api.reset_calls()

    for _ in range(3):
        assert alice_client.get(reverse("job_detail", args=[job.pk])).status_code == 200

    assert "Fine-tuning job successfully completed" in stored_messages(job)
    assert len(calls_to(fake_api, job, "events")) == 1
    assert len(calls_to(fake_api, job, "checkpoints")) == 1


def test_a_failing_events_endpoint_keeps_the_snapshot(fake_api, alice, alice_token):
    job = track(fake_api, alice, alice_token, total_steps=100, trained_steps=10)
    fake_api.set_training_log(supported=False)
    fake_api.advance(job.job_id, 5)
    age(job)
    job = poll(job)

    assert job.snapshot["trained_steps"] == 15
    assert job.refresh_error == ""
    assert TrainingEvent.objects.filter(job=job).count() == 0

    # An API without the endpoint is not asked again at every refresh.
    fake_api.reset_calls()
    age(job)
    poll(job)
    assert calls_to(fake_api, job, "events") == []


def test_twenty_viewers_for_a_minute_cost_one_events_and_one_checkpoints_call_per_interval(
    fake_api, alice, alice_token, settings, client
):
    """Each viewer polls every few seconds; refreshes (and with them the log) stay single-flight."""
    settings.FTDASH_REFRESH_SECONDS = 5
    job = track(fake_api, alice, alice_token, total_steps=1000, trained_steps=10)
    fake_api.add_checkpoint(job.job_id, step_number=10)
    client.force_login(alice)
    url = reverse("job_live", args=[job.pk])
    fake_api.reset_calls()

    intervals = 0
    for _second in range(0, 60, 5):  # a simulated minute: each of its 12 intervals comes due
        age(job, 6)
        intervals += 1
        for _viewer in range(20):
            assert client.get(url, {"v": f"{job.pk}.stale"}).status_code in (200, 204)

    events = calls_to(fake_api, job, "events")
    checkpoints = calls_to(fake_api, job, "checkpoints")
    assert len(events) <= intervals
    assert len(checkpoints) == 1  # the slower interval (60 s) only once within the minute
    assert len([c for c in fake_api.calls_for(job.job_id) if c.path.endswith(job.job_id)]) == intervals


# ---------------------------------------------------------------------------- checkpoints


def test_checkpoints_are_stored_with_their_metrics_and_read_again_when_an_epoch_ends(fake_api, alice, alice_token):
    # 10 epochs of 10 steps: a checkpoint per epoch.
    job = track(fake_api, alice, alice_token, total_steps=100, trained_steps=5)
    age(job)
    poll(job)
    assert TrainingCheckpoint.objects.filter(job=job).count() == 0

    fake_api.advance(job.job_id, 5)
    fake_api.add_checkpoint(job.job_id, metrics={"train_loss": 0.9, "valid_loss": float("nan")})
    fake_api.reset_calls()
    age(job)
    poll(job)  # steps 5 → 10 crossed an epoch: asked again within the slower interval

    assert len(calls_to(fake_api, job, "checkpoints")) == 1
    checkpoint = TrainingCheckpoint.objects.get(job=job)
    assert checkpoint.step == 10
    assert checkpoint.metrics["train_loss"] == 0.9
    assert checkpoint.metrics["valid_loss"] == "NaN"
    assert checkpoint.fine_tuned_model_checkpoint.endswith("ckpt-step-10")

    fake_api.advance(job.job_id, 3)
    fake_api.reset_calls()
    age(job)
    poll(job)  # no epoch crossed, within the minute: not asked
    assert calls_to(fake_api, job, "checkpoints") == []


def test_many_checkpoints_are_read_across_pages(fake_api, alice, alice_token):
    job = track(fake_api, alice, alice_token, total_steps=1000, trained_steps=5)
    for step in range(1, 251):
        fake_api.add_checkpoint(job.job_id, step_number=step, metrics={"train_loss": 1 / step})
    age(job)
    poll(job)

    steps = list(TrainingCheckpoint.objects.filter(job=job).values_list("step", flat=True))
    assert steps == list(range(1, 251))
    assert len(calls_to(fake_api, job, "checkpoints")) == 3
