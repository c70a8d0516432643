"""What every benchmark shares: ftdash served as `make serve` serves it, seeded data, and a
small HTTP client of our own.

- `serve()` migrates and collects static files into a fresh data dir, then starts gunicorn with
  the shipped `ftdash/gunicorn.conf.py` (DEBUG off, sync workers, the access log on), an
  explicit worker count, and the fake Token Factory as its API. SQLite, no Redis: the default
  install.
- `seed()` creates teams, viewers (each signed in, with a session cookie of their own), a token
  per team and tracked jobs whose bodies come from the fake, in one `manage.py shell` run.
- `Client` speaks HTTP/1.1 over asyncio streams and counts the raw bytes of every answer
  (status line and headers included). It keeps a connection alive when the server allows it;
  gunicorn's sync workers answer `Connection: close`, so it reconnects, as a browser would.
- `Figure` is one row of the summary table: a measure, its target, what was measured, met or not.

Loopback only; every load is bounded in connections and in time.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import os
import platform
import re
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from cryptography.fernet import Fernet  # noqa: E402

from tests.support.server_process import stop_process  # noqa: E402

# One pair of keys per process: the data dirs are throwaway, nothing outlives the run.
_KEYS = {"FTDASH_SECRET_KEY": secrets.token_urlsafe(50), "FTDASH_ENCRYPTION_KEYS": Fernet.generate_key().decode()}


# ---------------------------------------------------------------------------- the machine


def machine() -> str:
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else ["?"]
    return (
        f"{os.cpu_count()} cores (`os.cpu_count()`), {platform.platform()}, Python {platform.python_version()}; "
        f"load average {' '.join(load)}"
    )


@dataclass
class Figure:
    """One row of the summary: `met` is None for a figure without a target."""

    key: str
    measure: str
    target: str
    measured: str
    met: bool | None

    @property
    def verdict(self) -> str:
        return "—" if self.met is None else ("met" if self.met else "**NOT met**")


@dataclass
class Section:
    key: str
    title: str
    markdown: str
    figures: list[Figure] = field(default_factory=list)


def table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank percentile (q in 0..100) of `values`."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, round(q / 100 * len(ordered) + 0.5 - 1e-9))
    return ordered[min(rank, len(ordered)) - 1]


def command_line(script: str, argv: list[str] | None) -> str:
    args = sys.argv[1:] if argv is None else argv
    return " ".join([".venv/bin/python", script, *args])


# ---------------------------------------------------------------------------- the server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def default_workers() -> int:
    """What `make serve` starts on this machine (ftdash/gunicorn.conf.py's default)."""
    return min(4, (os.cpu_count() or 1) * 2 + 1)


@dataclass
class Server:
    url: str
    host: str
    port: int
    workers: int
    env: dict[str, str]
    data_dir: Path
    log_path: Path
    process: subprocess.Popen

    def manage(self, *args: str, extra_env: dict[str, str] | None = None) -> str:
        return _manage({**self.env, **(extra_env or {})}, *args)

    def worker_pids(self) -> list[int]:
        """gunicorn's worker processes (the master's children)."""
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in path.read_text().split()]

    def start_poll_jobs(self, log_path: Path, *args: str) -> subprocess.Popen:
        with log_path.open("w") as log:
            return subprocess.Popen(
                [sys.executable, "manage.py", "poll_jobs", *args],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )


