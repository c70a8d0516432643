"""Tracked jobs' snapshots: fetched first, refreshed at most once per interval, never lost."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.db import connection
from django.utils import timezone

from jobs import services
from jobs.models import ApiToken, TrackedJob
from jobs.sync import refresh
from jobs.tokenfactory import ApiUnavailable, JobNotFound, TokenRejected
from tests.support.accounts import ALICE_SECRET, track_remote_job
from tests.support.tracked_jobs import age, poll
from tests.support.waiting import wait_for


@pytest.fixture(autouse=True)
def quick_settings(settings):
    settings.FTDASH_API_RETRIES = 0
    settings.FTDASH_API_READ_TIMEOUT = 1.0
    settings.FTDASH_REFRESH_SECONDS = 5
    settings.FTDASH_QUEUED_REFRESH_SECONDS = 30
    settings.FTDASH_RETRY_AFTER_CAP_SECONDS = 300


def track(fake_api, alice, token, **fields) -> TrackedJob:
    """Add a job to the fake API and track it in alice's workspace; forget the setup calls."""
    job = track_remote_job(fake_api, alice, token, **fields)
    fake_api.reset_calls()
    return job


def calls(fake_api, job: TrackedJob) -> int:
    return len(fake_api.calls_for(job.job_id))


# ---------------------------------------------------------------------------- tracking


def test_tracking_a_job_stores_its_first_snapshot(fake_api, alice, alice_token):
    remote = fake_api.add_job(total_steps=100, trained_steps=25, suffix="my-run")

    job = services.job_track(
        workspace=alice.personal_workspace, token=alice_token, job_id=f" {remote['id']} ", user=alice
    )

    job.refresh_from_db()
    assert job.job_id == remote["id"]
    assert job.status == "running"
    assert job.snapshot["trained_steps"] == 25 and job.details.suffix == "my-run"
    assert job.details.progress_percent == 25
    assert job.refresh_error == ""
    assert job.fetched_at == job.checked_at
    assert calls(fake_api, job) == 1


def test_tracking_a_job_the_api_does_not_know_saves_nothing(fake_api, alice, alice_token):
    with pytest.raises(JobNotFound):
        services.job_track(
            workspace=alice.personal_workspace,
            token=alice_token,
            job_id="ftjob-00000000000000000000000000000000",
            user=alice,
        )

    assert TrackedJob.objects.count() == 0


def test_tracking_with_a_rejected_token_saves_nothing_and_marks_the_token(fake_api, alice, alice_token):
    remote = fake_api.add_job()
    fake_api.revoke_token(ALICE_SECRET)

    with pytest.raises(TokenRejected) as caught:
        services.job_track(workspace=alice.personal_workspace, token=alice_token, job_id=remote["id"], user=alice)

    assert ALICE_SECRET not in caught.value.message
    assert TrackedJob.objects.count() == 0
    alice_token.refresh_from_db()
    assert alice_token.last_check_ok is False
    assert "rejected" in alice_token.last_check_message


def test_tracking_while_the_api_is_down_saves_nothing(fake_api, alice, alice_token):
    remote = fake_api.add_job()
    fake_api.set_down(True)

    with pytest.raises(ApiUnavailable):
        services.job_track(workspace=alice.personal_workspace, token=alice_token, job_id=remote["id"], user=alice)

    assert TrackedJob.objects.count() == 0


# ---------------------------------------------------------------------------- refresh_if_due


def test_a_fresh_snapshot_is_served_without_asking_the_api(fake_api, alice, alice_token):
    job = track(fake_api, alice, alice_token, total_steps=100, steps_per_call=10)

    for _ in range(3):
        polled = poll(job)

    assert calls(fake_api, job) == 0
    assert polled.snapshot["trained_steps"] == 10


def test_a_due_snapshot_is_refreshed_with_new_progress(fake_api, alice, alice_token):
    job = track(fake_api, alice, alice_token, total_steps=100, steps_per_call=10)
    assert job.snapshot["trained_steps"] == 10
    TrackedJob.objects.filter(pk=job.pk).update(refresh_error="Token Factory is unavailable right now (HTTP 503).")
    age(job, seconds=6)
    before = timezone.now()

    polled = poll(job)

    assert calls(fake_api, job) == 1
    stored = TrackedJob.objects.get(pk=job.pk)
    for current in (polled, stored):
        assert current.snapshot["trained_steps"] == 20
        assert current.details.progress_percent == 20
        assert current.refresh_error == ""
        assert current.checked_at >= before and current.fetched_at >= before


