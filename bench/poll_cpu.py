"""What one unchanged poll costs in process, beside `/healthz`: no server, no load, no network.

bench/polls.py measures P2 as throughput under 50 connections, which on a shared machine moves
with everyone else's work. This script answers the question behind it on one core: the same
data (a team's 20 running jobs whose versions are current, after their first checks), the poll
a dashboard tab sends, and `/healthz`, each sent N times through Django's WSGI handler
(interleaved, one after the other), with the median microseconds of each; the SQL queries of one
unchanged poll; and, with --profile, the functions it spends its time in (cProfile).

The jobs' refresh interval is an hour here, so that no poll finds a job due (under bench/polls.py
the running worker sees to that): the poll measured is the 204 of a poll that finds nothing new.

Runs from the checkout it is started in (cwd), so that an older commit can be measured with the
same script: `cd /tmp/old && .venv/bin/python /path/to/bench/poll_cpu.py`.

Usage: .venv/bin/python bench/poll_cpu.py [-n 2000] [--profile] [--sql]
"""

from __future__ import annotations

import argparse
import collections
import io
import os
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path.cwd()
sys.path.insert(0, str(ROOT))

JOBS = 20
SECRET = "sk-bench-poll-cpu-0123456789"
_LIVE_TAG = re.compile(r"<[a-z]+\s[^>]*\bdata-live-key=\"(\d+)\"[^>]*>")
_VERSION = re.compile(r'\bdata-live-version="([^"]*)"')


def _fake_tokenfactory():
    try:
        from tests.support.fake_tokenfactory import FakeTokenFactory
    except ImportError:  # before the tests' helpers moved to tests/support/
        from tests.fake_tokenfactory import FakeTokenFactory
    return FakeTokenFactory


def _settings_env(data_dir: Path, api_url: str) -> None:
    from cryptography.fernet import Fernet

    for name in [k for k in os.environ if k.startswith(("FTDASH_", "DJANGO_", "GUNICORN_"))]:
        del os.environ[name]
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "ftdash.settings",
            "DATABASE_URL": "",
            "FTDASH_DATA_DIR": str(data_dir),
            "FTDASH_DEBUG": "false",
            "FTDASH_SECRET_KEY": secrets.token_urlsafe(50),
            "FTDASH_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
            "FTDASH_API_BASE_URL": api_url,
            "FTDASH_LOG_LEVEL": "WARNING",
            "FTDASH_TOKEN_REQUESTS_PER_MINUTE": "1000000",
        }
    )


def _seed(bodies: list[dict]):
    """One team (its owner signed in), its token and its 20 jobs, each checked once."""
    import datetime as dt

    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test import Client
    from django.utils import timezone

    from jobs import services
    from jobs.auth_backends import BACKEND_PATH
    from jobs.models import Membership, TrackedJob, Workspace

    user = get_user_model().objects.create_user("viewer", password="bench-passphrase-1")
    workspace = Workspace.objects.create(name="Team")
    Membership.objects.create(workspace=workspace, user=user, role="owner")
    token = services.token_create(workspace=workspace, user=user, name="token", secret=SECRET)
    now = timezone.now()
    TrackedJob.objects.bulk_create(
        TrackedJob(
            workspace=workspace,
            token=token,
            job_id=body["id"],
            snapshot=body,
            added_by=user,
            status=body["status"],
            fetched_at=now,
            checked_at=now - dt.timedelta(hours=2),
        )
        for body in bodies
    )
    call_command("poll_jobs", "--once", "--no-list-reads", verbosity=0)  # the jobs' first checks
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(user, backend=BACKEND_PATH)
    page = client.get("/")
    assert page.status_code == 200, page.status_code
    parts = {}
    for match in _LIVE_TAG.finditer(page.content.decode()):
        version = _VERSION.search(match.group(0))
        if "data-live-active" in match.group(0):
            parts[int(match.group(1))] = version.group(1) if version else ""
    assert len(parts) == JOBS, f"{len(parts)} live cards, not {JOBS}"
    return client.cookies[settings.SESSION_COOKIE_NAME].value, "&".join(f"v={pk}.{v}" for pk, v in parts.items())


