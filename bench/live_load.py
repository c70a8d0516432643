"""How ftdash holds up when many people watch many jobs.

Runs ftdash under gunicorn (3 workers, SQLite) against the fake Token Factory on loopback and
measures, with real HTTP:

1. the dashboard's response time with 3 and with 300 tracked jobs (median of N requests), and
   its SQL query count (from the test suite's own measurement, not repeated here);
2. a card poll's response time while the job is fresh (no upstream call) and when due;
3. coalescing: V viewers polling one job for S seconds → upstream calls vs polls.

Usage: .venv/bin/python bench/live_load.py [--viewers 20] [--seconds 10]
Writes the table to stdout; bench/RESULTS.md keeps the last recorded run.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fake_tokenfactory import FakeTokenFactory  # noqa: E402
from tests.server_process import ADMIN_PASSWORD, create_admin, ftdash_server, post_form, save_token, signed_in_session  # noqa: E402

SECRET = "sk-bench-0123456789-abcd"
TRACK_MANY = """
from django.utils import timezone
from jobs.models import ApiToken, TrackedJob
token = ApiToken.objects.get()
now = timezone.now()
TrackedJob.objects.bulk_create([
    TrackedJob(workspace=token.workspace, token=token, job_id=f"ftjob-{i:032x}", status="succeeded",
               snapshot={"id": f"ftjob-{i:032x}", "status": "succeeded", "model": "Qwen/Qwen3-4B",
                         "trained_steps": 100, "total_steps": 100, "created_at": 1753341502,
                         "finished_at": 1753345102},
               fetched_at=now, checked_at=now)
    for i in range({start}, {end})
])
"""


def timed(session, url: str, n: int, **kwargs) -> list[float]:
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        response = session.get(url, **kwargs)
        samples.append((time.perf_counter() - started) * 1000)
        assert response.status_code in (200, 286), response.status_code
    return samples


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--viewers", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--requests", type=int, default=50)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, FakeTokenFactory() as api, ftdash_server(
        Path(tmp) / "data", api_url=api.url, workers=3, FTDASH_REFRESH_SECONDS="2"
    ) as server:
        api.add_token(SECRET)
        job = api.add_job(steps_per_call=1, total_steps=1_000_000)
        create_admin(server)
        session = signed_in_session(server, "admin", ADMIN_PASSWORD)
        token_pk = save_token(session, server, SECRET)
        post_form(session, server, "/jobs/track/", {"job_id": job["id"], "token": token_pk})
        job_pk = re.search(r'href="/jobs/(\d+)/"', session.get(server.url + "/").text).group(1)

        rows = []
        server.manage("shell", "-v", "0", "-c", TRACK_MANY.replace("{start}", "1").replace("{end}", "3"))
        three = timed(session, server.url + "/", args.requests)
        server.manage("shell", "-v", "0", "-c", TRACK_MANY.replace("{start}", "3").replace("{end}", "300"))
        many = timed(session, server.url + "/", args.requests)
        rows.append(("dashboard, 3 jobs", statistics.median(three)))
        rows.append(("dashboard, 300 jobs", statistics.median(many)))
        card = f"{server.url}/jobs/{job_pk}/card/"
        fresh = timed(session, card, args.requests, headers={"HX-Request": "true"})
        rows.append(("card poll (fresh snapshot, no upstream call)", statistics.median(fresh)))

        viewers = [signed_in_session(server, "admin", ADMIN_PASSWORD) for _ in range(args.viewers)]
        api.reset_calls()

        def watch(viewer):
            polls, deadline = 0, time.monotonic() + args.seconds
            while time.monotonic() < deadline:
                viewer.get(card, headers={"HX-Request": "true"})
                polls += 1
            return polls

        started = time.monotonic()
        with ThreadPoolExecutor(args.viewers) as pool:
            polls = sum(pool.map(watch, viewers))
        elapsed = time.monotonic() - started
        calls = len(api.calls_for(job["id"]))

    print("| measurement | median |\n| --- | --- |")
    for name, value in rows:
        print(f"| {name} | {value:.1f} ms |")
    print(f"| 300-job dashboard / 3-job dashboard | {rows[1][1] / rows[0][1]:.2f}× |")
    print(
        f"\n{args.viewers} viewers polled one running job for {elapsed:.1f} s: {polls} polls, "
        f"{calls} upstream calls (refresh interval 2 s → at most {int(elapsed // 2) + 1}); "
        f"{polls / max(calls, 1):.0f} polls per upstream call."
    )


if __name__ == "__main__":
    main()