def test_a_job_that_finishes_is_stored_as_finished(fake_api, alice, alice_token):
    job = track(fake_api, alice, alice_token, total_steps=100, steps_per_call=10)
    fake_api.update_job(job.job_id, status="succeeded", trained_steps=100)
    age(job, seconds=6)

    polled = poll(job)

    assert polled.status == "succeeded" and polled.is_terminal
    assert TrackedJob.objects.get(pk=job.pk).details.progress_percent == 100


def test_a_failed_refresh_keeps_the_old_snapshot_and_says_why(fake_api, alice, alice_token):
    job = track(fake_api, alice, alice_token, total_steps=100, trained_steps=30)
    old_fetched_at = job.fetched_at
    fake_api.fail_next("500", job_id=job.job_id)
    age(job, seconds=6)
    before = timezone.now()

    poll(job)

    stored = TrackedJob.objects.get(pk=job.pk)
    assert calls(fake_api, job) == 1
    assert stored.snapshot["trained_steps"] == 30 and stored.status == "running"
    assert stored.fetched_at == old_fetched_at
    assert stored.checked_at >= before
    assert "unavailable" in stored.refresh_error and "HTTP 500" in stored.refresh_error
    assert ALICE_SECRET not in stored.refresh_error
    assert "<" not in stored.refresh_error and "Traceback" not in stored.refresh_error

    poll(job)  # the next poll within the interval does not hammer a failing API
    assert calls(fake_api, job) == 1


@pytest.mark.parametrize("kind", ["html", "502", "timeout", "reset"])
def test_a_refresh_that_gets_garbage_keeps_the_old_snapshot(fake_api, alice, alice_token, settings, kind):
    job = track(fake_api, alice, alice_token, total_steps=100, trained_steps=30)
    # Only the refresh under test has a short read timeout, and its answer ("timeout") comes
    # far later than that, however slow the machine.
    settings.FTDASH_API_READ_TIMEOUT = 0.5
    fake_api.fail_next(kind, job_id=job.job_id, delay=60)
    age(job, seconds=6)

    poll(job)

    stored = TrackedJob.objects.get(pk=job.pk)
    assert stored.snapshot["trained_steps"] == 30
    assert stored.refresh_error
    assert "<html" not in stored.refresh_error


@pytest.mark.parametrize("kind", ["not_json", "wrong_shape", "missing_fields"])
def test_a_refresh_answer_that_cannot_be_parsed_keeps_the_old_snapshot(fake_api, alice, alice_token, kind):
    job = track(fake_api, alice, alice_token, total_steps=100, trained_steps=30)
    old_fetched_at = job.fetched_at
    fake_api.fail_next(kind, job_id=job.job_id)  # a 200 whose body is not a job ftdash can read
    age(job, seconds=6)
    before = timezone.now()

    poll(job)  # must not raise: the page polls this

    stored = TrackedJob.objects.get(pk=job.pk)
    assert calls(fake_api, job) == 1
    assert stored.snapshot["trained_steps"] == 30 and stored.snapshot["id"] == job.job_id
    assert stored.fetched_at == old_fetched_at  # "updated …" still tells when the data is from
    assert stored.refresh_error.startswith("Token Factory") and stored.consecutive_failures == 1
    assert stored.checked_at >= before
    poll(job)  # backing off: the next poll within the interval does not ask again
    assert calls(fake_api, job) == 1


def test_an_absurd_but_well_formed_value_is_stored_and_the_page_still_renders(
    fake_api, alice, alice_token, alice_client
):
    """The tolerant parser's side of the line: valid JSON with a value out of any range is an
    answer ftdash can read, so it is stored, and the pages must cope with it."""
    job = track(fake_api, alice, alice_token, total_steps=100, trained_steps=30)
    fake_api.update_job(job.job_id, estimated_finish=10**400, trained_steps=31)
    age(job, seconds=6)

    poll(job)

    stored = TrackedJob.objects.get(pk=job.pk)
    assert stored.snapshot["trained_steps"] == 31 and stored.refresh_error == ""
    page = alice_client.get(f"/jobs/{job.pk}/")
    assert page.status_code == 200 and 'aria-valuenow="31"' in page.content.decode()  # 31 of 100 steps


def test_a_successful_refresh_clears_an_earlier_error(fake_api, alice, alice_token):
    job = track(fake_api, alice, alice_token, total_steps=100, steps_per_call=10)
    fake_api.fail_next("503", job_id=job.job_id)
    age(job, seconds=6)
    poll(job)
    assert TrackedJob.objects.get(pk=job.pk).refresh_error

    age(job, seconds=11)  # one failure doubles the 5 s interval
    poll(job)

    stored = TrackedJob.objects.get(pk=job.pk)
    assert stored.refresh_error == ""
    assert stored.snapshot["trained_steps"] == 20


# ---------------------------------------------------------------------------- terminal jobs


