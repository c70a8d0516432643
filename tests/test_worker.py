"""The background worker (`manage.py poll_jobs`): refreshes due jobs nobody is looking at,
bounded, backing off, sharing the work with other workers, and stopping cleanly."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from django.core.management import call_command
from django.utils import timezone

from jobs.models import ApiToken, TrackedJob, WorkerHeartbeat
from jobs.sync import refresh
from tests.support.accounts import ALICE_SECRET, track_remote_job
from tests.support.tracked_jobs import age


@pytest.fixture(autouse=True)
def quick_settings(settings):
    settings.FTDASH_API_RETRIES = 0
    settings.FTDASH_API_READ_TIMEOUT = 1.0
    settings.FTDASH_REFRESH_SECONDS = 5
    settings.FTDASH_QUEUED_REFRESH_SECONDS = 30
    settings.FTDASH_MAX_BACKOFF_SECONDS = 900
    # One GET per job, which these tests count; reading jobs from lists: test_worker_lists.py.
    settings.FTDASH_WORKER_LIST_READS = False


track = track_remote_job


def run_worker(*args: str) -> str:
    """One round in this process, with one refresh thread: the test database is an in-memory
    SQLite whose shared cache answers "table is locked" to concurrent writers of one process
    instead of waiting as the real (WAL, busy timeout) database does. Concurrency is tested
    with worker processes on a real database in tests/processes/test_worker.py."""
    out = io.StringIO()
    call_command("poll_jobs", "--once", "--concurrency", "1", *args, stdout=out, stderr=out)
    return out.getvalue()


def calls(fake_api, job: TrackedJob) -> int:
    return len(fake_api.calls_for(job.job_id))


# --- one round ------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_round_refreshes_every_due_unfinished_job_and_nothing_else(fake_api, alice, alice_token):
    due = [track(fake_api, alice, alice_token, steps_per_call=5, total_steps=1000, trained_steps=10) for _ in range(3)]
    fresh = track(fake_api, alice, alice_token, steps_per_call=5, total_steps=1000)
    finished = track(fake_api, alice, alice_token, status="succeeded", total_steps=100, trained_steps=100)
    queued = track(fake_api, alice, alice_token, status="queued")  # due only after 30 s
    for job in due + [finished]:
        age(job, seconds=6)
    age(queued, seconds=10)
    fake_api.reset_calls()
    before = timezone.now()

    run_worker()

    assert [calls(fake_api, job) for job in due] == [1, 1, 1]
    assert calls(fake_api, fresh) == calls(fake_api, finished) == calls(fake_api, queued) == 0
    for job in due:
        job.refresh_from_db()
        assert job.snapshot["trained_steps"] == 20  # 15 when tracked: the new snapshot is stored
        assert job.refresh_error == "" and job.claimed_until is None
        assert job.checked_at >= before

    # Just refreshed: the next round has nothing to do.
    fake_api.reset_calls()
    run_worker()
    assert fake_api.calls == []


@pytest.mark.django_db(transaction=True)
def test_a_rate_limited_token_is_not_used_until_its_pause_ends(fake_api, alice, alice_token):
    job = track(fake_api, alice, alice_token, steps_per_call=1, total_steps=1000)
    age(job, seconds=60)
    ApiToken.objects.filter(pk=alice_token.pk).update(rate_limited_until=timezone.now() + dt.timedelta(seconds=30))
    fake_api.reset_calls()

    run_worker()
    assert calls(fake_api, job) == 0

    ApiToken.objects.filter(pk=alice_token.pk).update(rate_limited_until=timezone.now() - dt.timedelta(seconds=1))
    run_worker()
    assert calls(fake_api, job) == 1


@pytest.mark.django_db(transaction=True)
def test_a_429_pauses_the_token_for_the_next_rounds(fake_api, alice, alice_token):
    jobs = [track(fake_api, alice, alice_token, steps_per_call=1, total_steps=1000) for _ in range(2)]
    for job in jobs:
        age(job, seconds=60)
    fake_api.reset_calls()
    fake_api.fail_next("429", retry_after=120)

    run_worker()
    first = len(fake_api.calls)
    assert first == 1  # the 429 paused the token: the other job was not even tried
    assert ApiToken.objects.get(pk=alice_token.pk).rate_limited_until > timezone.now() + dt.timedelta(seconds=100)
    for job in jobs:
        age(job, seconds=60)
    run_worker()
    assert len(fake_api.calls) == first  # nobody asked the API while the token is paused


@pytest.mark.django_db(transaction=True)
def test_a_job_that_keeps_failing_backs_off_exponentially_up_to_the_cap(fake_api, alice, alice_token, client, settings):
    settings.FTDASH_MAX_BACKOFF_SECONDS = 30
    job = track(fake_api, alice, alice_token, steps_per_call=1, total_steps=1000)
    fake_api.fail_next("500", job_id=job.job_id, count=6)
    fake_api.reset_calls()

    # (seconds since the last try, whether the worker calls): 5 s base, doubled per failure, capped at 30 s.
    schedule = [
        (6, True),
        (9, False),
        (11, True),
        (19, False),
        (21, True),
        (29, False),
        (31, True),
        (29, False),
        (31, True),
        (31, True),
    ]
    failures = 0
    for waited, expect_call in schedule:
        age(job, seconds=waited)
        before = calls(fake_api, job)
        run_worker()
        assert calls(fake_api, job) - before == (1 if expect_call else 0), (waited, failures)
        failures += expect_call
        job.refresh_from_db()
        assert job.consecutive_failures == failures
    assert failures == 6
    assert refresh.refresh_interval(job) == dt.timedelta(seconds=30)
    assert "unavailable right now (HTTP 500)" in job.refresh_error

    client.force_login(alice)
    for url in ("/", f"/jobs/{job.pk}/"):
        page = client.get(url).content.decode()
        assert "Token Factory is unavailable right now (HTTP 500)" in page
        assert "6 failed refreshes in a row" in page
        assert "waits 30 s between tries" in page

    # The API recovers (the scripted failures are used up): the next due round refreshes,
    # and the failure count starts over.
    age(job, seconds=31)
    run_worker()
    job.refresh_from_db()
    assert (job.consecutive_failures, job.refresh_error) == (0, "")
    assert "failed refreshes in a row" not in client.get("/").content.decode()


@pytest.mark.django_db(transaction=True)
def test_a_token_the_api_rejects_is_marked_rejected_and_its_jobs_say_so(fake_api, alice, alice_token, client):
    job = track(fake_api, alice, alice_token, steps_per_call=1, total_steps=1000)
    age(job, seconds=6)
    fake_api.revoke_token(ALICE_SECRET)

    run_worker()

    client.force_login(alice)
    tokens_page = client.get("/tokens/").content.decode()
    assert "rejected" in tokens_page and "Token Factory rejected this API token" in tokens_page
    job_page = client.get(f"/jobs/{job.pk}/").content.decode()
    assert "Token Factory rejected this API token (HTTP 401)" in job_page
    assert "Token Factory rejected this API token" in client.get("/").content.decode()


@pytest.mark.django_db(transaction=True)
def test_a_round_keeps_going_through_an_api_outage_and_catches_up(fake_api, alice, alice_token):
    jobs = [track(fake_api, alice, alice_token, steps_per_call=3, total_steps=1000) for _ in range(2)]
    fake_api.set_down(True)
    for attempt in range(1, 3):
        for job in jobs:
            age(job, seconds=3600)
        run_worker()  # no exception: the round records the failure and ends normally
        for job in jobs:
            job.refresh_from_db()
            assert job.consecutive_failures == attempt
            assert "unavailable" in job.refresh_error
    fake_api.set_down(False)
    for job in jobs:
        age(job, seconds=3600)
    run_worker()
    for job in jobs:
        job.refresh_from_db()
        assert (job.consecutive_failures, job.refresh_error) == (0, "")
        assert job.snapshot["trained_steps"] > 0


@pytest.mark.django_db(transaction=True)
def test_jobs_waiting_in_the_queue_do_not_keep_a_running_job_from_being_refreshed(fake_api, alice, alice_token):
    """16 queued jobs (refreshed every 30 s) checked 10 s ago, one running job checked 6 s ago:
    the running job is due, the queued ones are not. A worker with one thread claims up to 4
    jobs a round, so it looks at the 16 oldest candidates only, all queued, none due."""
    waiting = [track(fake_api, alice, alice_token, status="queued") for _ in range(16)]
    running = track(fake_api, alice, alice_token, steps_per_call=1, total_steps=1000)
    for job in waiting:
        age(job, seconds=10)
    age(running, seconds=6)
    fake_api.reset_calls()

    for _ in range(3):
        run_worker()

    assert [calls(fake_api, job) for job in waiting] == [0] * 16
    assert calls(fake_api, running) == 1, "a due running job was not refreshed by the worker"


# --- claims ---------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_claims_never_hand_the_same_job_to_two_workers(fake_api, alice, alice_token):
    jobs = [track(fake_api, alice, alice_token, steps_per_call=1, total_steps=1000) for _ in range(5)]
    for job in jobs:
        age(job, seconds=60)
    fake_api.reset_calls()

    first = refresh.claim_due_jobs(limit=3, lease_seconds=60)
    second = refresh.claim_due_jobs(limit=3, lease_seconds=60)
    third = refresh.claim_due_jobs(limit=3, lease_seconds=60)

    assert len(first) == 3 and len(second) == 2 and third == []
    assert not {j.pk for j in first} & {j.pk for j in second}
    assert {j.pk for j in first + second} == {j.pk for j in jobs}

    # A page does not refresh a job a worker is refreshing ...
    claimed = TrackedJob.objects.get(pk=first[0].pk)
    assert not refresh.is_due(claimed)
    refresh.refresh_if_due(claimed)
    assert fake_api.calls == []
    # ... the worker does, and gives the claim back.
    refresh.refresh_claimed(first[0])
    claimed.refresh_from_db()
    assert calls(fake_api, claimed) == 1 and claimed.claimed_until is None
    # A claim whose worker died runs out, and the job is claimable again.
    TrackedJob.objects.filter(pk=second[0].pk).update(claimed_until=timezone.now() - dt.timedelta(seconds=1))
    assert [j.pk for j in refresh.claim_due_jobs(limit=3, lease_seconds=60)] == [second[0].pk]


# --- heartbeat ------------------------------------------------------------------------------


def test_the_footer_says_whether_a_worker_was_seen(alice_client):
    page = alice_client.get("/").content.decode()
    assert "No background worker seen:" in page and "Background worker active" not in page

    WorkerHeartbeat.objects.create(name="host:1", last_seen=timezone.now() - dt.timedelta(minutes=10))
    page = alice_client.get("/").content.decode()
    assert "No background worker seen since 10 min ago" in page

    WorkerHeartbeat.objects.create(name="host:2", last_seen=timezone.now())
    page = alice_client.get("/").content.decode()
    assert "Background worker active" in page and "No background worker seen" not in page
