"""P6: the dashboard of a workspace with 10 tracked jobs beside one with 1,000.

Two teams on one server, each with the same 5 running jobs' worth of live work; the rest of
their jobs are finished (history piles up, what runs at once does not): 10 jobs = 5 running + 5
finished, 1,000 jobs = 5 running + 995 finished. Each dashboard shows live jobs first and pages
the finished ones (50 cards a page), so the big one renders 50 cards to the small one's 10.

- SQL queries per dashboard load: Django's test client in a `manage.py shell` on the same data
  dir, counting with CaptureQueriesContext (a second load, after the first has warmed up).
- Server time: over HTTP from gunicorn, the two dashboards requested alternately, one at a time,
  from the first byte sent to the last byte received; medians.

Nothing is due for refresh during the run (refresh interval one hour), so no load waits on the API.

Usage: .venv/bin/python bench/dashboard_size.py [--smoke] [--requests 40]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import (  # noqa: E402
    Client,
    Figure,
    Section,
    command_line,
    fmt_ms,
    machine,
    median,
    mostly_finished_teams,
    percentile,
    seed,
    serve,
    table,
)
from tests.support.fake_tokenfactory import FakeTokenFactory  # noqa: E402

RUNNING = 5
COUNT_QUERIES = r"""
import json
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from jobs.auth_backends import BACKEND_PATH

out = {}
for username in USERNAMES:
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(get_user_model().objects.get(username=username), backend=BACKEND_PATH)
    client.get("/")
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/")
    out[username] = {"status": response.status_code, "queries": len(queries),
                     "cards": response.content.count(b"data-live-key=")}
print(json.dumps(out))
"""


def run(*, sizes: tuple[int, int], requests: int, workers: int | None, command: str) -> Section:
    with tempfile.TemporaryDirectory(prefix="ftdash-bench-p6-") as tmp, FakeTokenFactory() as api:
        teams = mostly_finished_teams(api, sizes, running=RUNNING, name="p6")
        with serve(Path(tmp), api_url=api.url, workers=workers, FTDASH_REFRESH_SECONDS="3600") as server:
            small, big = seed(server, teams)
            owners = [small.usernames[0], big.usernames[0]]
            counted = json.loads(
                server.manage("shell", "--no-imports", "-v", "0", "-c", f"USERNAMES = {owners!r}\n" + COUNT_QUERIES)
                .strip()
                .splitlines()[-1]
            )
            times = asyncio.run(_time(server, [small.sessions[0], big.sessions[0]], requests))
            workers_used = server.workers

    small_q, big_q = counted[owners[0]], counted[owners[1]]
    small_t, big_t = median(times[0]), median(times[1])
    ratio = big_t / small_t
    rows = [
        [f"{size:,} ({RUNNING} running)", q["cards"], q["queries"], fmt_ms(median(t)), fmt_ms(percentile(t, 99))]
        for size, q, t in zip(sizes, (small_q, big_q), times, strict=True)
    ]
    markdown = "\n".join(
        [
            f"Command: `{command}`  ",
            f"Machine: {machine()}  ",
            f"gunicorn: {workers_used} sync workers, SQLite; {requests} requests per dashboard, alternating, one at a time.",
            "",
            table(["tracked jobs", "cards on the first page", "SQL queries", "server time p50", "p99"], rows),
            "",
            f"Ratio ({sizes[1]:,} ÷ {sizes[0]:,}): {ratio:.2f}× the server time; "
            f"{big_q['queries']} vs {small_q['queries']} queries.",
        ]
    )
    same = small_q["queries"] == big_q["queries"] and big_q["queries"] <= 12
    return Section(
        "P6",
        "Big dashboards (bench/dashboard_size.py)",
        markdown,
        [
            Figure(
                "P6",
                f"dashboard, {sizes[0]:,} vs {sizes[1]:,} tracked jobs: SQL queries",
                "same count, ≤ 12",
                f"{small_q['queries']} vs {big_q['queries']}",
                same,
            ),
            Figure(
                "P6",
                f"dashboard, {sizes[0]:,} vs {sizes[1]:,} tracked jobs: server time",
                "≤ 2×",
                f"{ratio:.2f}× ({fmt_ms(small_t)} vs {fmt_ms(big_t)})",
                ratio <= 2,
            ),
        ],
    )


async def _time(server, sessions: list[str], requests: int) -> list[list[float]]:
    clients = [Client(server.host, server.port, cookie=session) for session in sessions]
    times: list[list[float]] = [[] for _ in sessions]
    for _ in range(2):  # warm-up: imports, template loading, connections in every worker
        for client in clients:
            await client.get("/")
    for _ in range(requests):
        for client, samples in zip(clients, times, strict=True):
            answer = await client.get("/")
            if answer.status != 200:
                raise RuntimeError(f"the dashboard answered {answer.status}")
            samples.append(answer.seconds)
    for client in clients:
        client.close()
    return times


def main(argv: list[str] | None = None) -> Section:
    parser = argparse.ArgumentParser(prog="bench/dashboard_size.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="a tiny run: 10 vs 60 jobs, 3 requests each")
    parser.add_argument("--small", type=int, default=10)
    parser.add_argument("--big", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--workers", type=int, help="gunicorn workers (default: what make serve starts)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.big, args.requests, args.workers = 60, 3, args.workers or 2
    return run(
        sizes=(args.small, args.big),
        requests=args.requests,
        workers=args.workers,
        command=command_line("bench/dashboard_size.py", argv),
    )


if __name__ == "__main__":
    print(main().markdown)
