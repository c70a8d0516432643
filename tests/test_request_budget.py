"""One request budget per API token (`FTDASH_TOKEN_REQUESTS_PER_MINUTE`), in this process: a job
waiting for the budget keeps its snapshot, says so on its card and does not back off; the budget
refills as time passes; a key check it refuses does not mark the token bad. Against the fake
Token Factory, which logs every call with the key it carried. The budget shared by gunicorn and
worker processes: tests/processes/test_request_budget.py.
"""

from __future__ import annotations

import re

import pytest

from jobs import services
from jobs.models import TrackedJob
from jobs.sync import refresh
from tests.support.accounts import ALICE_SECRET, track_remote_job
from tests.support.fake_tokenfactory import ALIVE
from tests.support.waiting import wait_for

BUDGET_IN_USE = "this token's request budget is in use"


@pytest.fixture
def small_budget(settings):
    settings.FTDASH_TOKEN_REQUESTS_PER_MINUTE = 60  # a bucket of 6 calls, one more every 1.1 s


def test_a_job_waiting_for_the_budget_keeps_its_snapshot_says_so_and_does_not_back_off(
    fake_api, alice, alice_token, alice_client, small_budget
):
    job = TrackedJob.objects.get(pk=track_remote_job(fake_api, alice, alice_token, **ALIVE).pk)
    # Spend the bucket with "Refresh now" until a refresh waits.
    for _ in range(10):
        before = len(fake_api.calls)
        refresh.refresh_now(job)
        if job.budget_wait_since:
            break
    assert job.budget_wait_since is not None
    assert len(fake_api.calls) == before  # nothing was sent
    job.refresh_from_db()
    assert (job.consecutive_failures, job.refresh_error) == (0, "")
    # Its real age, redrawn by live.js like every "updated N s ago".
    notice = re.compile(r'updated <time datetime="[^"]+" data-relative="ago">\d+ s ago</time> — ' + BUDGET_IN_USE)
    assert notice.search(alice_client.get("/").content.decode())
    assert notice.search(alice_client.get(f"/jobs/{job.pk}/").content.decode())
    # The budget refills: a moment later the refresh goes through, and the card is plain again.
    wait_for(lambda: refresh.refresh_now(job).budget_wait_since is None, timeout=10, what="the budget to refill")
    assert BUDGET_IN_USE not in alice_client.get("/").content.decode()


def test_a_key_check_refused_by_the_budget_does_not_mark_the_token_bad(fake_api, alice_token, small_budget):
    verdicts = [services.token_check(token=alice_token) for _ in range(10)]
    assert verdicts[0] == (True, "Token Factory accepts this token.")
    refused = [message for ok, message in verdicts if not ok]
    assert refused and all("request budget is in use" in message for message in refused)
    alice_token.refresh_from_db()
    assert alice_token.last_check_ok is True
    assert len(fake_api.calls_with(ALICE_SECRET)) == 10 - len(refused)