@pytest.mark.parametrize("status", ["succeeded", "failed", "cancelled"])
def test_a_finished_job_is_never_refetched_by_polling(fake_api, alice, alice_token, status):
    job = track(fake_api, alice, alice_token, status=status, total_steps=10, trained_steps=10)
    assert job.is_terminal
    age(job, seconds=86_400)

    for _ in range(3):
        poll(job)

    assert calls(fake_api, job) == 0


@pytest.mark.parametrize("status", ["succeeded", "failed", "cancelled"])
def test_refresh_now_refetches_even_a_finished_job(fake_api, alice, alice_token, status):
    job = track(fake_api, alice, alice_token, status=status, total_steps=10, trained_steps=10)
    fake_api.update_job(job.job_id, suffix="renamed-upstream")

    refreshed = refresh.refresh_now(TrackedJob.objects.get(pk=job.pk))

    assert calls(fake_api, job) == 1
    assert refreshed.details.suffix == "renamed-upstream"
    assert TrackedJob.objects.get(pk=job.pk).snapshot["suffix"] == "renamed-upstream"


def test_refresh_now_fetches_a_fresh_running_job(fake_api, alice, alice_token):
    job = track(fake_api, alice, alice_token, total_steps=100, steps_per_call=10)

    refresh.refresh_now(TrackedJob.objects.get(pk=job.pk))

    assert calls(fake_api, job) == 1
    assert TrackedJob.objects.get(pk=job.pk).snapshot["trained_steps"] == 20


# ---------------------------------------------------------------------------- rate limits and tokens


def test_a_rate_limit_pauses_every_job_of_that_token_until_retry_after(fake_api, alice, alice_token):
    job = track(fake_api, alice, alice_token, total_steps=100, trained_steps=30)
    other = track(fake_api, alice, alice_token, total_steps=100, trained_steps=50)
    fake_api.fail_next("429", job_id=job.job_id, retry_after=60)
    age(job, seconds=6)
    before = timezone.now()

    poll(job)

    token = ApiToken.objects.get(pk=alice_token.pk)
    assert token.rate_limited_until is not None
    assert before + dt.timedelta(seconds=58) <= token.rate_limited_until <= timezone.now() + dt.timedelta(seconds=61)
    stored = TrackedJob.objects.get(pk=job.pk)
    assert "rate-limiting" in stored.refresh_error
    assert stored.snapshot["trained_steps"] == 30
    assert calls(fake_api, job) == 1

    # Due again, and another job of the same token is due too: neither asks the API.
    age(job, seconds=6)
    age(other, seconds=6)
    poll(job)
    poll(other)
    refresh.refresh_now(TrackedJob.objects.get(pk=other.pk))

    assert calls(fake_api, job) == 1
    assert calls(fake_api, other) == 0
    assert "rate-limiting" in TrackedJob.objects.get(pk=other.pk).refresh_error
    assert TrackedJob.objects.get(pk=other.pk).snapshot["trained_steps"] == 50

    # Once the wait is over, refreshing resumes.
    ApiToken.objects.filter(pk=alice_token.pk).update(rate_limited_until=timezone.now() - dt.timedelta(seconds=1))
    age(other, seconds=6)
    poll(other)
    assert calls(fake_api, other) == 1
    assert TrackedJob.objects.get(pk=other.pk).refresh_error == ""


def test_a_rate_limit_is_capped(fake_api, alice, alice_token, settings):
    settings.FTDASH_RETRY_AFTER_CAP_SECONDS = 20
    job = track(fake_api, alice, alice_token)
    fake_api.fail_next("429", job_id=job.job_id, retry_after=3600)
    age(job, seconds=6)

    poll(job)

    until = ApiToken.objects.get(pk=alice_token.pk).rate_limited_until
    assert until <= timezone.now() + dt.timedelta(seconds=21)


def test_a_rejected_token_is_marked_not_ok(fake_api, alice, alice_token):
    job = track(fake_api, alice, alice_token, total_steps=100, trained_steps=30)
    fake_api.revoke_token(ALICE_SECRET)
    age(job, seconds=6)

    poll(job)

    token = ApiToken.objects.get(pk=alice_token.pk)
    assert token.last_check_ok is False
    assert "rejected" in token.last_check_message
    assert token.last_checked_at is not None
    stored = TrackedJob.objects.get(pk=job.pk)
    assert "rejected" in stored.refresh_error
    assert ALICE_SECRET not in stored.refresh_error
    assert stored.snapshot["trained_steps"] == 30