def rss_mb(pid: int) -> float:
    """Resident memory of a process, from /proc/<pid>/status VmRSS, in MB (10^6 bytes)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024 / 1e6
    raise RuntimeError(f"no VmRSS for {pid}")


def _env(data_dir: Path, api_url: str, extra: dict[str, str]) -> dict[str, str]:
    # Only the variables given here: nothing leaks in from the shell or a test run's settings.
    inherited = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FTDASH_", "DJANGO_", "GUNICORN_"))
        and k not in ("DATABASE_URL", "REDIS_URL", "PROMETHEUS_MULTIPROC_DIR")
    }
    return {
        **inherited,
        **_KEYS,
        "DJANGO_SETTINGS_MODULE": "ftdash.settings",
        "DATABASE_URL": "",
        "FTDASH_DATA_DIR": str(data_dir),
        "FTDASH_DEBUG": "false",
        "FTDASH_API_BASE_URL": api_url,
        "FTDASH_LOG_LEVEL": "WARNING",  # one INFO line per upstream call would be most of the log
        # Every benchmark but P10 (bench/token_budget.py, which sets its own) measures something
        # else than the request budget, with more calls a minute than the default allows.
        "FTDASH_TOKEN_REQUESTS_PER_MINUTE": "1000000",
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


def _manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    if result.returncode:
        raise RuntimeError(f"manage.py {args[0]} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


_prepared: Path | None = None


def _fresh_data_dir(data_dir: Path) -> None:
    """A migrated data dir with collected static files. Migrating and collecting happen once per
    process; each server then starts from a copy of that result, so every run is fresh."""
    global _prepared
    if _prepared is None:
        template = Path(tempfile.mkdtemp(prefix="ftdash-bench-template-"))
        atexit.register(shutil.rmtree, template, ignore_errors=True)
        env = _env(template, "http://127.0.0.1:9", {})
        _manage(env, "migrate", "--noinput")
        _manage(env, "collectstatic", "--noinput", "--verbosity", "0")
        _prepared = template
    shutil.copytree(_prepared, data_dir)


@contextlib.contextmanager
def serve(tmp: Path, *, api_url: str, workers: int | None = None, **extra_env: str) -> Iterator[Server]:
    """ftdash under gunicorn with the shipped config, on a fresh data dir in `tmp`."""
    workers = workers or default_workers()
    data_dir = tmp / "data"
    _fresh_data_dir(data_dir)
    port = free_port()
    env = _env(data_dir, api_url, {**extra_env, "HOST": "127.0.0.1", "PORT": str(port), "FTDASH_WORKERS": str(workers)})
    log_path = tmp / "gunicorn.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [str(BIN / "gunicorn"), "--config", "ftdash/gunicorn.conf.py", "ftdash.wsgi:application"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = Server(f"http://127.0.0.1:{port}", "127.0.0.1", port, workers, env, data_dir, log_path, process)
    try:
        deadline = time.monotonic() + 90
        while True:
            with contextlib.suppress(OSError):
                if asyncio.run(_one(server, "/healthz")).status == 200 and len(server.worker_pids()) == workers:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.2)
        yield server
    finally:
        stop_process(process)


async def _one(server: Server, path: str) -> Answer:
    client = Client(server.host, server.port)
    try:
        return await client.get(path)
    finally:
        client.close()


# ---------------------------------------------------------------------------- seeding

_SEED = r"""
import json
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.test import Client
from django.utils import timezone
from jobs import services
from jobs.auth_backends import BACKEND_PATH
from jobs.models import Membership, TrackedJob, Workspace

spec = json.load(open(SPEC))
User = get_user_model()
password = make_password(spec["password"])  # hashed once: hashing is slow on purpose
now = timezone.now()
teams = []
for number, team in enumerate(spec["teams"]):
    people = User.objects.bulk_create(
        User(username=f"t{number}-viewer{n}", password=password) for n in range(team["viewers"])
    )
    workspace = Workspace.objects.create(name=f"Team {number}")
    Membership.objects.bulk_create(
        Membership(workspace=workspace, user=user, role="owner" if n == 0 else team["role"])
        for n, user in enumerate(people)
    )
    token = services.token_create(workspace=workspace, user=people[0], name=f"token {number}", secret=team["secret"])
    TrackedJob.objects.bulk_create(
        TrackedJob(workspace=workspace, token=token, job_id=body["id"], snapshot=body, added_by=people[0],
                   status=body["status"], fetched_at=now, checked_at=now)
        for body in team["jobs"]
    )
    sessions = []
    for user in people:
        services.personal_workspace_create(user)  # bulk_create sends no post_save, which makes it
        client = Client()
        client.force_login(user, backend=BACKEND_PATH)
        sessions.append(client.cookies[settings.SESSION_COOKIE_NAME].value)
    jobs = dict(TrackedJob.objects.filter(workspace=workspace).values_list("job_id", "pk"))
    teams.append({"workspace": workspace.pk, "usernames": [u.username for u in people],
                  "sessions": sessions, "jobs": jobs})
