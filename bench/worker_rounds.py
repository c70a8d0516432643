"""P7: what the background worker asks the API, reading job lists vs one GET per job.

A real `manage.py poll_jobs` process (SQLite data dir, the project's settings) refreshes 500
running jobs spread over 5 tokens against the fake Token Factory on loopback, every answer
delayed by 100 ms like a real API across the internet. The same jobs are refreshed twice in
one run, side by side: with list reads (`--list-reads`, the default) and one GET per job
(`--no-list-reads`). For each, from the moment every job falls due:

- upstream calls per refresh interval, and per job refreshed (the fake's own call log);
- calls per round and round time, medians (the worker's "round:" log lines);
- the oldest snapshot seen (sampled from the database): the target is every job refreshed
  within 2× its interval.

Usage: .venv/bin/python bench/worker_rounds.py [--smoke] [--jobs 500] [--tokens 5] ...
`--smoke` is a tiny run (20 jobs, 2 tokens, a 2 s interval) that finishes in seconds.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shlex
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import Figure, Section  # noqa: E402
from tests.support.fake_tokenfactory import FakeTokenFactory  # noqa: E402

SEED = """
import json
from django.contrib.auth import get_user_model
from django.utils import timezone
from jobs import services
from jobs.access import user_memberships
from jobs.models import TrackedJob
user = get_user_model().objects.create_user("bench", password="bench-password-1")
workspace = user_memberships(user)[0].workspace
now = timezone.now()
for number, (secret, bodies) in enumerate(json.load(open({path!r}))):
    token = services.token_create(workspace=workspace, user=user, name=f"token {{number}}", secret=secret)
    TrackedJob.objects.bulk_create(
        TrackedJob(workspace=workspace, token=token, job_id=body["id"], snapshot=body,
                   status=body["status"], fetched_at=now, checked_at=now)
        for body in bodies
    )
