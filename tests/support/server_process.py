"""ftdash as real processes for end-to-end tests: gunicorn (`ftdash_server`), `manage.py`
commands and the worker (`start_worker`), and how to stop them.

On the PostgreSQL leg (DATABASE_URL set for the test run) each server gets a throwaway database
of its own on that PostgreSQL server, so what only PostgreSQL does (row locks with SKIP LOCKED
between worker processes, coalescing across gunicorn workers) runs there for real; otherwise it
gets a SQLite file in its data dir. Either way it never shares pytest-django's test database.
"""

from __future__ import annotations

import contextlib
import os
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

ROOT = Path(__file__).resolve().parents[2]  # the repository: manage.py, deploy/, docs/
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
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
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
def _serve(
    data_dir: Path, api_url: str, workers: int, database_url: str, extra_env: dict[str, str]
) -> Iterator[ServerProcess]:
    # Only the variables given here: the server must not pick up the test run's own settings
    # (nor pytest-django's database, nor the Redis of the Redis leg unless a test asks for it).
    inherited = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FTDASH_", "DJANGO_"))
        and k not in ("DATABASE_URL", "REDIS_URL", "PROMETHEUS_MULTIPROC_DIR")
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
            [
                str(BIN / "gunicorn"),
                "ftdash.wsgi:application",
                "--workers",
                str(workers),
                "--bind",
                f"127.0.0.1:{port}",
                "--access-logfile",
                "-",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
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


def start_worker(server: ServerProcess, log_path: Path, *args: str, **extra_env: str) -> subprocess.Popen:
    """`manage.py poll_jobs` against the server's data dir, logging to `log_path`."""
    with open(log_path, "w") as log:
        return subprocess.Popen(
            [sys.executable, "manage.py", "poll_jobs", *args],
            cwd=ROOT,
            env={**server.env, **extra_env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
