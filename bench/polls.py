"""P2–P4: what a dashboard of quiet running jobs costs, beside `/healthz` on the same server.

One gunicorn (the shipped config, SQLite) serves a team whose dashboard shows 20 running jobs
whose API answers never change (a queued or a stuck job looks like this for hours), refreshed
every interval (5 s) by a running `poll_jobs`, as under `make serve` with the worker: the
steady state of such a tab, where every check finds nothing new.

- P4: one dashboard tab polls as static/js/live.js does; after a first minute (the jobs' first
  checks, which read their training logs) the bytes of the answer bodies it gets in the next
  minute are counted.
- The poll that tab sends at the end is captured, and side by side, in rounds, 50 connections
  each send their next request as soon as the last is answered, for a few seconds per kind:
  - `/healthz` (a session-less view with one `SELECT 1`): the yardstick;
  - the captured poll: its versions are current, so the answer is a bare 204 (P2);
  - a changed poll: one version is stale, so the answer carries that card, rendered once per
    job version and then served from the render cache (P3);
  - for information, a poll with all 20 versions stale (every card comes back).

The worker keeps checking the jobs meanwhile (and a poll that finds one due checks it itself),
so the captured poll stays a 204 only because a check that finds nothing new changes no
version. The captured poll's answer is also shown byte for byte: status line and headers.

Usage: .venv/bin/python bench/polls.py [--smoke] [--connections 50] [--seconds 5] [--rounds 3]
       [--tab-seconds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import (  # noqa: E402
    POLL_HEADERS,
    Client,
    Figure,
    Section,
    Viewers,
    command_line,
    dashboard_tab,
    fmt_ms,
    hammer,
    live_parts,
    machine,
    median,
    percentile,
    poll_path,
    seed,
    serve,
    table,
)
from tests.support.fake_tokenfactory import FakeTokenFactory  # noqa: E402

SECRET = "sk-bench-polls-0123456789"
JOBS = 20
INTERVAL = 5  # FTDASH_REFRESH_SECONDS' default: the pages' poll interval and the jobs' refresh
P4_TARGET = 4096  # bytes of answer bodies a minute


def run(
    *,
    connections: int,
    seconds: float,
    rounds: int,
    workers: int | None,
    tab_seconds: float,
    interval: float,
    command: str,
) -> Section:
    with tempfile.TemporaryDirectory(prefix="ftdash-bench-polls-") as tmp, FakeTokenFactory() as api:
        api.add_token(SECRET)
        bodies = api.add_jobs(JOBS, token=SECRET, trained_steps=10, total_steps=1_000_000)
        with serve(Path(tmp), api_url=api.url, workers=workers, FTDASH_REFRESH_SECONDS=f"{interval:g}") as server:
            (team,) = seed(server, [{"secret": SECRET, "jobs": bodies, "viewers": connections}])
            _first_checks(server)
            worker = server.start_poll_jobs(Path(tmp) / "poll_jobs.log")
            try:
                return asyncio.run(
                    _measure(
                        server,
                        team,
                        worker,
                        connections=connections,
                        seconds=seconds,
                        rounds=rounds,
                        tab_seconds=tab_seconds,
                        interval=interval,
                        command=command,
                    )
                )
            finally:
                worker.terminate()
                worker.wait(timeout=120)


_ALL_DUE = (
    "import datetime as dt\n"
    "from django.utils import timezone\n"
    "from jobs.models import TrackedJob\n"
    "TrackedJob.objects.update(checked_at=timezone.now() - dt.timedelta(hours=1))\n"
)


def _first_checks(server) -> None:
    """Each job's first check, one GET with its training log (a change: its events appear), as
    it happened long before anyone looks at a dashboard of quiet jobs. Left to the run, the first
    poll to beat the worker to a job would make that change in the middle of a measurement."""
    server.manage("shell", "--no-imports", "-v", "0", "-c", _ALL_DUE)
    server.manage("poll_jobs", "--once", "--no-list-reads")


async def _quiet_tab(server, team, worker, *, tab_seconds: float, interval: float) -> tuple[Viewers, float]:
    """One tab for two spans of `tab_seconds`: what it got in the second one, and when that began."""
    seen = Viewers()
    started = time.perf_counter()
    await dashboard_tab(
        server, team.sessions[0], every=interval, phase=0, until=started + 2 * tab_seconds + 0.5, seen=seen
    )
    if seen.errors or worker.poll() is not None:
        raise RuntimeError(f"the tab went wrong: {seen.errors[:5]}, poll_jobs exit code {worker.returncode}")
    if len(seen.last_shown) != JOBS or not all(active for _, active in seen.last_shown.values()):
        raise RuntimeError(f"the dashboard shows {len(seen.last_shown)} live cards, not {JOBS}")
    return seen, started + tab_seconds


async def _measure(server, team, worker, *, connections, seconds, rounds, tab_seconds, interval, command) -> Section:
    tab, measured_from = await _quiet_tab(server, team, worker, tab_seconds=tab_seconds, interval=interval)
    measured = [nbytes for at, nbytes in tab.answer_bodies if at >= measured_from]
    per_minute = sum(measured) * 60 / tab_seconds
    parts = tab.last_shown
    first = next(iter(parts))
    paths = {
        "unchanged": poll_path(parts),
        "changed": poll_path({**parts, first: ("stale", True)}),
        "all changed": poll_path(dict.fromkeys(parts, ("stale", True))),
    }
    kinds = {"/healthz": ("/healthz", {}), **{name: (path, POLL_HEADERS) for name, path in paths.items()}}
    expected = {"/healthz": (200, 0), "unchanged": (204, 0), "changed": (200, 1), "all changed": (200, JOBS)}

    # What each kind answers (checked, so that a throughput is never one of errors), and the
    # captured poll's answer byte for byte, on a fresh connection.
    answers = {}
    for name, (path, headers) in kinds.items():
        client = Client(server.host, server.port, cookie=team.sessions[0])
        answers[name] = await client.get(path, headers)
        client.close()
        status, cards = expected[name]
        got = len(live_parts(answers[name].body.decode())) if name != "/healthz" else 0
        if answers[name].status != status or got != cards:
            raise RuntimeError(f"{name}: answered {answers[name].status} with {got} cards, expected {status}/{cards}")

    def requests_of(name):
        path, headers = kinds[name]
        return lambda n: (team.sessions[n % len(team.sessions)], path, headers)

    for name in kinds:  # warm-up: every worker imports, connects and fills its render cache
        await hammer(server, connections=connections, seconds=min(1.0, seconds), request_for=requests_of(name))
    loads = {name: [] for name in kinds}
    for _ in range(rounds):
        for name in kinds:
            loads[name].append(
                await hammer(server, connections=connections, seconds=seconds, request_for=requests_of(name))
            )

    rate = {name: median([load.per_second for load in runs]) for name, runs in loads.items()}
    rows = []
    for name, runs in loads.items():
        latencies = [s for load in runs for s in load.latencies]
        statuses = {}
        for load in runs:
            for status, count in load.statuses.items():
                statuses[status] = statuses.get(status, 0) + count
        errors = sum(load.errors for load in runs)
        wrong = sum(count for status, count in statuses.items() if status != expected[name][0])
        rows.append(
            [
                f"`{name}`" if name.startswith("/") else f"{name} poll ({expected[name][1]} of {JOBS} cards back)",
                f"{answers[name].status}, {answers[name].nbytes} B",
                f"{rate[name]:.0f}",
                f"{rate[name] / rate['/healthz']:.2f}×",
                fmt_ms(median(latencies)),
                fmt_ms(percentile(latencies, 99)),
                f"{sum(statuses.values())} ({wrong + errors} unexpected)",
            ]
        )
    unchanged = answers["unchanged"]
    p2 = rate["unchanged"] / rate["/healthz"]
    p3 = rate["changed"] / rate["/healthz"]
    tab_statuses = ", ".join(f"{count} × {status}" for status, count in sorted(tab.statuses.items()))
    markdown = "\n".join(
        [
            f"Command: `{command}`  ",
            f"Machine: {machine()}  ",
            f"gunicorn: {server.workers} sync workers (ftdash/gunicorn.conf.py), SQLite, no Redis; `poll_jobs` "
            f"running (list reads); {JOBS} running jobs that never change, refreshed every {interval:g} s.",
            "",
            f"P4: one tab, {2 * tab_seconds:g} s, polling every {interval:g} s: {len(tab.answer_bodies)} answers "
            f"({tab_statuses}), {sum(nbytes for _, nbytes in tab.answer_bodies)} bytes of bodies in all, "
            f"{sum(measured)} bytes in {len(measured)} answers in the last {tab_seconds:g} s.",
            "",
            f"P2, P3: the poll the tab sent at the end, replayed; {connections} connections, {rounds} rounds of "
            f"{seconds:g} s per kind, kinds interleaved in each round; requests/s is the median of the rounds.",
            "",
            table(["request", "answer", "requests/s", "÷ /healthz", "latency p50", "latency p99", "answers"], rows),
            "",
            f"The captured poll's answer, byte for byte as received ({unchanged.nbytes} bytes: "
            f"{len(unchanged.head)} of status line and headers, {len(unchanged.body)} of body):",
            "",
            "```",
            unchanged.head.decode("latin-1").replace("\r\n", "\n").rstrip(),  # each line ends CRLF on the wire
            "```",
        ]
    )
    return Section(
        "P2–P4",
        "Poll cost beside /healthz (bench/polls.py)",
        markdown,
        [
            Figure(
                "P2",
                f"throughput of a poll captured from that tab ÷ `/healthz`, {connections} connections",
                "≥ 0.6×",
                f"{p2:.2f}× ({rate['unchanged']:.0f} vs {rate['/healthz']:.0f} req/s)",
                p2 >= 0.6,
            ),
            Figure(
                "P3",
                "changed-poll throughput ÷ `/healthz`",
                "≥ 0.3×",
                f"{p3:.2f}× ({rate['changed']:.0f} vs {rate['/healthz']:.0f} req/s)",
                p3 >= 0.3,
            ),
            Figure(
                "P4",
                f"answer bodies a minute, one tab of {JOBS} unchanging running jobs, worker running (after a minute)",
                "≤ 4 KB",
                f"{per_minute:.0f} B in {len(measured)} answers",
                per_minute <= P4_TARGET,
            ),
        ],
    )


def main(argv: list[str] | None = None) -> Section:
    parser = argparse.ArgumentParser(prog="bench/polls.py", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="a tiny run: 4 connections, 0.3 s, one round, a tab of 2 × 3 s polling every second",
    )
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, help="gunicorn workers (default: what make serve starts)")
    parser.add_argument(
        "--tab-seconds", type=float, default=60, help="how long the tab settles, and then how long it is measured (P4)"
    )
    args = parser.parse_args(argv)
    interval = INTERVAL
    if args.smoke:
        args.connections, args.seconds, args.rounds, args.tab_seconds = 4, 0.3, 1, 3
        args.workers = args.workers or 2
        interval = 1
    return run(
        connections=args.connections,
        seconds=args.seconds,
        rounds=args.rounds,
        workers=args.workers,
        tab_seconds=args.tab_seconds,
        interval=interval,
        command=command_line("bench/polls.py", argv),
    )


if __name__ == "__main__":
    print(main().markdown)