print(json.dumps(teams))
"""

PASSWORD = "bench-passphrase-1"


@dataclass
class Team:
    workspace: int
    usernames: list[str]
    sessions: list[str]
    jobs: dict[str, int]  # upstream job id -> tracked job pk
    secret: str


def mostly_finished_teams(api, sizes: tuple[int, ...], *, running: int, name: str) -> list[dict]:
    """For `seed`: a team a size on the fake `api`, each with a token of its own and that many jobs,
    `running` of them running and the rest succeeded (P6's and P12's workspaces)."""
    teams = []
    for number, size in enumerate(sizes):
        secret = f"sk-bench-{name}-{number}-0123456789"
        api.add_token(secret)
        bodies = api.add_jobs(size - running, token=secret, status="succeeded", trained_steps=100, total_steps=100)
        bodies += api.add_jobs(running, token=secret, trained_steps=10, total_steps=1_000_000)
        teams.append({"secret": secret, "jobs": bodies})
    return teams


def seed(server: Server, teams: list[dict]) -> list[Team]:
    """Each of `teams` is {"secret": API token, "jobs": [job bodies from the fake], "viewers": n,
    "role": what viewers after the first (the owner) are}; returns what was created."""
    spec = {"password": PASSWORD, "teams": [{"viewers": 1, "role": "member", **team} for team in teams]}
    path = server.data_dir.parent / "seed.json"
    path.write_text(json.dumps(spec))
    out = server.manage("shell", "--no-imports", "-v", "0", "-c", f"SPEC = {str(path)!r}\n" + _SEED)
    created = json.loads(out.strip().splitlines()[-1])
    return [Team(secret=team["secret"], **made) for team, made in zip(teams, created, strict=True)]


# ---------------------------------------------------------------------------- HTTP


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    head: bytes  # status line and headers, as received
    body: bytes
    seconds: float  # from sending the request to the last byte of the answer

    @property
    def nbytes(self) -> int:
        return len(self.head) + len(self.body)


class Client:
    """One HTTP/1.1 connection's worth of client: kept alive when the server allows it."""

    def __init__(self, host: str, port: int, *, cookie: str = "") -> None:
        self.host, self.port, self.cookie = host, port, cookie
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.connects = 0

    def request_bytes(self, path: str, headers: dict[str, str] | None = None) -> bytes:
        lines = [f"GET {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        if self.cookie:
            lines.append(f"Cookie: ftdash_session={self.cookie}")
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    async def get(self, path: str, headers: dict[str, str] | None = None) -> Answer:
        return await self.send(self.request_bytes(path, headers))

    async def send(self, request: bytes) -> Answer:
        started = time.perf_counter()
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            self.connects += 1
        try:
            self.writer.write(request)
            head = await self.reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split()[1])
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
            if "content-length" in headers:
                body = await self.reader.readexactly(int(headers["content-length"]))
            elif status in (204, 304) or headers.get("connection", "").lower() != "close":
                body = b""
            else:
                body = await self.reader.read()
        except BaseException:
            self.close()
            raise
        if headers.get("connection", "").lower() == "close":
            self.close()
        return Answer(status, headers, head, body, time.perf_counter() - started)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


@dataclass
class Load:
    seconds: float
    answers: int
    statuses: dict[int, int]
    errors: int
    latencies: list[float]

    @property
    def per_second(self) -> float:
        return self.answers / self.seconds


