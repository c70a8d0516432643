"""However many people watch a job, in however many server processes, the API is asked about
it at most once per refresh interval. On the PostgreSQL leg the server runs on PostgreSQL (and
Redis holds the lock), so coalescing across gunicorn workers is checked on that database too."""

from __future__ import annotations

import os
import re
import time
from concurrent.futures import ThreadPoolExecutor

from tests.support.fake_tokenfactory import FakeTokenFactory
from tests.support.server_process import ftdash_server
from tests.support.web_forms import ADMIN_PASSWORD, create_admin, post_form, save_token, signed_in_session

SECRET = "sk-coalesce-0123456789-wxyz"
POLLS_PER_VIEWER = 15


def test_viewers_across_gunicorn_workers_cause_one_call_per_interval(tmp_path):
    extra = {"FTDASH_REFRESH_SECONDS": "2"}
    if os.environ.get("REDIS_URL"):
        # The Redis leg of CI: the lock lives in Redis instead of the database cache.
        extra["REDIS_URL"] = os.environ["REDIS_URL"]
    with FakeTokenFactory() as api, ftdash_server(tmp_path / "data", api_url=api.url, workers=3, **extra) as server:
        api.add_token(SECRET)
        job = api.add_job(steps_per_call=1, total_steps=10_000)
        create_admin(server)
        viewers = [signed_in_session(server, "admin", ADMIN_PASSWORD) for _ in range(8)]
        token_pk = save_token(viewers[0], server, SECRET)
        post_form(viewers[0], server, "/jobs/track/", {"job_id": job["id"], "token": token_pk})
        job_pk = re.search(r'href="/jobs/(\d+)/"', viewers[0].get(server.url + "/").text).group(1)
        # Slow answers keep each refresh in flight while the other viewers' polls arrive.
        api.fail_next("timeout", job_id=job["id"], count=100, delay=0.3)
        api.reset_calls()

        def watch(session):
            # At least so many polls and at least ~3 intervals: on a slow machine the run just
            # takes longer, and the bound below follows the time it really took.
            statuses = []
            started = time.monotonic()
            while len(statuses) < POLLS_PER_VIEWER or time.monotonic() - started < 6.5:
                response = session.get(f"{server.url}/jobs/{job_pk}/live/", headers={"HX-Request": "true"}, timeout=60)
                statuses.append(response.status_code)
                time.sleep(0.05)
            return statuses

        started = time.monotonic()
        with ThreadPoolExecutor(len(viewers)) as pool:
            results = list(pool.map(watch, viewers))
        elapsed = time.monotonic() - started

    polls = sum(len(r) for r in results)
    assert all(status == 200 for r in results for status in r)
    calls = len(api.calls_for(job["id"]))
    # 8 viewers made at least 120 polls; the API saw one call per 2 s interval at most.
    assert polls >= 8 * POLLS_PER_VIEWER and elapsed > 6
    assert 1 <= calls <= int(elapsed / 2) + 1, f"{calls} upstream calls for {polls} polls in {elapsed:.1f} s"
