"""The background worker (`manage.py poll_jobs`): refreshes due jobs nobody is looking at,
bounded, backing off, sharing the work with other workers, and stopping cleanly."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from django.core.management import call_command
from django.utils import timezone

from jobs.models import ApiToken, TrackedJob, WorkerHeartbeat
from jobs.sync import refresh
from tests.conftest import ALICE_SECRET, track_remote_job
from tests.fake_tokenfactory import FakeTokenFactory
from tests.server_process import ADMIN_PASSWORD, ROOT, ftdash_server, signed_in_session, start_worker, wait_for


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


def age(job: TrackedJob, seconds: float) -> None:
    """Pretend the last refresh attempt was `seconds` ago."""
    TrackedJob.objects.filter(pk=job.pk).update(checked_at=timezone.now() - dt.timedelta(seconds=seconds))


def run_worker(*args: str) -> str:
    """One round in this process, with one refresh thread: the test database is an in-memory
    SQLite whose shared cache answers "table is locked" to concurrent writers of one process
    instead of waiting as the real (WAL, busy timeout) database does. Concurrency is tested
    with worker processes on a real database below."""
    out = io.StringIO()
    call_command("poll_jobs", "--once", "--concurrency", "1", *args, stdout=out, stderr=out)
    return out.getvalue()


def calls(fake_api, job: TrackedJob) -> int:
    return len(fake_api.calls_for(job.job_id))


# --- one round ------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_round_refreshes_every_due_unfinished_job_and_nothing_else(fake_api, alice, alice_token):
    due = [track(fake_api, alice, alice_token, steps_per_call=5, total_steps=1000, trained_steps=10)
           for _ in range(3)]
    fresh = track(fake_api, alice, alice_token, steps_per_call=5, total_steps=1000)
    finished = track(fake_api, alice, alice_token, status="succeeded", total_steps=100, trained_steps=100)
    queued = track(fake_api, alice, alice_token, status="queued")  # due only after 30 s
    for job in due + [finished]:
        age(job, 6)
    age(queued, 10)
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
    age(job, 60)
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
        age(job, 60)
    fake_api.reset_calls()
    fake_api.fail_next("429", retry_after=120)

    run_worker()
    first = len(fake_api.calls)
    assert first == 1  # the 429 paused the token: the other job was not even tried
    assert ApiToken.objects.get(pk=alice_token.pk).rate_limited_until > timezone.now() + dt.timedelta(seconds=100)
    for job in jobs:
        age(job, 60)
    run_worker()
    assert len(fake_api.calls) == first  # nobody asked the API while the token is paused


@pytest.mark.django_db(transaction=True)
def test_a_job_that_keeps_failing_backs_off_exponentially_up_to_the_cap(
    fake_api, alice, alice_token, client, settings
):
    settings.FTDASH_MAX_BACKOFF_SECONDS = 30
    job = track(fake_api, alice, alice_token, steps_per_call=1, total_steps=1000)
    fake_api.fail_next("500", job_id=job.job_id, count=6)
    fake_api.reset_calls()

    # (seconds since the last try, whether the worker calls): 5 s base, doubled per failure, capped at 30 s.
    schedule = [(6, True), (9, False), (11, True), (19, False), (21, True), (29, False), (31, True),
                (29, False), (31, True), (31, True)]
    failures = 0
    for waited, expect_call in schedule:
        age(job, waited)
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
    age(job, 31)
    run_worker()
    job.refresh_from_db()
    assert (job.consecutive_failures, job.refresh_error) == (0, "")
    assert "failed refreshes in a row" not in client.get("/").content.decode()


@pytest.mark.django_db(transaction=True)
def test_a_token_the_api_rejects_is_marked_rejected_and_its_jobs_say_so(fake_api, alice, alice_token, client):
    job = track(fake_api, alice, alice_token, steps_per_call=1, total_steps=1000)
    age(job, 6)
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
            age(job, 3600)
        run_worker()  # no exception: the round records the failure and ends normally
        for job in jobs:
            job.refresh_from_db()
            assert job.consecutive_failures == attempt
            assert "unavailable" in job.refresh_error
    fake_api.set_down(False)
    for job in jobs:
        age(job, 3600)
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
        age(job, 10)
    age(running, 6)
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
        age(job, 60)
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


# --- real worker processes side by side -----------------------------------------------------

WORKER_SECRET = "sk-worker-0123456789-SECRET-wk42"

TRACK_SCRIPT = """
import json, sys
from django.contrib.auth import get_user_model
from jobs import services
from jobs.access import user_memberships
from jobs.models import ApiToken
User = get_user_model()
user = User.objects.filter(username="admin").first()
if user is None:
    user = User.objects.create_superuser("admin", password=%(password)r)
