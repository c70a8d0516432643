"""Run ftdash as a real server process (gunicorn) for end-to-end tests."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

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

    def manage(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT, env=self.env, capture_output=True, text=True, check=True,
        )

    @property
    def log(self) -> str:
        return self.log_path.read_text()


@contextlib.contextmanager
def ftdash_server(data_dir: Path, *, api_url: str, workers: int = 2, **extra_env: str) -> Iterator[ServerProcess]:
    """Migrate a fresh data dir and serve it with gunicorn on a free loopback port."""
    # Only the variables given here: the server must not pick up the test run's own settings
    # (nor the PostgreSQL/Redis of the PostgreSQL leg: each server gets its own SQLite).
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
        "PYTHONUNBUFFERED": "1",
        **extra_env,
    }
    port = free_port()
    server = ServerProcess(f"http://127.0.0.1:{port}", data_dir, env, data_dir.parent / f"server-{port}.log")
    server.manage("migrate", "--noinput")
    with server.log_path.open("w") as log:
        process = subprocess.Popen(
            [str(BIN / "gunicorn"), "ftdash.wsgi:application", "--workers", str(workers),
             "--bind", f"127.0.0.1:{port}", "--access-logfile", "-"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 20
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
        process.terminate()
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


def wait_for(condition, timeout: float = 15.0, what: str = "condition"):
    """Poll `condition` until it returns something truthy, and return that."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
