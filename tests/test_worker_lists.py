"""The worker reads a token's due jobs from its job list (issue 9, item 7).

One paged `GET /v1/fine_tuning/jobs` per token and interval stands in for a GET per job; what
the list does not give (older pages, entries without progress fields, an API without the list)
is asked for one by one. Every guarantee of the one-by-one worker holds: one call per job and
interval at most, counting the list; pages leave jobs the worker is reading alone; a 429 pauses
the token; each finish is notified once. All over real HTTP against the fake Token Factory.
"""

from __future__ import annotations

import datetime as dt
import io
import threading

import pytest
from django.core import mail
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from jobs import services
from jobs.models import ApiToken, JobEvent, NotificationChannel, TrackedJob, TrainingCheckpoint
from jobs.sync import refresh
from tests.support.accounts import ALICE_SECRET, track_remote_job
from tests.support.tracked_jobs import age

LIST_PATH = "/v1/fine_tuning/jobs"
BOB_SECRET = "sk-bob-0123456789-SECRET-bob7"


@pytest.fixture(autouse=True)
def quick_settings(settings):
    settings.FTDASH_API_RETRIES = 0
    settings.FTDASH_API_READ_TIMEOUT = 5.0
    settings.FTDASH_REFRESH_SECONDS = 5
    settings.FTDASH_QUEUED_REFRESH_SECONDS = 30
    settings.FTDASH_MAX_BACKOFF_SECONDS = 900
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


def run_worker() -> str:
    """One round in this process with one refresh thread (see test_worker.run_worker)."""
    out = io.StringIO()
    call_command("poll_jobs", "--once", "--concurrency", "1", "--list-reads", stdout=out, stderr=out)
    return out.getvalue()


def track_many(fake_api, user, token, n: int, *, visible_to: str | None = None, **fields) -> list[TrackedJob]:
    """`n` jobs upstream (seen by the key `visible_to` only, if given), tracked with `token`
    and their current snapshot, as tracking would store it."""
    remote = fake_api.add_jobs(n, token=visible_to, **fields)
    now = timezone.now()
    TrackedJob.objects.bulk_create(
        TrackedJob(
            workspace=user.personal_workspace,
            token=token,
            job_id=body["id"],
            added_by=user,
            snapshot=body,
            status=body["status"],
            fetched_at=now,
            checked_at=now,
        )
        for body in remote
    )
    return list(TrackedJob.objects.filter(job_id__in=[body["id"] for body in remote]))


def list_calls(fake_api, token: str | None = None) -> list:
    return [c for c in fake_api.job_calls if c.path == LIST_PATH and token in (None, c.token)]


def job_gets(fake_api) -> list[str]:
    return [c.job_id for c in fake_api.job_calls if c.job_id]


def stored(job: TrackedJob) -> TrackedJob:
    return TrackedJob.objects.get(pk=job.pk)


@pytest.mark.django_db(transaction=True)
def test_many_running_jobs_of_a_token_are_refreshed_by_one_list_call_per_100_jobs(
    fake_api, alice, alice_token, settings
):
    # A minute's interval, not 5 s: storing 150 jobs can take longer than 5 s on a loaded
    # machine, and the jobs of the first page were then due again at the second round.
    settings.FTDASH_REFRESH_SECONDS = 60
    jobs = track_many(fake_api, alice, alice_token, 150, total_steps=1000, trained_steps=10)
    for job in jobs:
        fake_api.advance(job.job_id, 7)
    age(*jobs, seconds=61)
    fake_api.reset_calls()

    run_worker()

    assert len(list_calls(fake_api)) == 2  # ⌈150 / 100⌉
    assert job_gets(fake_api) == []
    for job in TrackedJob.objects.filter(pk__in=[j.pk for j in jobs]):
        assert job.snapshot["trained_steps"] == 17, job.job_id
        assert job.snapshot["hyperparameters"]["batch_size"] == 32  # the whole object, as a GET gives
        assert (job.refresh_error, job.consecutive_failures, job.claimed_until) == ("", 0, None)

    # Fresh now: the next round asks nothing at all.
    fake_api.reset_calls()
    run_worker()
    assert fake_api.job_calls == []


