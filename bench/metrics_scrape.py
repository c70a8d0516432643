"""P12: a Prometheus scrape of `/metrics/<key>` for a workspace of 1,000 jobs, beside one of 10.

Two teams on one server, each with 5 running jobs and the rest finished, every job with a
checkpoint (losses) and the running ones with an open alert, so every metric family is there.
- SQL queries per scrape: Django's test client in a `manage.py shell` on the same data dir,
  counting with CaptureQueriesContext (a second scrape, after the first has warmed up).
- Server time: over HTTP from gunicorn, the two scrapes requested alternately, one at a time,
  with `Authorization: Bearer <key>` and `Accept-Encoding: gzip` as Prometheus sends them, from
  the first byte sent to the last byte received; medians. Sizes: the body as sent (gzip) and
  the exposition itself.

Usage: .venv/bin/python bench/metrics_scrape.py [--smoke] [--requests 40]
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
TARGET_MS = 100
PREPARE = r"""
import json, gzip
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from jobs import services
from jobs.models import JobAlert, TrackedJob, TrainingCheckpoint, Workspace

out = {}
for workspace_pk in WORKSPACES:
    workspace = Workspace.objects.get(pk=workspace_pk)
    jobs = list(TrackedJob.objects.filter(workspace=workspace))
    TrainingCheckpoint.objects.bulk_create(
        TrainingCheckpoint(job=job, upstream_id=f"ckpt-{job.pk}", step=10,
                           metrics={"train_loss": 0.5, "valid_loss": 0.6, "full_valid_loss": 0.61})
        for job in jobs
    )
    JobAlert.objects.bulk_create(
        JobAlert(job=job, rule="slow", message="slow") for job in jobs if job.status == "running"
    )
    owner = workspace.memberships.get(role="owner").user
    key, secret = services.metrics_key_create(workspace=workspace, actor=owner)
    client = Client(HTTP_HOST="127.0.0.1")
    client.get(f"/metrics/{secret}")
    with CaptureQueriesContext(connection) as queries:
        response = client.get(f"/metrics/{secret}")
    out[workspace_pk] = {"secret": secret, "status": response.status_code, "queries": len(queries),
                         "bytes": len(response.content), "gzip_bytes": len(gzip.compress(response.content, 1)),
                         "samples": sum(1 for line in response.content.splitlines() if line and not line.startswith(b"#"))}
print(json.dumps(out))
"""


def run(*, sizes: tuple[int, int], requests: int, workers: int | None, command: str) -> Section:
    with tempfile.TemporaryDirectory(prefix="ftdash-bench-p12-") as tmp, FakeTokenFactory() as api:
        teams = mostly_finished_teams(api, sizes, running=RUNNING, name="p12")
        with serve(Path(tmp), api_url=api.url, workers=workers, FTDASH_REFRESH_SECONDS="3600") as server:
            made = seed(server, teams)
            pks = [team.workspace for team in made]
            prepared = json.loads(
                server.manage("shell", "--no-imports", "-v", "0", "-c", f"WORKSPACES = {pks!r}\n" + PREPARE)
                .strip()
                .splitlines()[-1]
            )
            counted = [prepared[str(pk)] for pk in pks]
            times, sent = asyncio.run(_time(server, [c["secret"] for c in counted], requests))
            workers_used = server.workers

    small_q, big_q = counted
    big_t = median(times[1])
    rows = [
        [
            f"{size:,} ({RUNNING} running)",
            f"{q['samples']:,}",
            q["queries"],
            f"{q['bytes'] / 1000:,.0f} kB",
            f"{sent_bytes / 1000:,.0f} kB",
            fmt_ms(median(t)),
            fmt_ms(percentile(t, 99)),
        ]
        for size, q, t, sent_bytes in zip(sizes, counted, times, sent, strict=True)
    ]
    markdown = "\n".join(
        [
            f"Command: `{command}`  ",
            f"Machine: {machine()}  ",
            f"gunicorn: {workers_used} sync workers, SQLite; {requests} scrapes per workspace, alternating, one at a time, "
            "with `Authorization: Bearer` and `Accept-Encoding: gzip`.",
            "",
            table(
                ["tracked jobs", "samples", "SQL queries", "exposition", "sent (gzip)", "server time p50", "p99"], rows
            ),
        ]
    )
    return Section(
        "P12",
        "Prometheus scrape of a big workspace (bench/metrics_scrape.py)",
        markdown,
        [
            Figure(
                "P12",
                f"scrape of /metrics/<key>, {sizes[1]:,} jobs: server time",
                f"≤ {TARGET_MS} ms",
                f"{fmt_ms(big_t)} ({sent[1] / 1000:,.0f} kB sent, {big_q['bytes'] / 1000:,.0f} kB exposition)",
                big_t * 1000 <= TARGET_MS,
            ),
            Figure(
                "P12",
                f"scrape of /metrics/<key>, {sizes[0]:,} vs {sizes[1]:,} jobs: SQL queries",
                "same count",
                f"{small_q['queries']} vs {big_q['queries']}",
                small_q["queries"] == big_q["queries"],
            ),
        ],
    )


async def _time(server, secrets: list[str], requests: int) -> tuple[list[list[float]], list[int]]:
    clients = [Client(server.host, server.port) for _ in secrets]
    headers = [{"Authorization": f"Bearer {secret}", "Accept-Encoding": "gzip"} for secret in secrets]
    times: list[list[float]] = [[] for _ in secrets]
    sent = [0 for _ in secrets]
    for _ in range(2):  # warm-up: imports, connections in every worker
        for client, header in zip(clients, headers, strict=True):
            await client.get("/metrics/", header)
    for _ in range(requests):
        for number, (client, header) in enumerate(zip(clients, headers, strict=True)):
            answer = await client.get("/metrics/", header)
            if answer.status != 200:
                raise RuntimeError(f"the scrape answered {answer.status}")
            times[number].append(answer.seconds)
            sent[number] = len(answer.body)
    for client in clients:
        client.close()
    return times, sent


def main(argv: list[str] | None = None) -> Section:
    parser = argparse.ArgumentParser(prog="bench/metrics_scrape.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="a tiny run: 10 vs 60 jobs, 3 scrapes each")
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
        command=command_line("bench/metrics_scrape.py", argv),
    )


if __name__ == "__main__":
    print(main().markdown)
