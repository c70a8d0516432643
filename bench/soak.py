"""P8 and P9: 200 simulated viewers for 5 minutes, then the memory of each process.

Ten teams of 20 viewers; each team's dashboard shows its own 20 running jobs, which move on
every refresh (the fake Token Factory, 50 ms per answer). `manage.py poll_jobs` runs beside
gunicorn, as in production, refreshing every job every 5 s from each team token's job list.
Each viewer (a session of its own) opens its dashboard at a random moment in the first interval,
then does what static/js/live.js does: 5 s after each answer it sends the versions of its live
cards and takes in the cards that come back. An error is any answer but 200 or 204, a card
answered as gone, or a failed connection.

P9 reads the resident memory (VmRSS in /proc/<pid>/status) of every gunicorn worker and of
`poll_jobs` at the end, while both still run.

Usage: .venv/bin/python bench/soak.py [--smoke] [--teams 10] [--viewers 20] [--jobs 20] [--seconds 300]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import (  # noqa: E402
    Figure,
    Section,
    Viewers,
    command_line,
    dashboard_tab,
    fmt_ms,
    machine,
    median,
    percentile,
    rss_mb,
    seed,
    serve,
    table,
)
from tests.support.fake_tokenfactory import FakeTokenFactory  # noqa: E402


def run(
    *,
    teams: int,
    viewers: int,
    jobs: int,
    seconds: float,
    interval: int,
    latency: float,
    workers: int | None,
    command: str,
) -> list[Section]:
    with tempfile.TemporaryDirectory(prefix="ftdash-bench-p8-") as tmp, FakeTokenFactory() as api:
        tmp = Path(tmp)
        spec = []
        for number in range(teams):
            secret = f"sk-bench-soak-{number:03d}-0123456789"
            api.add_token(secret)
            bodies = api.add_jobs(jobs, token=secret, steps_per_second=0.5, trained_steps=10, total_steps=1_000_000)
            spec.append({"secret": secret, "jobs": bodies, "viewers": viewers})
        with serve(tmp, api_url=api.url, workers=workers, FTDASH_REFRESH_SECONDS=str(interval)) as server:
            made = seed(server, spec)
            api.set_latency(latency)
            worker = server.start_poll_jobs(tmp / "poll_jobs.log")
            try:
                api.reset_calls()
                seen = Viewers()
                started = time.perf_counter()
                until = started + seconds

                async def all_tabs():
                    await asyncio.gather(
                        *(
                            dashboard_tab(
                                server,
                                cookie,
                                every=interval,
                                phase=random.uniform(0, interval),
                                until=until,
                                seen=seen,
                            )
                            for team in made
                            for cookie in team.sessions
                        )
                    )

                asyncio.run(all_tabs())
                elapsed = time.perf_counter() - started
                if worker.poll() is not None:
                    seen.error(f"poll_jobs exited with {worker.returncode}")
                gunicorn_rss = {pid: rss_mb(pid) for pid in server.worker_pids()}
                worker_rss = rss_mb(worker.pid)
            finally:
                worker.terminate()
                worker.wait(timeout=120)
            calls = len(api.calls)
            tracebacks = server.log_path.read_text().count("Traceback") + (tmp / "poll_jobs.log").read_text().count(
                "Traceback"
            )
            workers_used = server.workers

    total_viewers = teams * viewers
    polls = len(seen.polls)
    errors = len(seen.errors)
    kinds = {}
    for error in seen.errors:
        kinds[error] = kinds.get(error, 0) + 1
    p50, p99 = median(seen.polls), percentile(seen.polls, 99)
    soak = "\n".join(
        [
            f"Command: `{command}`  ",
            f"Machine: {machine()}  ",
            f"gunicorn: {workers_used} sync workers, SQLite; `poll_jobs` running (list reads); {teams} teams × {viewers} "
            f"viewers = {total_viewers} viewers, each a dashboard of {jobs} running jobs polled every {interval} s; "
            f"API latency {latency * 1000:.0f} ms; {elapsed:.0f} s.",
            "",
            table(
                ["measure", "value"],
                [
                    [
                        "dashboard loads",
                        f"{len(seen.page_loads)} (p50 {fmt_ms(median(seen.page_loads))}, "
                        f"p99 {fmt_ms(percentile(seen.page_loads, 99))})",
                    ],
                    [
                        "polls answered (200 / 204)",
                        f"{polls} ({seen.statuses.get(200, 0)} / {seen.statuses.get(204, 0)})",
                    ],
                    ["polls per second", f"{polls / elapsed:.1f}"],
                    ["cards received", seen.cards],
                    ["poll latency p50 / p99", f"{fmt_ms(p50)} / {fmt_ms(p99)}"],
                    [
                        "errors",
                        errors if not kinds else f"{errors}: " + ", ".join(f"{n} × {k}" for k, n in kinds.items()),
                    ],
                    ["tracebacks in the gunicorn and worker logs", tracebacks],
                    ["upstream calls (worker and polls)", calls],
                ],
            ),
        ]
    )
    memory = "\n".join(
        [
            "Resident memory (VmRSS) at the end of the P8 run, both processes still running:",
            "",
            table(
                ["process", "RSS"],
                [
                    *[[f"gunicorn worker (pid {pid})", f"{mb:.1f} MB"] for pid, mb in sorted(gunicorn_rss.items())],
                    ["`manage.py poll_jobs`", f"{worker_rss:.1f} MB"],
                ],
            ),
        ]
    )
    biggest = max(gunicorn_rss.values())
    return [
        Section(
            "P8",
            f"{total_viewers} viewers for {seconds / 60:g} minutes (bench/soak.py)",
            soak,
            [
                Figure(
                    "P8",
                    f"{total_viewers} viewers × {jobs} running jobs, {elapsed:.0f} s: errors; latency",
                    "0 errors; p50/p99 reported",
                    f"{errors} errors; p50 {fmt_ms(p50)}, p99 {fmt_ms(p99)}",
                    errors == 0 and tracebacks == 0,
                ),
            ],
        ),
        Section(
            "P9",
            "Memory after P8 (bench/soak.py)",
            memory,
            [
                Figure(
                    "P9",
                    "resident memory after P8: largest gunicorn worker / `poll_jobs`",
                    "≤ 100 MB each",
                    f"{biggest:.1f} MB / {worker_rss:.1f} MB",
                    biggest <= 100 and worker_rss <= 100,
                ),
            ],
        ),
    ]


def main(argv: list[str] | None = None) -> list[Section]:
    parser = argparse.ArgumentParser(prog="bench/soak.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="a tiny run: 2 teams of 3 viewers, 3 jobs, 1 s, 5 s")
    parser.add_argument("--teams", type=int, default=10)
    parser.add_argument("--viewers", type=int, default=20, help="per team")
    parser.add_argument("--jobs", type=int, default=20, help="running jobs per team")
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--interval", type=int, default=5, help="FTDASH_REFRESH_SECONDS (the poll interval)")
    parser.add_argument("--latency", type=float, default=0.05, help="seconds added to every API answer")
    parser.add_argument("--workers", type=int, help="gunicorn workers (default: what make serve starts)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.teams, args.viewers, args.jobs, args.seconds, args.interval = 2, 3, 3, 5, 1
        args.workers = args.workers or 2
    return run(
        teams=args.teams,
        viewers=args.viewers,
        jobs=args.jobs,
        seconds=args.seconds,
        interval=args.interval,
        latency=args.latency,
        workers=args.workers,
        command=command_line("bench/soak.py", argv),
    )


if __name__ == "__main__":
    print("\n\n".join(section.markdown for section in main()))
