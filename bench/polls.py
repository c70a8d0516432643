"""P2–P4: what a dashboard poll costs the server, beside `/healthz` on the same server.

One gunicorn (the shipped config, SQLite) serves a team whose dashboard shows 20 running jobs.
Each viewer's poll sends the versions of all 20 cards, exactly as static/js/live.js does. Side
by side, in rounds, 50 connections each send their next request as soon as the last is
answered, for a few seconds per kind:

- `/healthz` (a session-less view with one `SELECT 1`): the yardstick;
- an unchanged poll: the versions sent are current, so the answer is a bare 204 (P2);
- a changed poll: one version is stale, so the answer carries that card, rendered once per job
  version and then served from the render cache (P3);
- for information, a poll with all 20 versions stale (every card comes back).

Nothing is due for refresh during the run (refresh interval one hour), so no answer waits on
the API and the versions stay put. P4 counts the raw bytes of one unchanged answer on the socket:
status line, headers and body.

Usage: .venv/bin/python bench/polls.py [--smoke] [--connections 50] [--seconds 5] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import (  # noqa: E402
    POLL_HEADERS, Client, Figure, Section, command_line, fmt_ms, hammer, live_parts, machine, median,
    percentile, poll_path, seed, serve, table,
)
from tests.fake_tokenfactory import FakeTokenFactory  # noqa: E402

SECRET = "sk-bench-polls-0123456789"
JOBS = 20


def run(*, connections: int, seconds: float, rounds: int, workers: int | None, command: str) -> Section:
    with tempfile.TemporaryDirectory(prefix="ftdash-bench-polls-") as tmp, FakeTokenFactory() as api:
        api.add_token(SECRET)
        bodies = api.add_jobs(JOBS, token=SECRET, trained_steps=10, total_steps=1_000_000)
        with serve(Path(tmp), api_url=api.url, workers=workers, FTDASH_REFRESH_SECONDS="3600") as server:
            (team,) = seed(server, [{"secret": SECRET, "jobs": bodies, "viewers": connections}])
            return asyncio.run(_measure(server, team, connections=connections, seconds=seconds, rounds=rounds,
                                        command=command))


async def _measure(server, team, *, connections, seconds, rounds, command) -> Section:
    viewer = Client(server.host, server.port, cookie=team.sessions[0])
    page = await viewer.get("/")
    parts = live_parts(page.body.decode())
    if len(parts) != JOBS or not all(active for _, active in parts.values()):
        raise RuntimeError(f"the dashboard shows {len(parts)} live cards, not {JOBS}")
    first = next(iter(parts))
    paths = {
        "unchanged": poll_path(parts),
        "changed": poll_path({**parts, first: ("stale", True)}),
        "all changed": poll_path({pk: ("stale", True) for pk in parts}),
    }
    kinds = {"/healthz": ("/healthz", {}), **{name: (path, POLL_HEADERS) for name, path in paths.items()}}
    expected = {"/healthz": (200, 0), "unchanged": (204, 0), "changed": (200, 1), "all changed": (200, JOBS)}

    # What each kind answers (checked, so that a throughput is never one of errors), and P4:
    # one unchanged answer's bytes on a fresh connection.
    answers = {}
    for name, (path, headers) in kinds.items():
        client = Client(server.host, server.port, cookie=team.sessions[0])
        answers[name] = await client.get(path, headers)
        client.close()
        status, cards = expected[name]
        got = len(live_parts(answers[name].body.decode())) if name != "/healthz" else 0
        if answers[name].status != status or got != cards:
            raise RuntimeError(f"{name}: answered {answers[name].status} with {got} cards, expected {status}/{cards}")
    viewer.close()

    def requests_of(name):
        path, headers = kinds[name]
        return lambda n: (team.sessions[n % len(team.sessions)], path, headers)

    for name in kinds:  # warm-up: every worker imports, connects and fills its render cache
        await hammer(server, connections=connections, seconds=min(1.0, seconds), request_for=requests_of(name))
    loads = {name: [] for name in kinds}
    for _ in range(rounds):
        for name in kinds:
            loads[name].append(await hammer(server, connections=connections, seconds=seconds,
                                            request_for=requests_of(name)))

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
        rows.append([
            f"`{name}`" if name.startswith("/") else f"{name} poll ({expected[name][1]} of {JOBS} cards back)",
            f"{answers[name].status}, {answers[name].nbytes} B",
            f"{rate[name]:.0f}",
            f"{rate[name] / rate['/healthz']:.2f}×",
            fmt_ms(median(latencies)),
            fmt_ms(percentile(latencies, 99)),
            f"{sum(statuses.values())} ({wrong + errors} unexpected)",
        ])
    unchanged = answers["unchanged"]
    p2 = rate["unchanged"] / rate["/healthz"]
    p3 = rate["changed"] / rate["/healthz"]
    markdown = "\n".join([
        f"Command: `{command}`  ",
        f"Machine: {machine()}  ",
        f"gunicorn: {server.workers} sync workers (ftdash/gunicorn.conf.py), SQLite, no Redis; "
        f"{connections} connections, {rounds} rounds of {seconds:g} s per kind, kinds interleaved in each round; "
        f"requests/s is the median of the rounds.",
        "",
        table(["request", "answer", "requests/s", "÷ /healthz", "latency p50", "latency p99", "answers"], rows),
        "",
        f"The unchanged answer, byte for byte as received ({unchanged.nbytes} bytes: "
        f"{len(unchanged.head)} of status line and headers, {len(unchanged.body)} of body):",
        "",
        "```",
        unchanged.head.decode("latin-1").replace("\r\n", "\n").rstrip(),  # each line ends CRLF on the wire
        "```",
    ])
    return Section("P2–P4", "Poll cost beside /healthz (bench/polls.py)", markdown, [
        Figure("P2", f"unchanged-poll throughput ÷ `/healthz`, {connections} connections", "≥ 0.6×",
               f"{p2:.2f}× ({rate['unchanged']:.0f} vs {rate['/healthz']:.0f} req/s)", p2 >= 0.6),
        Figure("P3", "changed-poll throughput ÷ `/healthz`", "≥ 0.3×",
               f"{p3:.2f}× ({rate['changed']:.0f} vs {rate['/healthz']:.0f} req/s)", p3 >= 0.3),
        Figure("P4", "bytes of an unchanged poll answer (status line + headers + body)", "≤ 400",
               f"{unchanged.nbytes} B", unchanged.nbytes <= 400),
    ])


def main(argv: list[str] | None = None) -> Section:
    parser = argparse.ArgumentParser(prog="bench/polls.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="a tiny run: 4 connections, 0.3 s, one round")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, help="gunicorn workers (default: what make serve starts)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.connections, args.seconds, args.rounds = 4, 0.3, 1
        args.workers = args.workers or 2
    return run(connections=args.connections, seconds=args.seconds, rounds=args.rounds, workers=args.workers,
               command=command_line("bench/polls.py", argv))


if __name__ == "__main__":
    print(main().markdown)