workspace = user_memberships(user)[0].workspace
token = ApiToken.objects.filter(name="main").first() or services.token_create(
    workspace=workspace, user=user, name="main", secret=%(secret)r)
for job_id in %(job_ids)r:
    services.job_track(workspace=workspace, token=token, job_id=job_id, user=user)
"""


@pytest.fixture(scope="module")
def worker_site(tmp_path_factory):
    """A fake API and an ftdash server (its data dir, database and env) for worker processes to
    share: on the PostgreSQL leg a PostgreSQL database, so claims use its row locks for real."""
    tmp = tmp_path_factory.mktemp("workers")
    with FakeTokenFactory() as api, ftdash_server(
        tmp / "data", api_url=api.url, workers=1,
        FTDASH_WORKER_INTERVAL_SECONDS="0.2", FTDASH_REFRESH_SECONDS="1", FTDASH_API_RETRIES="0",
        FTDASH_API_READ_TIMEOUT="30",  # held answers below must not time out
        FTDASH_WORKER_LIST_READS="false",  # one GET per job, which these tests count
    ) as server:
        api.add_token(WORKER_SECRET)
        yield api, server


def track_remote(server, job_ids: list[str]) -> None:
    script = TRACK_SCRIPT % {"password": ADMIN_PASSWORD, "secret": WORKER_SECRET, "job_ids": job_ids}
    server.manage("shell", "-c", textwrap.dedent(script))


def db_rows(server, sql: str, params=()) -> list[tuple]:
    return server.sql(sql, params)


def stored_json(value) -> dict:
    """A JSON column as read back: text from SQLite, already decoded from PostgreSQL."""
    return value if isinstance(value, dict) else json.loads(value)


def never_checked(checked_at) -> bool:
    return str(checked_at).startswith("2000")


def stop(process: subprocess.Popen, signum: int) -> int:
    process.send_signal(signum)
    return process.wait(timeout=60)


def retire_earlier_jobs(server) -> None:
    """Mark the jobs of earlier tests finished, so that no worker refreshes them any more."""
    db_rows(server, "UPDATE jobs_trackedjob SET status = 'cancelled'")


def test_no_more_upstream_calls_in_flight_than_the_concurrency(worker_site):
    """(A worker process on the real database: the in-memory test database refuses concurrent
    writers from threads of one process, see run_worker.)"""
    api, server = worker_site
    retire_earlier_jobs(server)
    remote = [api.add_job(total_steps=1000) for _ in range(6)]
    track_remote(server, [job["id"] for job in remote])
    db_rows(server, "UPDATE jobs_trackedjob SET checked_at = '2000-01-01 00:00:00' WHERE status = 'running'")
    api.reset_calls()
    api.fail_next("timeout", delay=1.0, count=6)  # each answer takes 1 s

    started = time.monotonic()
    result = subprocess.run([sys.executable, "manage.py", "poll_jobs", "--once", "--concurrency", "2"],
                            cwd=ROOT, env=server.env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr

    assert len(api.job_calls) == 6, result.stderr  # (each job's events ride along: not counted)
    # The fake counts the requests it is answering at once: never more than the concurrency,
    # and the two threads did work side by side.
    assert api.max_in_flight == 2, [c.at for c in api.calls]
    assert time.monotonic() - started >= 3 * 1.0  # so at least 3 waves of 2
    rows = db_rows(server, "SELECT refresh_error, checked_at FROM jobs_trackedjob WHERE status = 'running'")
    assert len(rows) == 6 and all(error == "" and not never_checked(checked) for error, checked in rows)


def test_two_workers_side_by_side_fetch_each_job_once_per_interval(worker_site, tmp_path):
    api, server = worker_site
    retire_earlier_jobs(server)
    remote = [api.add_job(steps_per_call=1, total_steps=100_000) for _ in range(8)]
    track_remote(server, [job["id"] for job in remote])
    api.reset_calls()

    logs = [tmp_path / "worker-a.log", tmp_path / "worker-b.log"]
    # One call at a time each: a worker claims at most 4 jobs a round, so both get work.
    workers = [start_worker(server, log, "--concurrency", "1") for log in logs]
    try:
        session = signed_in_session(server, "admin", ADMIN_PASSWORD)
        # (Not "8 job IDs among the calls": the look-up of deployed models names no job.)
        wait_for(lambda: all(api.calls_for(job["id"]) for job in remote), what="every job to be refreshed")
        wait_for(lambda: all("upstream GET /v1/fine_tuning/jobs/" in log.read_text() for log in logs),
                 what="both workers to have done some of the work")
        started = time.monotonic()
        api.reset_calls()
        # However slow the machine: wait until every job was refreshed three more times, then
        # check that none was refreshed more often than once per 1 s interval.
        wait_for(lambda: all(len(api.calls_for(job["id"])) >= 3 for job in remote), timeout=120,
                 what="three more refreshes of every job")
        counts = {job["id"]: len(api.calls_for(job["id"])) for job in remote}
        elapsed = time.monotonic() - started
        footer = session.get(server.url + "/").text
        assert "Background worker active" in footer
    finally:
        codes = [stop(workers[0], signal.SIGTERM), stop(workers[1], signal.SIGINT)]
    texts = [log.read_text() for log in logs]

    # Every job was refreshed, none more than once per 1 s interval, whichever worker did it.
    assert all(3 <= n <= int(elapsed / 1) + 1 for n in counts.values()), (counts, elapsed)
    assert all(c.status == 200 for c in api.calls)
    # Both workers did part of the work (each logs its upstream calls).
    assert all("upstream GET /v1/fine_tuning/jobs/" in text for text in texts), texts
    # SIGTERM and SIGINT both end a worker cleanly.
    assert codes == [0, 0], texts
    assert all(re.search(r"worker \S+ stopped", text) for text in texts), texts
    assert all("Traceback" not in text for text in texts), texts
    # A stopped long-running worker checks out (a --once run elsewhere in this file may not).
    names = [name for (name,) in db_rows(server, "SELECT name FROM jobs_workerheartbeat")]
    assert not [n for n in names if n.endswith((f":{workers[0].pid}", f":{workers[1].pid}"))], names


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_ends_the_worker_after_the_current_round(worker_site, tmp_path, signum):
    api, server = worker_site
    retire_earlier_jobs(server)
    job = api.add_job(steps_per_call=7, total_steps=100_000)
    track_remote(server, [job["id"]])
    db_rows(server, "UPDATE jobs_trackedjob SET checked_at = '2000-01-01 00:00:00' WHERE job_id = ?", (job["id"],))
    api.reset_calls()
    release = api.hold_next(job_id=job["id"])  # the answer waits: the round stays busy

    log = tmp_path / "worker.log"
    worker = start_worker(server, log)
    try:
        wait_for(lambda: api.calls_for(job["id"]), what="the worker's call")
        worker.send_signal(signum)  # arrives while the call is in flight
        wait_for(lambda: "stopping after this round" in log.read_text(), what="the worker to hear the signal")
        assert worker.poll() is None  # it does not walk away from the call in flight
    finally:
        release.set()
    code = worker.wait(timeout=60)
    text = log.read_text()

    assert code == 0, text
    assert "stopping after this round" in text and re.search(r"worker \S+ stopped", text), text
    assert "Traceback" not in text
    # The round finished: the answer was stored and the claim given back, then it stopped.
    [(snapshot, claimed_until, checked_at)] = db_rows(
        server, "SELECT snapshot, claimed_until, checked_at FROM jobs_trackedjob WHERE job_id = ?", (job["id"],))
    assert stored_json(snapshot)["trained_steps"] == 14  # 7 when tracked, 14 after the worker's call
    assert claimed_until is None and not never_checked(checked_at)
    assert len(api.calls_for(job["id"])) == 1


def test_worker_processes_run_on_the_database_of_the_leg(worker_site):
    """On the PostgreSQL leg the claims above ran on PostgreSQL (SKIP LOCKED for real), not on a
    SQLite file that happened to be there."""
    api, server = worker_site
    on_postgres = os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://"))
    assert bool(server.database_url) == on_postgres
    assert (server.data_dir / "ftdash.sqlite3").exists() != on_postgres
    output = server.manage("shell", "-c", "from django.db import connection; print('vendor=' + connection.vendor)").stdout
    assert f"vendor={'postgresql' if on_postgres else 'sqlite'}" in output.split(), output