@pytest.mark.django_db(transaction=True)
def test_a_list_read_also_refreshes_the_tokens_live_jobs_that_were_not_due_yet(fake_api, alice, alice_token):
    """So a token's jobs fall into step, and one read per interval covers them all."""
    due = track_many(fake_api, alice, alice_token, 2, total_steps=1000)
    not_due = track_remote_job(fake_api, alice, alice_token, total_steps=1000)
    finished = track_remote_job(fake_api, alice, alice_token, status="succeeded", total_steps=10, trained_steps=10)
    age(*due, seconds=6)
    fake_api.advance(not_due.job_id, 3)
    fake_api.update_job(finished.job_id, suffix="changed-after-it-finished")
    fake_api.reset_calls()
    before = timezone.now()

    run_worker()

    assert len(list_calls(fake_api)) == 1 and job_gets(fake_api) == []
    assert stored(not_due).snapshot["trained_steps"] == 3 and stored(not_due).checked_at >= before
    # A finished job is never refreshed by itself, from a list or otherwise.
    assert stored(finished).snapshot["suffix"] == ""


@pytest.mark.django_db(transaction=True)
def test_jobs_beyond_the_pages_worth_reading_are_asked_for_one_by_one(fake_api, alice, alice_token):
    old = track_many(fake_api, alice, alice_token, 2, total_steps=1000)
    fake_api.add_jobs(250, status="succeeded", total_steps=10, trained_steps=10)  # nobody tracks these
    new = track_many(fake_api, alice, alice_token, 2, total_steps=1000)
    for job in old + new:
        fake_api.advance(job.job_id, 5)
    age(*old, *new, seconds=6)
    fake_api.reset_calls()

    run_worker()

    # Four due jobs are worth one page plus one more; the two old ones are on the third.
    assert len(list_calls(fake_api)) == 2
    assert sorted(job_gets(fake_api)) == sorted(job.job_id for job in old)
    assert all(stored(job).snapshot["trained_steps"] == 5 for job in old + new)


@pytest.mark.django_db(transaction=True)
def test_a_list_without_progress_fields_never_wipes_a_snapshot_and_is_not_read_again(fake_api, alice, alice_token):
    fake_api.set_job_list(fields={"id", "object", "status", "model", "created_at"})
    jobs = track_many(fake_api, alice, alice_token, 3, total_steps=1000, trained_steps=40)
    for job in jobs:
        fake_api.advance(job.job_id, 2)
    age(*jobs, seconds=6)
    fake_api.reset_calls()

    run_worker()

    assert len(list_calls(fake_api)) == 1
    assert sorted(job_gets(fake_api)) == sorted(job.job_id for job in jobs)
    for job in jobs:
        snapshot = stored(job).snapshot
        assert snapshot["trained_steps"] == 42 and snapshot["total_steps"] == 1000
        assert snapshot["hyperparameters"]["batch_size"] == 32

    age(*jobs, seconds=6)
    fake_api.reset_calls()
    run_worker()
    assert list_calls(fake_api) == [] and len(job_gets(fake_api)) == 3


@pytest.mark.django_db(transaction=True)
def test_an_api_without_the_list_is_asked_job_by_job_and_the_list_is_not_retried_every_round(
    fake_api, alice, alice_token
):
    fake_api.set_job_list(supported=False)
    jobs = track_many(fake_api, alice, alice_token, 4, total_steps=1000)
    for job in jobs:
        fake_api.advance(job.job_id, 9)
    age(*jobs, seconds=6)
    fake_api.reset_calls()

    run_worker()

    assert [c.status for c in list_calls(fake_api)] == [404]
    assert sorted(job_gets(fake_api)) == sorted(job.job_id for job in jobs)
    assert all(stored(job).snapshot["trained_steps"] == 9 and stored(job).refresh_error == "" for job in jobs)

    for _ in range(2):
        age(*jobs, seconds=6)
        fake_api.reset_calls()
        run_worker()
        assert list_calls(fake_api) == [] and len(job_gets(fake_api)) == 4


@pytest.mark.django_db(transaction=True)
def test_a_429_on_the_list_pauses_the_token_and_its_jobs_wait_without_calls(fake_api, alice, alice_token):
    jobs = track_many(fake_api, alice, alice_token, 3, total_steps=1000)
    age(*jobs, seconds=6)
    fake_api.reset_calls()
    fake_api.fail_next("429", retry_after=120)

    run_worker()

    assert [c.status for c in fake_api.job_calls] == [429]  # nothing else was asked with that token
    token = ApiToken.objects.get(pk=alice_token.pk)
    assert token.rate_limited_until > timezone.now() + dt.timedelta(seconds=100)
    for job in jobs:
        job = stored(job)
        assert "rate-limiting this token" in job.refresh_error
        assert job.consecutive_failures == 0 and job.claimed_until is None  # the pause is the backoff

    age(*jobs, seconds=60)
    run_worker()
    assert len(fake_api.job_calls) == 1  # still paused: nobody asked

    ApiToken.objects.filter(pk=alice_token.pk).update(rate_limited_until=timezone.now() - dt.timedelta(seconds=1))
    fake_api.reset_calls()
    run_worker()
    assert len(list_calls(fake_api)) == 1 and job_gets(fake_api) == []
    assert all(stored(job).refresh_error == "" for job in jobs)


