"""A PostgreSQL cluster of a test's own, on its own port, that the test may stop and start.

The shared PostgreSQL (the PostgreSQL leg's DATABASE_URL) must never be stopped: other test
runs use it. A test about a database outage makes its own cluster with Debian's `initdb` and
`pg_ctl` in a temporary directory (trust auth, loopback only) and removes it afterwards. As
root, PostgreSQL refuses to run, so the binaries run as the `postgres` user.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.server_process import free_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def _missing_binaries() -> str:
    missing = [name for name in ("initdb", "pg_ctl") if not (PG_BIN / name).exists()]
    if missing:
        return f"PostgreSQL 15's {' and '.join(missing)} not found in {PG_BIN}: apt-get install postgresql-15"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root, and there is no postgres user to run PostgreSQL as"
    return ""


class Cluster:
    """One PostgreSQL server: `stop()` and `start()` it; `url(name)` for a database on it."""

    def __init__(self, directory: Path, port: int):
        self.directory, self.port = directory, port
        self.data = directory / "data"
        self.log = directory / "postgres.log"

    def _run(self, *args: str) -> None:
        command = [str(PG_BIN / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, text=True, timeout=120)

    def create(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")

    def start(self) -> None:
        # -w: returns once the server accepts connections.
        self._run(
            "pg_ctl",
            "start",
            "-w",
            "-t",
            "60",
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-o",
            f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1",
        )

    def stop(self) -> None:
        # Fast shutdown: open connections are cut, as when PostgreSQL restarts for real.
        self._run("pg_ctl", "stop", "-w", "-t", "60", "-m", "fast", "-D", str(self.data))

    def url(self, database: str = "postgres") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


@contextlib.contextmanager
def postgres_cluster() -> Iterator[Cluster]:
    """A fresh, running cluster on a free port; stopped and removed afterwards.

    Skips the test, saying why, where Debian's PostgreSQL binaries are missing."""
    reason = _missing_binaries()
    if reason:
        pytest.skip(reason)
    directory = Path(tempfile.mkdtemp(prefix="ftdash-pg-"))
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres", "postgres")
    cluster = Cluster(directory, free_port())
    try:
        cluster.create()
        cluster.start()
        yield cluster
    finally:
        with contextlib.suppress(subprocess.CalledProcessError, FileNotFoundError):
            cluster.stop()
        shutil.rmtree(directory, ignore_errors=True)
