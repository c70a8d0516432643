"""Run ftdash as a real server process (gunicorn) for end-to-end tests.

On the PostgreSQL leg (DATABASE_URL set for the test run) each server gets a throwaway database
of its own on that PostgreSQL server, so what only PostgreSQL does (row locks with SKIP LOCKED
between worker processes, coalescing across gunicorn workers) runs there for real; otherwise it
gets a SQLite file in its data dir. Either way it never shares pytest-django's test database.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import requests

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ServerProcess:
    url: str
    data_dir: Path
    env: dict[str, str]
    log_path: Path
    database_url: str = ""  # empty: the SQLite file in data_dir

    def sql(self, query: str, params: tuple = ()) -> list[tuple]:
        """Run one statement on the server's database (``?`` placeholders); the rows, if any."""
        if self.database_url:
            import psycopg

            with psycopg.connect(self.database_url, autocommit=True) as db:
                cursor = db.execute(query.replace("?", "%s"), params)
                return cursor.fetchall() if cursor.description else []
        with sqlite3.connect(self.data_dir / "ftdash.sqlite3", timeout=20) as db:
            return db.execute(query, params).fetchall()

    def manage(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT, env=self.env, capture_output=True, text=True, check=True,
        )

    @property
    def log(self) -> str:
        return self.log_path.read_text()


def _is_postgres(url: str) -> bool:
    return urlsplit(url).scheme in ("postgres", "postgresql", "pgsql")


@contextlib.contextmanager
def throwaway_postgres() -> Iterator[str]:
    """A fresh, empty database on the PostgreSQL server of DATABASE_URL, dropped afterwards;
    yields its URL. Without a PostgreSQL DATABASE_URL, yields "" (use SQLite)."""
    base = os.environ.get("DATABASE_URL", "")
    if not _is_postgres(base):
        yield ""
        return
    import psycopg

    parts = urlsplit(base)
    name = f"ftdash_proc_{uuid.uuid4().hex[:12]}"
    maintenance = urlunsplit(parts._replace(path="/postgres", query=""))
    with psycopg.connect(maintenance, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(maintenance, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def ftdash_server(data_dir: Path, *, api_url: str, workers: int = 2, **extra_env: str) -> Iterator[ServerProcess]:
    """Migrate a fresh data dir and serve it with gunicorn on a free loopback port.

    The database is a throwaway PostgreSQL one on the PostgreSQL leg, SQLite otherwise;
    ``DATABASE_URL=""`` in ``extra_env`` pins SQLite (for tests about the SQLite file itself).
    """
    with contextlib.ExitStack() as stack:
        if "DATABASE_URL" in extra_env:
            database_url = extra_env.pop("DATABASE_URL")
        else:
            database_url = stack.enter_context(throwaway_postgres())
        yield stack.enter_context(_serve(data_dir, api_url, workers, database_url, extra_env))


@contextlib.contextmanager
def _serve(data_dir: Path, api_url: str, workers: int, database_url: str, extra_env: dict[str, str]) -> Iterator[ServerProcess]:
    # Only the variables given here: the server must not pick up the test run's own settings
    # (nor pytest-django's database, nor the Redis of the Redis leg unless a test asks for it).
    inherited = {
        k: v for k, v in os.environ.items()
        if not k.startswith(("FTDASH_", "DJANGO_")) and k not in ("DATABASE_URL", "REDIS_URL")
    }
    env = {
        **inherited,
        "DJANGO_SETTINGS_MODULE": "ftdash.settings",
        "FTDASH_DATA_DIR": str(data_dir),
        "FTDASH_DEBUG": "true",
        "FTDASH_API_BASE_URL": api_url,
        "FTDASH_REFRESH_SECONDS": "1",
        "FTDASH_QUEUED_REFRESH_SECONDS": "1",
        "FTDASH_API_READ_TIMEOUT": "2",
        "FTDASH_TOKEN_REQUESTS_PER_MINUTE": "1000000",  # unless a test is about the budget
        "PYTHONUNBUFFERED": "1",
        "DATABASE_URL": database_url,
        **extra_env,
    }
    port = free_port()
    server = ServerProcess(
        f"http://127.0.0.1:{port}", data_dir, env, data_dir.parent / f"server-{port}.log", database_url
    )
    server.manage("migrate", "--noinput")
    with server.log_path.open("w") as log:
        process = subprocess.Popen(
            [str(BIN / "gunicorn"), "ftdash.wsgi:application", "--workers", str(workers),
             "--bind", f"127.0.0.1:{port}", "--access-logfile", "-"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60  # gunicorn's import of Django is slow on a busy machine
        while True:
            try:
                requests.get(server.url + "/healthz", timeout=5)
                break
            except requests.RequestException:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"ftdash did not start:\n{server.log}") from None
                time.sleep(0.1)
        yield server
    finally:
        stop_process(process)


def stop_process(process: subprocess.Popen) -> None:
    """SIGTERM, and SIGKILL if that is not heard within 30 s."""
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def signed_in_session(server: ServerProcess, username: str, password: str) -> requests.Session:
    """A requests session signed in through the real sign-in form (with its CSRF token)."""
    session = requests.Session()
    session.get(server.url + "/accounts/login/")
    response = session.post(
        server.url + "/accounts/login/",
        data={"username": username, "password": password, "csrfmiddlewaretoken": session.cookies["ftdash_csrftoken"]},
        headers={"Referer": server.url + "/accounts/login/"},
    )
    response.raise_for_status()
    return session


def post_form(session: requests.Session, server: ServerProcess, path: str, data: dict) -> requests.Response:
    return session.post(
        server.url + path,
        data={**data, "csrfmiddlewaretoken": session.cookies["ftdash_csrftoken"]},
        headers={"Referer": server.url + path},
    )


ADMIN_PASSWORD = "a-long-passphrase-1"


def create_admin(server: ServerProcess, username: str = "admin") -> None:
    """An administrator made the documented way: `manage.py createsuperuser --noinput`."""
    server.env["DJANGO_SUPERUSER_PASSWORD"] = ADMIN_PASSWORD
    server.manage("createsuperuser", "--noinput", "--username", username, "--email", f"{username}@example.com")


def save_token(session: requests.Session, server: ServerProcess, secret: str, name: str = "main") -> str:
    """Save an API token through the tokens page; returns its id."""
    page = post_form(session, server, "/tokens/", {"name": name, "secret": secret}).text
    return re.search(r"/tokens/(\d+)/test/", page).group(1)


def start_worker(server: ServerProcess, log_path: Path, *args: str, **extra_env: str) -> subprocess.Popen:
    """`manage.py poll_jobs` against the server's data dir, logging to `log_path`."""
    with open(log_path, "w") as log:
        return subprocess.Popen(
            [sys.executable, "manage.py", "poll_jobs", *args],
            cwd=ROOT, env={**server.env, **extra_env}, stdout=log, stderr=subprocess.STDOUT,
        )


def wait_for(condition, timeout: float = 30.0, what: str = "condition"):
    """Poll `condition` until it returns something truthy, and return that.

    The deadline is generous on purpose: it only matters when something is broken, and a
    loaded 2-core CI machine can be many times slower than a laptop."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
