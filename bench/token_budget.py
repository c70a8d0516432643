"""P10: one token's upstream calls per minute, and how old what the open pages show gets, under
`FTDASH_TOKEN_REQUESTS_PER_MINUTE` (its default, 60).

One token, 100 running jobs that move on (the fake Token Factory, 50 ms per answer). `manage.py
poll_jobs` runs beside gunicorn, as in production. Three dashboard tabs (the first page of 50
cards) and ten open job pages (their own jobs, beyond the dashboards' first page) each do what
static/js/live.js does: load the page, then every refresh interval after the last answer send the
versions of their live parts and take in what comes back. Without the budget this would ask for
the job list every interval and every open job page's events every interval too: about 130
calls a minute for this one token.

Measured: the token's upstream calls in every 60-second span of the run (the fake's own log; the
most in any span, target ≤ the budget), and the oldest snapshot any open page shows (sampled
from the database every second: now minus `fetched_at` of every job on an open page; target
≤ 3× the refresh interval).

Usage: .venv/bin/python bench/token_budget.py [--smoke] [--jobs 100] [--seconds 300] [--budget 60]
`--smoke` is a tiny run (20 jobs, 1 tab, 2 job pages, budget 10, 20 s).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import random
import sqlite3
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
    Server,
    Viewers,
    command_line,
    dashboard_tab,
    live_parts,
    machine,
    poll_path,
    seed,
    serve,
    table,
)
from tests.support.fake_tokenfactory import FakeTokenFactory  # noqa: E402

SECRET = "sk-bench-budget-0123456789"
DASHBOARD_CARDS = 50  # jobs.views.dashboard.JOBS_PER_PAGE: what one dashboard tab shows


async def job_page_tab(
    server: Server, cookie: str, pk: int, *, every: float, phase: float, until: float, seen: Viewers
) -> None:
    """One open job page doing what static/js/live.js does there, as `dashboard_tab` does for
    the dashboard."""
    client = Client(server.host, server.port, cookie=cookie)
    try:
        await asyncio.sleep(phase)
        page = await client.get(f"/jobs/{pk}/")
        if page.status != 200:
            seen.error(f"job page: {page.status}")
            return
        seen.page_loads.append(page.seconds)
        parts = live_parts(page.body.decode())
        while time.perf_counter() + every < until:
            await asyncio.sleep(every)
            try:
                answer = await client.get(poll_path(parts, base=f"/jobs/{pk}/live/"), POLL_HEADERS)
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                seen.error(f"job poll: {type(exc).__name__}")
                continue
            seen.polls.append(answer.seconds)
            seen.statuses[answer.status] = seen.statuses.get(answer.status, 0) + 1
            if answer.status == 200:
                parts.update(live_parts(answer.body.decode()))
            elif answer.status != 204:
                seen.error(f"job poll: {answer.status}")
    finally:
        client.close()


def _oldest_shown(db: Path, pks: list[int]) -> float:
    """Seconds since the oldest snapshot among these jobs was fetched."""
    with sqlite3.connect(db, timeout=20) as conn:
        (oldest,) = conn.execute(
            f"SELECT min(fetched_at) FROM jobs_trackedjob WHERE id IN ({', '.join('?' * len(pks))})", pks
        ).fetchone()
    fetched = dt.datetime.fromisoformat(oldest).replace(tzinfo=dt.UTC)
    return (dt.datetime.now(dt.UTC) - fetched).total_seconds()


def _per_minute(times: list[float]) -> int:
    """The most calls in any 60-second span starting at a call."""
    times = sorted(times)
    most, end = 0, 0
    for start, at in enumerate(times):
        while end < len(times) and times[end] < at + 60:
            end += 1
        most = max(most, end - start)
    return most


def run(
    *,
    jobs: int,
    tabs: int,
    job_pages: int,
    seconds: float,
    interval: int,
    budget: int,
    latency: float,
    workers: int | None,
    command: str,
) -> Section:
    with tempfile.TemporaryDirectory(prefix="ftdash-bench-p10-") as tmp, FakeTokenFactory() as api:
        tmp = Path(tmp)
        api.add_token(SECRET)
        bodies = api.add_jobs(jobs, token=SECRET, steps_per_second=0.5, trained_steps=10, total_steps=1_000_000)
        with serve(
            tmp,
            api_url=api.url,
            workers=workers,
            FTDASH_REFRESH_SECONDS=str(interval),
            FTDASH_TOKEN_REQUESTS_PER_MINUTE=str(budget),
        ) as server:
            (team,) = seed(server, [{"secret": SECRET, "jobs": bodies, "viewers": tabs + job_pages}])
            api.set_latency(latency)
            worker = server.start_poll_jobs(tmp / "poll_jobs.log")
            # The dashboards show the newest jobs; the job pages are of others, so every open page
            # adds jobs of its own.
            newest_first = sorted(team.jobs.values(), reverse=True)
            on_dashboards = newest_first[:DASHBOARD_CARDS]
            on_job_pages = newest_first[DASHBOARD_CARDS:][:job_pages] or newest_first[:job_pages]
            shown = sorted(set(on_dashboards if tabs else []) | set(on_job_pages))
            db = server.data_dir / "ftdash.sqlite3"
            ages: list[float] = []
            try:
                api.reset_calls()
                seen = Viewers()
                started = time.perf_counter()
                until = started + seconds

                async def sample() -> None:
                    while time.perf_counter() < until:
                        await asyncio.sleep(1)
                        ages.append(await asyncio.to_thread(_oldest_shown, db, shown))

                async def everything():
                    cookies = team.sessions
                    await asyncio.gather(
                        sample(),
                        *(
                            dashboard_tab(
                                server,
                                cookies[n],
                                every=interval,
                                phase=random.uniform(0, interval),
                                until=until,
                                seen=seen,
                            )
                            for n in range(tabs)
                        ),
                        *(
                            job_page_tab(
                                server,
                                cookies[tabs + n],
                                pk,
                                every=interval,
                                phase=random.uniform(0, interval),
                                until=until,
                                seen=seen,
                            )
                            for n, pk in enumerate(on_job_pages)
                        ),
                    )

                asyncio.run(everything())
                elapsed = time.perf_counter() - started
                if worker.poll() is not None:
                    seen.error(f"poll_jobs exited with {worker.returncode}")
            finally:
                worker.terminate()
                worker.wait(timeout=120)
            calls = [call for call in api.calls if call.token == SECRET]
            workers_used = server.workers
            tracebacks = server.log_path.read_text().count("Traceback") + (tmp / "poll_jobs.log").read_text().count(
                "Traceback"
            )
            with sqlite3.connect(db, timeout=20) as conn:
                (waiting,) = conn.execute(
                    "SELECT count(*) FROM jobs_trackedjob WHERE budget_wait_since IS NOT NULL"
                ).fetchone()

    most = _per_minute([call.at for call in calls])
    minutes = max(elapsed / 60, 1e-9)
    kinds = {
        "job list": sum(1 for c in calls if c.path == "/v1/fine_tuning/jobs"),
        "job GETs": sum(1 for c in calls if c.job_id and not c.path.endswith(("/events", "/checkpoints"))),
        "events": sum(1 for c in calls if c.path.endswith("/events")),
        "checkpoints": sum(1 for c in calls if c.path.endswith("/checkpoints")),
    }
    kinds["other (files, models)"] = len(calls) - sum(kinds.values())
    oldest = max(ages, default=float("nan"))
    markdown = "\n".join(
        [
            f"Command: `{command}`  ",
            f"Machine: {machine()}  ",
            f"gunicorn: {workers_used} sync workers, SQLite; `poll_jobs` running (list reads); one token, {jobs} running "
            f"jobs; {tabs} dashboard tabs ({min(jobs, DASHBOARD_CARDS)} cards each) and {len(on_job_pages)} open job "
            f"pages, polling every {interval} s; `FTDASH_TOKEN_REQUESTS_PER_MINUTE={budget}`; API latency "
            f"{latency * 1000:.0f} ms; {elapsed:.0f} s.",
            "",
            table(
                ["measure", "value"],
                [
                    ["upstream calls with the token", f"{len(calls)} ({len(calls) / minutes:.1f} a minute on average)"],
                    ["most in any 60-second span", most],
                    *[[f"… of which {kind}", n] for kind, n in kinds.items()],
                    [
                        "oldest snapshot on an open page, max / median of 1-s samples",
                        f"{oldest:.1f} s / {sorted(ages)[len(ages) // 2] if ages else float('nan'):.1f} s",
                    ],
                    ["jobs waiting for the budget at the end", waiting],
                    [
                        "polls answered (200 / 204)",
                        f"{len(seen.polls)} ({seen.statuses.get(200, 0)} / {seen.statuses.get(204, 0)})",
                    ],
                    ["errors", len(seen.errors)],
                    ["tracebacks in the gunicorn and worker logs", tracebacks],
                ],
            ),
        ]
    )
    return Section(
        "P10",
        f"One token's request budget, {tabs} tabs and {len(on_job_pages)} job pages (bench/token_budget.py)",
        markdown,
        [
            Figure(
                "P10",
                f"one token, {jobs} running jobs, worker, {tabs} tabs + {len(on_job_pages)} job pages: "
                "upstream calls in any minute",
                f"≤ {budget}",
                f"{most}",
                most <= budget and not seen.errors,
            ),
            Figure(
                "P10",
                "… oldest snapshot an open page shows",
                f"≤ {3 * interval} s (3× the interval)",
                f"{oldest:.1f} s",
                oldest <= 3 * interval and tracebacks == 0,
            ),
        ],
    )


def main(argv: list[str] | None = None) -> list[Section]:
    parser = argparse.ArgumentParser(prog="bench/token_budget.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="a tiny run: 20 jobs, 1 tab, 2 job pages, 20 s")
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--tabs", type=int, default=3, help="dashboard tabs")
    parser.add_argument("--job-pages", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--interval", type=int, default=5, help="FTDASH_REFRESH_SECONDS (the poll interval)")
    parser.add_argument("--budget", type=int, default=60, help="FTDASH_TOKEN_REQUESTS_PER_MINUTE")
    parser.add_argument("--latency", type=float, default=0.05, help="seconds added to every API answer")
    parser.add_argument("--workers", type=int, help="gunicorn workers (default: what make serve starts)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.jobs, args.tabs, args.job_pages, args.seconds, args.interval, args.budget = 20, 1, 2, 20, 2, 10
        args.workers = args.workers or 2
    return [
        run(
            jobs=args.jobs,
            tabs=args.tabs,
            job_pages=args.job_pages,
            seconds=args.seconds,
            interval=args.interval,
            budget=args.budget,
            latency=args.latency,
            workers=args.workers,
            command=command_line("bench/token_budget.py", argv),
        )
    ]
