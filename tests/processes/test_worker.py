"""Background workers (`manage.py poll_jobs`) as real processes side by side on the database
of the leg: bounded concurrency, each job fetched once per interval between two workers, and a
signal ending a worker after its round. One round in this process: tests/test_worker.py.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from tests.support.fake_tokenfactory import ALIVE, FakeTokenFactory
from tests.support.server_process import ROOT, ftdash_server, start_worker
from tests.support.waiting import wait_for
from tests.support.web_forms import ADMIN_PASSWORD, signed_in_session

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
    with (
        FakeTokenFactory() as api,
        ftdash_server(
            tmp / "data",
            api_url=api.url,
            workers=1,
            FTDASH_WORKER_INTERVAL_SECONDS="0.2",
            FTDASH_REFRESH_SECONDS="1",
            FTDASH_API_RETRIES="0",
            FTDASH_API_READ_TIMEOUT="30",  # held answers below must not time out
            FTDASH_WORKER_LIST_READS="false",  # one GET per job, which these tests count
        ) as server,
    ):
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
    result = subprocess.run(
        [sys.executable, "manage.py", "poll_jobs", "--once", "--concurrency", "2"],
        cwd=ROOT,
        env=server.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
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
    remote = [api.add_job(**ALIVE) for _ in range(8)]
    track_remote(server, [job["id"] for job in remote])
    api.reset_calls()

    logs = [tmp_path / "worker-a.log", tmp_path / "worker-b.log"]
    # One call at a time each: a worker claims at most 4 jobs a round, so both get work.
    workers = [start_worker(server, log, "--concurrency", "1") for log in logs]
    try:
        session = signed_in_session(server, "admin", ADMIN_PASSWORD)
        # (Not "8 job IDs among the calls": the look-up of deployed models names no job.)
        wait_for(lambda: all(api.calls_for(job["id"]) for job in remote), what="every job to be refreshed")
        wait_for(
            lambda: all("upstream GET /v1/fine_tuning/jobs/" in log.read_text() for log in logs),
            what="both workers to have done some of the work",
        )
        started = time.monotonic()
        api.reset_calls()
        # However slow the machine: wait until every job was refreshed three more times, then
        # check that none was refreshed more often than once per 1 s interval.
        wait_for(
            lambda: all(len(api.calls_for(job["id"])) >= 3 for job in remote),
            timeout=120,
            what="three more refreshes of every job",
        )
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
        server, "SELECT snapshot, claimed_until, checked_at FROM jobs_trackedjob WHERE job_id = ?", (job["id"],)
    )
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
    output = server.manage(
        "shell", "-c", "from django.db import connection; print('vendor=' + connection.vendor)"
    ).stdout
    assert f"vendor={'postgresql' if on_postgres else 'sqlite'}" in output.split(), output
