"""One request budget per API token (`FTDASH_TOKEN_REQUESTS_PER_MINUTE`), shared by every process.

Over real HTTP against the fake Token Factory, which logs every call with the key it carried:
however many pages poll and worker processes run, a token's calls stay within its budget, and
the jobs shown on open pages are served first. A job waiting for the budget in this process:
tests/test_request_budget.py.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import textwrap
import threading
import time

import requests

from tests.support.fake_tokenfactory import ALIVE, FakeTokenFactory
from tests.support.server_process import ROOT, ftdash_server, start_worker
from tests.support.waiting import wait_for
from tests.support.web_forms import ADMIN_PASSWORD, signed_in_session

BUDGET_IN_USE = "this token's request budget is in use"
SECRET = "sk-budget-0123456789-SECRET-bd10"


SEED = """
import datetime as dt
from django.contrib.auth import get_user_model
from django.utils import timezone
from jobs import services
from jobs.access import user_memberships
from jobs.models import TrackedJob
user = get_user_model().objects.create_superuser("admin", password=%(password)r)
workspace = user_memberships(user)[0].workspace
token = services.token_create(workspace=workspace, user=user, name="main", secret=%(secret)r)
long_ago = timezone.now() - dt.timedelta(minutes=10)
for number, body in enumerate(%(bodies)r):
    # Checked longest ago first: job 0 is the oldest snapshot.
    at = long_ago + dt.timedelta(seconds=number)
    TrackedJob.objects.create(workspace=workspace, token=token, job_id=body["id"], snapshot=body,
                              status=body["status"], fetched_at=at, checked_at=at, added_by=user)