"""
ROUND_LINE = re.compile(
    r"round: (\d+) jobs stored from (\d+) list pages, (\d+) handed to one-by-one refreshes, in (\d+) ms"
)


@dataclass
class Result:
    mode: str
    window: float  # seconds measured
    calls: int  # in the window
    all_calls: int  # until the worker stopped, the rounds in the log with them
    refreshed: int  # job refreshes the rounds did (stored from lists + one by one)
    round_calls: list[int]
    round_ms: list[int]
    oldest: float  # the oldest snapshot seen during the window, in seconds

    def per_interval(self, interval: float) -> float:
        return self.calls / (self.window / interval)


def _env(data_dir: Path, api_url: str, interval: int) -> dict[str, str]:
    # Only the variables given here, like tests.support.server_process: nothing leaks in from the shell.
    inherited = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FTDASH_", "DJANGO_")) and k not in ("DATABASE_URL", "REDIS_URL")
    }
    return {
        **inherited,
        "DJANGO_SETTINGS_MODULE": "ftdash.settings",
        "DATABASE_URL": "",
        "FTDASH_DATA_DIR": str(data_dir),
        "FTDASH_DEBUG": "true",
        "FTDASH_API_BASE_URL": api_url,
        "FTDASH_REFRESH_SECONDS": str(interval),
        "FTDASH_WORKER_INTERVAL_SECONDS": "1",
        # What the worker asks for, not what one token's request budget lets through (P10).
        "FTDASH_TOKEN_REQUESTS_PER_MINUTE": "1000000",
        "PYTHONUNBUFFERED": "1",
    }


def _manage(env: dict[str, str], *args: str) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=True, text=True)


def _measure(mode: str, *, env, db: Path, api, interval: int, window: float, concurrency: int, log: Path) -> Result:
    def sql(query: str, params=()) -> list:
        with sqlite3.connect(db, timeout=20) as conn:
            return conn.execute(query, params).fetchall()

    def stamp(seconds_ago: float) -> str:
        return (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=seconds_ago)).strftime("%Y-%m-%d %H:%M:%S.%f")

    # Nothing due while the worker starts, nobody's claim, no memory of a token without a list.
    sql("UPDATE jobs_trackedjob SET checked_at = ?, claimed_until = NULL, consecutive_failures = 0", (stamp(0),))
    sql("DELETE FROM ftdash_cache")
    flag = "--list-reads" if mode == "list" else "--no-list-reads"
    with log.open("w") as out:
        worker = subprocess.Popen(
            [sys.executable, "manage.py", "poll_jobs", flag, "--concurrency", str(concurrency)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while " started (" not in log.read_text():
            if worker.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the worker did not start:\n{log.read_text()}")
            time.sleep(0.05)
        # The window opens with every job falling due at once.
        api.reset_calls()
        sql("UPDATE jobs_trackedjob SET checked_at = ?", (stamp(interval),))
        started = time.monotonic()
        oldest = 0.0
        while time.monotonic() - started < window:
            (first,) = sql("SELECT MIN(checked_at) FROM jobs_trackedjob")[0]
            checked = dt.datetime.fromisoformat(first).replace(tzinfo=dt.UTC)
            oldest = max(oldest, (dt.datetime.now(dt.UTC) - checked).total_seconds())
            time.sleep(0.1)
        worker.terminate()  # ends after the round in flight
        worker.wait(timeout=120)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    rounds = [tuple(map(int, m)) for m in ROUND_LINE.findall(log.read_text())]
    return Result(
        mode=mode,
        window=window,
        calls=len([c for c in api.calls if c.at - started <= window]),
        all_calls=len(api.calls),
        refreshed=sum(stored + handed for stored, _, handed, _ in rounds),
        round_calls=[pages + handed for _, pages, handed, _ in rounds],
        round_ms=[ms for *_, ms in rounds],
        oldest=oldest,
    )


def run(*, jobs: int, tokens: int, latency: float, interval: int, intervals: float, concurrency: int) -> dict:
    """Both modes against one seeded data dir; the figures, and a Markdown report."""
    with tempfile.TemporaryDirectory(prefix="ftdash-p7-") as tmp, FakeTokenFactory() as api:
        tmp = Path(tmp)
        seeds = []
        for number in range(tokens):
            secret = f"sk-bench-p7-{number:04d}-0123456789"
            api.add_token(secret)
            share = jobs // tokens + (number < jobs % tokens)
            seeds.append((secret, api.add_jobs(share, token=secret, total_steps=1_000_000, trained_steps=10)))
        (tmp / "seed.json").write_text(json.dumps(seeds))
        env = _env(tmp / "data", api.url, interval)
        _manage(env, "migrate", "--noinput")
        _manage(env, "shell", "-v", "0", "-c", SEED.format(path=str(tmp / "seed.json")))
        api.set_latency(latency)
        window = interval * intervals
        results = {
            mode: _measure(
                mode,
                env=env,
                db=tmp / "data" / "ftdash.sqlite3",
                api=api,
                interval=interval,
                window=window,
                concurrency=concurrency,
                log=tmp / f"{mode}.log",
            )
            for mode in ("list", "get")
        }
    return results


def report(
    results: dict, *, command: str, jobs: int, tokens: int, latency: float, interval: int, concurrency: int
) -> str:
    lists, gets = results["list"], results["get"]
    lines = [
        f"P7 — worker rounds: {jobs} running jobs over {tokens} tokens, API latency "
        f"{latency * 1000:.0f} ms, refresh interval {interval} s, concurrency {concurrency}, "
        f"{os.cpu_count()} cores; each mode measured for {lists.window:g} s.",
        f"Command: `{command}`",
        "",
        "| worker | upstream calls per interval | calls per job refreshed | calls per round (median) "
        "| round time (median) | oldest snapshot seen | within 2× interval |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, result in (("list reads", lists), ("one GET per job", gets)):
        lines.append(
            f"| {name} | {result.per_interval(interval):.1f} "
            f"| {result.all_calls / max(result.refreshed, 1):.3f} "
            f"| {statistics.median(result.round_calls or [0]):g} "
            f"| {statistics.median(result.round_ms or [0]):g} ms "
            f"| {result.oldest:.1f} s | {'yes' if result.oldest <= 2 * interval else 'no'} |"
        )
    per_job = (gets.all_calls / max(gets.refreshed, 1)) / max(lists.all_calls / max(lists.refreshed, 1), 1e-9)
    lines += [
        "",
        f"Ratio (one GET per job ÷ list reads): {gets.per_interval(interval) / max(lists.per_interval(interval), 1e-9):.1f}× "
        f"the calls per interval, {per_job:.0f}× the calls per job refreshed "
        f"(target ≥ 10× fewer calls: {'met' if per_job >= 10 else 'NOT met'}; every job within "
        f"2× its interval with list reads: {'met' if lists.oldest <= 2 * interval else 'NOT met'}).",
    ]
    return "\n".join(lines)


def section(argv: list[str] | None = None):
    """Run as the command line asks; the report as a section of BENCHMARKS.md (see bench/run.py)."""
    parser = argparse.ArgumentParser(prog="bench/worker_rounds.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="a tiny run: 20 jobs, 2 tokens, 2 s interval")
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--tokens", type=int, default=5)
    parser.add_argument("--latency", type=float, default=0.1, help="seconds added to every API answer")
    parser.add_argument("--interval", type=int, default=5, help="FTDASH_REFRESH_SECONDS")
    parser.add_argument("--intervals", type=float, default=4, help="how many intervals each mode is measured")
    parser.add_argument("--concurrency", type=int, default=4, help="the worker's --concurrency")
    args = parser.parse_args(argv)
    if args.smoke:
        args.jobs, args.tokens, args.latency, args.interval, args.intervals = 20, 2, 0.02, 2, 1.5
    settings = {
        "jobs": args.jobs,
        "tokens": args.tokens,
        "latency": args.latency,
        "interval": args.interval,
        "concurrency": args.concurrency,
    }
    results = run(intervals=args.intervals, **settings)
    command = " ".join(
        [".venv/bin/python", "bench/worker_rounds.py", *map(shlex.quote, argv if argv is not None else sys.argv[1:])]
    )
    lists, gets = results["list"], results["get"]
    fewer = (gets.all_calls / max(gets.refreshed, 1)) / max(lists.all_calls / max(lists.refreshed, 1), 1e-9)
    return Section(
        "P7",
        "Worker rounds (bench/worker_rounds.py)",
        report(results, command=command, **settings),
        [
            Figure(
                "P7",
                f"worker, {args.jobs} running jobs over {args.tokens} tokens, API latency "
                f"{args.latency * 1000:.0f} ms: calls per job refreshed, one GET per job ÷ list reads",
                "≥ 10× fewer",
                f"{fewer:.0f}× fewer",
                fewer >= 10,
            ),
            Figure(
                "P7",
                "worker, list reads: oldest snapshot seen",
                f"≤ 2× the interval ({2 * args.interval} s)",
                f"{lists.oldest:.1f} s",
                lists.oldest <= 2 * args.interval,
            ),
        ],
    )


def main(argv: list[str] | None = None) -> int:
    print(section(argv).markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