@pytest.mark.django_db(transaction=True)
def test_a_failing_list_backs_its_jobs_off_once_then_they_are_asked_for_one_by_one(fake_api, alice, alice_token):
    jobs = track_many(fake_api, alice, alice_token, 3, total_steps=1000)
    age(*jobs, seconds=6)
    fake_api.reset_calls()
    fake_api.fail_next("503")

    run_worker()

    # The one call failed for all of them: no GETs on top of it, each backs off.
    assert [c.status for c in fake_api.job_calls] == [503]
    for job in jobs:
        job = stored(job)
        assert "unavailable right now (HTTP 503)" in job.refresh_error and job.consecutive_failures == 1

    age(*jobs, seconds=11)  # due again after the backoff
    fake_api.reset_calls()
    run_worker()
    assert list_calls(fake_api) == [] and len(job_gets(fake_api)) == 3
    assert all(stored(job).consecutive_failures == 0 for job in jobs)


@pytest.mark.django_db(transaction=True)
def test_a_rejected_token_is_marked_once_and_its_jobs_say_so(fake_api, alice, alice_token, alice_client):
    jobs = track_many(fake_api, alice, alice_token, 3, total_steps=1000)
    age(*jobs, seconds=6)
    fake_api.revoke_token(ALICE_SECRET)
    fake_api.reset_calls()

    run_worker()

    assert [c.status for c in fake_api.job_calls] == [401]
    assert ApiToken.objects.get(pk=alice_token.pk).last_check_ok is False
    page = alice_client.get(f"/jobs/{jobs[0].pk}/").content.decode()
    assert "Token Factory rejected this API token (HTTP 401)" in page


@pytest.mark.django_db(transaction=True)
def test_a_job_that_finishes_on_the_list_is_notified_exactly_once(fake_api, alice, alice_token):
    finishing, running = track_many(fake_api, alice, alice_token, 2, total_steps=100, trained_steps=90)
    NotificationChannel.objects.create(
        workspace=alice.personal_workspace, kind="email", target="alice@example.com", events=["succeeded"]
    )
    fake_api.advance(finishing.job_id, 10)  # reaches total_steps: succeeded
    age(finishing, running, seconds=6)
    fake_api.reset_calls()

    run_worker()

    assert len(list_calls(fake_api)) == 1 and job_gets(fake_api) == []
    assert stored(finishing).status == "succeeded"
    assert len(mail.outbox) == 1 and finishing.job_id in mail.outbox[0].subject

    # Later rounds, a page poll and a "Refresh now" see the same finish: no second notification.
    for _ in range(2):
        age(finishing, running, seconds=6)
        run_worker()
    refresh.refresh_if_due(stored(finishing))
    refresh.refresh_now(stored(finishing))
    run_worker()
    assert len(mail.outbox) == 1
    assert JobEvent.objects.filter(job=finishing, kind=JobEvent.Kind.FINISHED).count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_tokens_are_read_from_two_separate_lists(fake_api, alice, alice_token):
    fake_api.add_token(BOB_SECRET)
    second = services.token_create(workspace=alice.personal_workspace, user=alice, name="second", secret=BOB_SECRET)
    first_jobs = track_many(fake_api, alice, alice_token, 3, visible_to=ALICE_SECRET, total_steps=1000)
    second_jobs = track_many(fake_api, alice, second, 3, visible_to=BOB_SECRET, total_steps=1000)
    for job in first_jobs + second_jobs:
        fake_api.advance(job.job_id, 4)
    age(*first_jobs, *second_jobs, seconds=6)
    fake_api.reset_calls()

    run_worker()

    assert len(list_calls(fake_api, ALICE_SECRET)) == 1 and len(list_calls(fake_api, BOB_SECRET)) == 1
    assert len(fake_api.job_calls) == 2
    assert all(stored(job).snapshot["trained_steps"] == 4 for job in first_jobs + second_jobs)