class Wsgi:
    """Requests straight into Django's WSGI handler, as gunicorn would hand them over."""

    def __init__(self, cookie: str) -> None:
        from django.core.wsgi import get_wsgi_application

        self.app = get_wsgi_application()
        self.cookie = cookie

    def get(self, path: str, query: str = "", headers: dict[str, str] | None = None, cookie: bool = True):
        environ = {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "SCRIPT_NAME": "",
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "8000",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1",
            "HTTP_HOST": "127.0.0.1:8000",
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": False,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
        }
        if cookie:
            environ["HTTP_COOKIE"] = f"ftdash_session={self.cookie}"
        for name, value in (headers or {}).items():
            environ["HTTP_" + name.upper().replace("-", "_")] = value
        got = {}

        def start_response(status, response_headers, exc_info=None):
            got["status"], got["headers"] = status, response_headers

        result = self.app(environ, start_response)
        body = b"".join(result)
        if hasattr(result, "close"):
            result.close()
        return got["status"], got["headers"], body


POLL_HEADERS = {"HX-Request": "true", "HX-Current-URL": "http://127.0.0.1/"}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench/poll_cpu.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=2000, help="requests of each kind (default 2000)")
    parser.add_argument(
        "--profile", choices=["poll", "healthz"], help="cProfile n requests of that kind: the top functions"
    )
    parser.add_argument(
        "--pieces",
        action="store_true",
        help="time the parts of an unchanged poll on their own (best of 20 runs of n/20)",
    )
    parser.add_argument("--profile-out", help="also write the cProfile stats to this file (pstats)")
    parser.add_argument("--sql", action="store_true", help="print the SQL of one unchanged poll")
    parser.add_argument(
        "--refresh-seconds",
        type=int,
        default=3600,
        help="the jobs' refresh interval (default 3600: no poll finds a job due); 5 is bench/polls.py's",
    )
    parser.add_argument("--worker", action="store_true", help="run poll_jobs beside, as bench/polls.py does")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="ftdash-bench-poll-cpu-") as tmp, _fake_tokenfactory()() as api:
        api.add_token(SECRET)
        bodies = api.add_jobs(JOBS, token=SECRET, trained_steps=10, total_steps=1_000_000)
        _settings_env(Path(tmp) / "data", api.url)
        os.environ["FTDASH_REFRESH_SECONDS"] = os.environ["FTDASH_QUEUED_REFRESH_SECONDS"] = str(args.refresh_seconds)
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", "--noinput", verbosity=0)
        call_command("collectstatic", "--noinput", verbosity=0)  # DEBUG off: the pages need the manifest
        cookie, query = _seed(bodies)
        if args.pieces:
            _pieces(cookie, query, n=args.n)
            return
        wsgi = Wsgi(cookie)

        def poll():
            return wsgi.get("/live/cards/", query, POLL_HEADERS)

        def healthz():
            return wsgi.get("/healthz", cookie=False)

        status, headers, body = poll()
        assert status.startswith("204"), status
        assert healthz()[0].startswith("200")
        print(f"commit: {os.popen('git rev-parse --short HEAD').read().strip()} ({ROOT})")
        print(f"unchanged poll: {status}, {len(body)} B of body; headers from Django:")
        for name, value in headers:
            print(f"  {name}: {value}")
        worker = None
        if args.worker:
            worker = subprocess.Popen([sys.executable, "manage.py", "poll_jobs"], cwd=ROOT, stdout=subprocess.DEVNULL)
        started = time.monotonic()
        try:
            _measure(args, poll, healthz)
            if worker is not None:
                fields = Path(f"/proc/{worker.pid}/stat").read_text().rsplit(")", 1)[1].split()
                cpu_seconds = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
                elapsed = time.monotonic() - started
                print(f"poll_jobs: {cpu_seconds:.1f} s of CPU in {elapsed:.1f} s ({cpu_seconds / elapsed:.0%})")
        finally:
            if worker is not None:
                worker.terminate()
                worker.wait(timeout=60)