def test_a_job_whose_token_was_deleted_says_so_without_calling(fake_api, alice, alice_token):
    job = track(fake_api, alice, alice_token, total_steps=100, trained_steps=30)
    ApiToken.objects.filter(pk=alice_token.pk).delete()
    age(job, seconds=6)

    poll(job)
    refresh.refresh_now(TrackedJob.objects.get(pk=job.pk))

    assert fake_api.calls == []
    stored = TrackedJob.objects.get(pk=job.pk)
    assert stored.token is None
    assert "deleted" in stored.refresh_error
    assert stored.snapshot["trained_steps"] == 30


# ---------------------------------------------------------------------------- intervals


def test_queued_jobs_are_refreshed_less_often(fake_api, alice, alice_token):
    queued = track(fake_api, alice, alice_token, queued_for_seconds=600, total_steps=100)
    running = track(fake_api, alice, alice_token, total_steps=100)
    assert queued.status == "queued"
    assert refresh.base_interval("queued") == dt.timedelta(seconds=30)
    assert refresh.base_interval("validating_files") == dt.timedelta(seconds=30)
    assert refresh.base_interval("running") == dt.timedelta(seconds=5)

    age(queued, seconds=10)
    age(running, seconds=10)
    poll(queued)
    poll(running)
    assert calls(fake_api, queued) == 0
    assert calls(fake_api, running) == 1

    age(queued, seconds=31)
    poll(queued)
    assert calls(fake_api, queued) == 1


def test_an_unknown_status_is_refreshed_like_a_running_job(fake_api, alice, alice_token):
    job = track(fake_api, alice, alice_token, status="paused_by_admin")
    assert job.status == "paused_by_admin"
    age(job, seconds=6)

    poll(job)

    assert calls(fake_api, job) == 1


def test_the_refresh_interval_follows_settings(fake_api, alice, alice_token, settings):
    settings.FTDASH_REFRESH_SECONDS = 60
    job = track(fake_api, alice, alice_token)
    age(job, seconds=30)

    poll(job)
    assert calls(fake_api, job) == 0

    age(job, seconds=61)
    poll(job)
    assert calls(fake_api, job) == 1


# ---------------------------------------------------------------------------- single flight


def test_several_viewers_polling_in_one_interval_cause_at_most_one_call(fake_api, alice, alice_token):
    job = track(fake_api, alice, alice_token, total_steps=1000, steps_per_call=1)
    age(job, seconds=6)

    for _viewer in range(6):
        poll(job)

    assert calls(fake_api, job) == 1


def test_a_viewer_holding_a_stale_copy_does_not_refetch_what_another_just_refreshed(fake_api, alice, alice_token):
    job = track(fake_api, alice, alice_token, total_steps=1000, steps_per_call=10)
    age(job, seconds=6)
    stale_copy = TrackedJob.objects.get(pk=job.pk)  # loaded before the other viewer's refresh
    poll(job)
    assert calls(fake_api, job) == 1

    shown = refresh.refresh_if_due(stale_copy)

    assert calls(fake_api, job) == 1
    assert shown.snapshot["trained_steps"] == 20  # and it shows the newer snapshot


@pytest.mark.django_db(transaction=True)
def test_concurrent_polls_of_a_due_job_make_exactly_one_upstream_call(fake_api, alice, alice_token, settings):
    # The default test database is SQLite in memory with a shared cache, where concurrent writers
    # get "database table is locked" at once instead of waiting as on a database file, so there
    # the lock lives in a (thread-shared, atomic) memory cache. On the PostgreSQL and Redis legs
    # the configured cache is used as it is. The single-flight logic under test is the same.
    if connection.vendor == "sqlite" and connection.is_in_memory_db():
        settings.CACHES = {
            "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "single-flight"}
        }
    settings.FTDASH_API_READ_TIMEOUT = 60  # the held call below must not time out
    job = track(fake_api, alice, alice_token, total_steps=1000, steps_per_call=10)
    age(job, seconds=6)
    release = fake_api.hold_next(job_id=job.job_id)  # keeps the first call in flight until released
    start = threading.Barrier(8)
    errors: list[BaseException] = []

    def viewer():
        try:
            start.wait(timeout=5)
            poll(job)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=viewer) for _ in range(8)]
    for thread in threads:
        thread.start()
    try:
        wait_for(lambda: calls(fake_api, job) == 1, what="the first call")
        # The other seven see the refresh in flight and show what they have, without waiting.
        wait_for(lambda: sum(thread.is_alive() for thread in threads) == 1, what="the other viewers")
    finally:
        release.set()
    for thread in threads:
        thread.join(timeout=60)

    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    assert calls(fake_api, job) == 1
    stored = TrackedJob.objects.get(pk=job.pk)
    assert stored.snapshot["trained_steps"] == 20
    assert stored.refresh_error == ""

    # The lock is released: the next due poll refreshes again.
    age(job, seconds=6)
    poll(job)
    assert calls(fake_api, job) == 2