"""


def _seed(server, bodies) -> dict[str, int]:
    server.manage(
        "shell", "-c", textwrap.dedent(SEED % {"password": ADMIN_PASSWORD, "secret": SECRET, "bodies": bodies})
    )
    return dict(server.sql("SELECT job_id, id FROM jobs_trackedjob"))


class Poller(threading.Thread):
    """A page doing what static/js/live.js does: ask for its live parts every `every` seconds."""

    def __init__(self, session: requests.Session, url: str, every: float) -> None:
        super().__init__(daemon=True)
        self.session, self.url, self.every = session, url, every
        self.stop = threading.Event()
        self.statuses: list[int] = []
        self.told_budget_in_use = False

    def run(self) -> None:
        while not self.stop.wait(self.every):
            answer = self.session.get(self.url, headers={"HX-Request": "true"}, timeout=30)
            self.statuses.append(answer.status_code)
            self.told_budget_in_use |= BUDGET_IN_USE in answer.text


def _most_in_a_minute(calls) -> int:
    times = sorted(call.at for call in calls)
    return max((sum(1 for t in times if start <= t < start + 60) for start in times), default=0)


def _no_backoff(server) -> None:
    assert (
        server.sql(
            "SELECT job_id, consecutive_failures, refresh_error FROM jobs_trackedjob"
            " WHERE consecutive_failures > 0 OR refresh_error != ''"
        )
        == []
    )


def test_two_workers_and_open_pages_together_stay_within_one_tokens_budget(tmp_path):
    with (
        FakeTokenFactory() as api,
        ftdash_server(
            tmp_path / "data",
            api_url=api.url,
            workers=2,
            FTDASH_TOKEN_REQUESTS_PER_MINUTE="10",
            FTDASH_REFRESH_SECONDS="1",
            FTDASH_WORKER_INTERVAL_SECONDS="0.2",
            FTDASH_API_RETRIES="0",
        ) as server,
    ):
        api.add_token(SECRET)
        bodies = api.add_jobs(30, token=SECRET, **ALIVE)
        pks = _seed(server, bodies)
        session = signed_in_session(server, "admin", ADMIN_PASSWORD)
        shown = "&".join(f"v={pk}." for pk in pks.values())
        pages = [Poller(session, f"{server.url}/live/cards/?{shown}", 0.3) for _ in range(2)]
        pages += [Poller(session, f"{server.url}/jobs/{pk}/live/?v={pk}.", 0.3) for pk in list(pks.values())[:3]]
        # One worker reads the job list, the other asks job by job: 30 GETs a second between them
        # without a budget.
        workers = [
            start_worker(server, tmp_path / "list.log"),
            start_worker(server, tmp_path / "get.log", "--no-list-reads"),
        ]
        try:
            for page in pages:
                page.start()
            started = time.monotonic()
            wait_for(
                lambda: time.monotonic() - started > 15 and all(p.statuses for p in pages),
                timeout=60,
                what="15 s of polls and worker rounds",
            )
        finally:
            for page in pages:
                page.stop.set()
            for worker in workers:
                worker.send_signal(signal.SIGTERM)
            for worker in workers:
                worker.wait(timeout=60)
            for page in pages:
                page.join(timeout=30)
        calls = api.calls_with(SECRET)
        # The budget was used (a full bucket and more), never beyond 10 in any minute.
        assert 4 <= _most_in_a_minute(calls) <= 10, [(c.at, c.path) for c in calls]
        assert all(status in (200, 204) for page in pages for status in page.statuses)
        _no_backoff(server)
        # Between the list reads the budget allows, the cards said why they were not fresher.
        assert all(page.told_budget_in_use for page in pages[:2])
        assert "Traceback" not in server.log


def test_jobs_shown_on_an_open_page_go_before_the_workers_other_jobs(tmp_path):
    with (
        FakeTokenFactory() as api,
        ftdash_server(
            tmp_path / "data",
            api_url=api.url,
            workers=1,
            FTDASH_TOKEN_REQUESTS_PER_MINUTE="30",
            FTDASH_REFRESH_SECONDS="1",
            FTDASH_WORKER_INTERVAL_SECONDS="0.2",
            FTDASH_API_RETRIES="0",
        ) as server,
    ):
        api.add_token(SECRET)
        bodies = api.add_jobs(20, token=SECRET, **ALIVE)
        pks = _seed(server, bodies)
        # The job with the newest snapshot: the worker, oldest first, would come to it last.
        viewed = bodies[-1]["id"]
        session = signed_in_session(server, "admin", ADMIN_PASSWORD)
        page = Poller(session, f"{server.url}/jobs/{pks[viewed]}/live/?v={pks[viewed]}.", 0.3)
        worker = start_worker(server, tmp_path / "worker.log", "--no-list-reads")
        try:
            page.start()
            wait_for(lambda: len(api.calls_for(viewed)) >= 5, timeout=90, what="the open page's job to be refreshed")
        finally:
            page.stop.set()
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=60)
            page.join(timeout=30)
        others = {body["id"]: len(api.calls_for(body["id"])) for body in bodies[:-1]}
        assert sum(others.values()) < len(api.calls_for(viewed)), others
        assert _most_in_a_minute(api.calls_with(SECRET)) <= 30
        _no_backoff(server)
        # The others wait their turn, oldest snapshot first: any the worker got to are the oldest.
        served = [n for n, body in enumerate(bodies[:-1]) if others[body["id"]]]
        assert served == list(range(len(served)))


CALLER = """
import os, time
from jobs.models import ApiToken
from jobs.request_budget import BudgetSpent
client = ApiToken.objects.get().client()
time.sleep(max(0.0, float(os.environ["START_AT"]) - time.time()))
refused = 0
for _ in range(10):
    try:
        client.check_key()
    except BudgetSpent:
        refused += 1
print("refused", refused)
"""


def test_processes_calling_at_once_never_take_more_than_the_bucket_holds(tmp_path):
    with FakeTokenFactory() as api, ftdash_server(tmp_path / "data", api_url=api.url, workers=1) as server:
        api.add_token(SECRET)
        _seed(server, [])
        # A bucket of 6 calls (a person's calls leave the last one to the worker's list read),
        # refilled at 55 a minute; four processes ask for 40 at once.
        env = {**server.env, "FTDASH_TOKEN_REQUESTS_PER_MINUTE": "60", "START_AT": str(time.time() + 10)}
        callers = [
            subprocess.Popen(
                [sys.executable, "manage.py", "shell", "-c", CALLER],
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for _ in range(4)
        ]
        outputs = [caller.communicate(timeout=120)[0] for caller in callers]
        elapsed = time.time() - float(env["START_AT"])
    refused = sum(int(re.search(r"refused (\d+)", output).group(1)) for output in outputs)
    sent = len(api.calls_with(SECRET))
    assert sent + refused == 40, outputs
    assert 5 <= sent <= 5 + elapsed * 55 / 61 + 1, (sent, elapsed)