def _measure(args, poll, healthz) -> None:
    """Warm up, then the queries, times (and with --profile, the profile) of each kind."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for _ in range(200):  # warm-up
        poll(), healthz()

    with CaptureQueriesContext(connection) as polled:
        poll()
    with CaptureQueriesContext(connection) as checked:
        healthz()
    print(f"queries: unchanged poll {len(polled)}, /healthz {len(checked)}")
    if args.sql:
        for q in polled.captured_queries:
            print(f"  {q['sql']}")

    # Wall time and this thread's CPU time of each request (the CPU time is what another
    # process's load on the machine leaves alone, mostly).
    wall = {"poll": [], "healthz": []}
    cpu = {"poll": [], "healthz": []}
    for _ in range(args.n):
        for name, send in (("poll", poll), ("healthz", healthz)):
            started, started_cpu = time.perf_counter_ns(), time.thread_time_ns()
            send()
            cpu[name].append(time.thread_time_ns() - started_cpu)
            wall[name].append(time.perf_counter_ns() - started)
    for what, times in (("wall", wall), ("CPU", cpu)):
        p, h = (statistics.median(times[k]) / 1000 for k in ("poll", "healthz"))
        print(
            f"median {what} of {args.n}: unchanged poll {p:.0f} µs, /healthz {h:.0f} µs, "
            f"poll − /healthz {p - h:.0f} µs, /healthz ÷ poll {h / p:.2f}"
        )
    # Another process's load slows both kinds alike within a short stretch, and only ever slows:
    # in blocks of 100 of each, the median of the blocks' ratios, and the quietest block's times.
    blocks = [{k: statistics.median(cpu[k][i : i + 100]) / 1000 for k in cpu} for i in range(0, args.n - 99, 100)]
    if blocks:
        ratio = statistics.median(block["healthz"] / block["poll"] for block in blocks)
        p, h = (min(block[k] for block in blocks) for k in ("poll", "healthz"))
        print(
            f"CPU in {len(blocks)} blocks of 100: /healthz ÷ poll {ratio:.2f} (median of the blocks); "
            f"quietest block: unchanged poll {p:.0f} µs, /healthz {h:.0f} µs"
        )
    statuses = {}
    with CaptureQueriesContext(connection) as polled:
        for _ in range(args.n):
            status = poll()[0]
            statuses[status] = statuses.get(status, 0) + 1
    print(f"{args.n} more polls: {statuses}, {len(polled) / args.n:.2f} queries a poll")
    if args.sql:
        shapes = collections.Counter(
            re.sub(r"'[^']*'|\b\d+(\.\d+)?\b", "?", q["sql"])[:160] for q in polled.captured_queries
        )
        for shape, count in shapes.most_common():
            print(f"  {count / args.n:6.3f} a poll: {shape}")

    if args.profile:
        import cProfile
        import pstats

        profile = cProfile.Profile()
        profile.enable()
        send = poll if args.profile == "poll" else healthz
        for _ in range(args.n):
            send()
        profile.disable()
        if args.profile_out:
            profile.dump_stats(args.profile_out)
        stats = pstats.Stats(profile)
        print(f"{stats.total_calls / args.n:.0f} function calls a request ({args.profile})")
        stats.sort_stats("tottime").print_stats(25)
        stats.sort_stats("cumulative").print_stats(45)


def _pieces(cookie: str, query: str, *, n: int) -> None:
    """The parts of an unchanged poll, each timed alone (µs: the best of 20 runs of n/20, as load only slows)."""
    import timeit

    from django.contrib.auth import get_user_model
    from django.db import connection

    from jobs import live
    from jobs.auth_backends import ModelBackend
    from jobs.sessions import SessionStore

    user = get_user_model().objects.get()
    shown = live.parse_shown(part.removeprefix("v=") for part in query.split("&"))
    jobs = live._versions_of(user, shown)
    connection.ensure_connection()
    pieces = {
        "session read (SessionStore.load)": lambda: SessionStore(cookie).load(),
        "user read (ModelBackend.get_user)": lambda: ModelBackend().get_user(user.pk),
        "live._versions_of (20 jobs)": lambda: live._versions_of(user, shown),
        "live.job_version × 20": lambda: [live.job_version(job) for job in jobs],
        "live._most_overdue (20 jobs)": lambda: live._most_overdue(jobs),
        "live.changed_jobs (all of the above but the reads)": lambda: live.changed_jobs(user, shown),
        "SELECT 1": lambda: connection.cursor().execute("SELECT 1"),
    }
    for label, piece in pieces.items():
        best = min(timeit.repeat(piece, number=max(1, n // 20), repeat=20)) / max(1, n // 20) * 1e6
        print(f"{label:52s} {best:7.1f} µs")


if __name__ == "__main__":
    main()