@pytest.mark.django_db(transaction=True)
def test_a_page_poll_does_not_ask_about_a_job_the_worker_is_reading_from_the_list(fake_api, alice, alice_token):
    jobs = track_many(fake_api, alice, alice_token, 2, total_steps=1000)
    age(*jobs, seconds=6)
    fake_api.reset_calls()
    release = fake_api.hold_next()  # the list call stays in flight until released

    def worker() -> None:
        try:
            run_worker()
        finally:
            connection.close()

    thread = threading.Thread(target=worker)
    thread.start()
    try:
        deadline = timezone.now() + dt.timedelta(seconds=30)
        while not fake_api.job_calls and timezone.now() < deadline:
            threading.Event().wait(0.02)
        assert len(list_calls(fake_api)) == 1
        # The job is due, but claimed by the worker: a page's poll (refresh_if_due) keeps the
        # snapshot and asks nothing.
        polled = refresh.refresh_if_due(stored(jobs[0]))
        assert polled.snapshot == jobs[0].snapshot
        assert job_gets(fake_api) == []
    finally:
        release.set()
        thread.join(timeout=60)
    assert len(fake_api.job_calls) == 1
    assert all(stored(job).claimed_until is None and stored(job).refresh_error == "" for job in jobs)


@pytest.mark.django_db(transaction=True)
def test_a_job_kept_fresh_by_the_list_gets_its_events_while_its_page_is_open_once_per_interval(
    fake_api, alice, alice_token, client
):
    """The list carries no events: the worker reads none for nobody, an open page gets them."""
    watched, unwatched = track_many(fake_api, alice, alice_token, 2, total_steps=1000, trained_steps=10)
    for job in (watched, unwatched):
        fake_api.add_event(job.job_id, "Step 10: loss 1.234 <b>not bold</b>")
    age(watched, unwatched, seconds=6)
    fake_api.reset_calls()

    run_worker()

    assert len(list_calls(fake_api)) == 1
    assert not [c for c in fake_api.calls if c.path.endswith("/events")]  # nobody is looking
    client.force_login(alice)
    for _ in range(5):  # five viewers' polls in one interval
        response = client.get(f"/jobs/{watched.pk}/live/?v={watched.pk}.stale", HTTP_HX_REQUEST="true")
        assert response.status_code == 200
    events_calls = [c for c in fake_api.calls if c.path.endswith("/events")]
    assert [c.job_id for c in events_calls] == [watched.job_id]
    assert "Step 10: loss 1.234 &lt;b&gt;not bold&lt;/b&gt;" in response.content.decode()


@pytest.mark.django_db(transaction=True)
def test_a_job_kept_fresh_by_the_list_gets_its_checkpoints_once_per_epoch_for_its_card(
    fake_api, alice, alice_token, client
):
    """Nobody opens its page, yet its dashboard card's loss sparkline follows the run: the
    worker reads a listed job's checkpoints when an epoch ended (10 epochs of 100 steps here),
    one call per epoch, and no events for nobody."""
    epoch_ended, mid_epoch = track_many(fake_api, alice, alice_token, 2, total_steps=1000, trained_steps=150)
    for job in (epoch_ended, mid_epoch):
        fake_api.add_checkpoint(job.job_id, step_number=100, metrics={"valid_loss": 1.5})
    fake_api.advance(epoch_ended.job_id, 60)  # step 210: the second epoch ended at 200
    fake_api.add_checkpoint(epoch_ended.job_id, step_number=200, metrics={"valid_loss": 0.75})
    fake_api.advance(mid_epoch.job_id, 20)  # step 170: still in the second epoch
    age(epoch_ended, mid_epoch, seconds=6)
    fake_api.reset_calls()

    run_worker()

    assert len(list_calls(fake_api)) == 1 and job_gets(fake_api) == []
    assert [c.job_id for c in fake_api.calls if c.path.endswith("/checkpoints")] == [epoch_ended.job_id]
    assert not [c for c in fake_api.calls if c.path.endswith("/events")]
    assert TrainingCheckpoint.objects.filter(job=epoch_ended).count() == 2
    assert not TrainingCheckpoint.objects.filter(job=mid_epoch).exists()
    client.force_login(alice)
    html = client.get("/").content.decode()
    assert "Valid loss <strong>0.75</strong>" in html
    assert html.count('<svg class="sparkline"') == 1

    # The next round, within the same epoch: no checkpoints call.
    fake_api.advance(epoch_ended.job_id, 10)
    age(epoch_ended, mid_epoch, seconds=6)
    fake_api.reset_calls()
    run_worker()
    assert len(list_calls(fake_api)) == 1
    assert not [c for c in fake_api.calls if c.path.endswith("/checkpoints")]
    assert stored(epoch_ended).details.trained_steps == 220