async def hammer(
    server: Server, *, connections: int, seconds: float, request_for: Callable[[int], tuple[str, str, dict[str, str]]]
) -> Load:
    """`connections` clients, each sending its next request as soon as the last was answered,
    for `seconds`. `request_for(n)` gives client n's (session cookie, path, headers)."""
    statuses: dict[int, int] = {}
    latencies: list[float] = []
    errors = 0
    stop_at = time.perf_counter() + seconds

    async def one_client(n: int) -> None:
        nonlocal errors
        cookie, path, headers = request_for(n)
        client = Client(server.host, server.port, cookie=cookie)
        request = client.request_bytes(path, headers)
        try:
            while time.perf_counter() < stop_at:
                try:
                    answer = await client.send(request)
                except (OSError, asyncio.IncompleteReadError, ValueError):
                    errors += 1
                    continue
                statuses[answer.status] = statuses.get(answer.status, 0) + 1
                latencies.append(answer.seconds)
        finally:
            client.close()

    started = time.perf_counter()
    await asyncio.gather(*(one_client(n) for n in range(connections)))
    elapsed = time.perf_counter() - started
    return Load(elapsed, sum(statuses.values()), statuses, errors, latencies)


# ---------------------------------------------------------------------------- live parts

_LIVE_TAG = re.compile(r"<[a-z]+\s[^>]*\bdata-live-key=\"(\d+)\"[^>]*>")
_VERSION = re.compile(r'\bdata-live-version="([^"]*)"')


def live_parts(html: str) -> dict[int, tuple[str, bool]]:
    """{job pk: (version shown, still live)} for every live part in `html`, as live.js reads them."""
    parts = {}
    for match in _LIVE_TAG.finditer(html):
        tag = match.group(0)
        version = _VERSION.search(tag)
        parts[int(match.group(1))] = (version.group(1) if version else "", "data-live-active" in tag)
    return parts


def poll_path(parts: dict[int, tuple[str, bool]], base: str = "/live/cards/") -> str:
    """The poll live.js sends for these parts: the version of every part still live."""
    return base + "?" + "&".join(f"v={pk}.{version}" for pk, (version, active) in parts.items() if active)


POLL_HEADERS = {"HX-Request": "true", "HX-Current-URL": "http://127.0.0.1/"}


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


@dataclass
class Viewers:
    """What simulated dashboard tabs saw: every poll's status and latency, and what went wrong."""

    page_loads: list[float] = field(default_factory=list)
    polls: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    cards: int = 0  # cards received in 200 answers
    errors: list[str] = field(default_factory=list)
    # (time.perf_counter() at the answer, bytes of its body) of every poll answered
    answer_bodies: list[tuple[float, int]] = field(default_factory=list)
    # The versions the last tab to stop showed at the end, as `live_parts` gives them
    last_shown: dict[int, tuple[str, bool]] = field(default_factory=dict)

    def error(self, what: str) -> None:
        self.errors.append(what)


async def dashboard_tab(
    server: Server, cookie: str, *, every: float, phase: float, until: float, seen: Viewers
) -> None:
    """One dashboard tab doing what static/js/live.js does: load the page, then every `every`
    seconds after the last answer send the versions of its live cards, and morph in what comes
    back (here: note the new versions). Stops at `until` (time.perf_counter()), or when no card
    is live any more."""
    client = Client(server.host, server.port, cookie=cookie)
    try:
        await asyncio.sleep(phase)
        try:
            page = await client.get("/")
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            seen.error(f"dashboard: {type(exc).__name__}")
            return
        if page.status != 200:
            seen.error(f"dashboard: {page.status}")
            return
        seen.page_loads.append(page.seconds)
        parts = live_parts(page.body.decode())
        while time.perf_counter() + every < until and any(active for _, active in parts.values()):
            await asyncio.sleep(every)
            try:
                answer = await client.get(poll_path(parts), POLL_HEADERS)
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                seen.error(f"poll: {type(exc).__name__}")
                continue
            seen.polls.append(answer.seconds)
            seen.answer_bodies.append((time.perf_counter(), len(answer.body)))
            seen.statuses[answer.status] = seen.statuses.get(answer.status, 0) + 1
            if answer.status == 200:
                html = answer.body.decode()
                if "data-live-gone" in html:
                    seen.error("poll: a card came back as gone")
                changed = live_parts(html)
                seen.cards += len(changed)
                parts.update(changed)
            elif answer.status != 204:
                seen.error(f"poll: {answer.status}")
        seen.last_shown = parts
    finally:
        client.close()
