"""A data directory ftdash cannot create or write ends start-up with one sentence, not a traceback.

Checked for what people start: a manage.py command, `runserver` (what `make run` serves with,
after its `migrate`) and gunicorn as `make serve` and the systemd unit run it. The tests run as
root, whom permission bits do not stop, so "cannot write" is a read-only bind mount of the
directory (as root) or, for anyone else, a directory without write permission; "cannot create"
is a path under a regular file, which stops everyone.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.server_process import BIN, ROOT, free_port

KEYS = {
    "FTDASH_SECRET_KEY": "data-dir-test-" + "k" * 50,
    "FTDASH_ENCRYPTION_KEYS": "mkK3wq0dPzgXk6pI3ZdX6c6nXbH2x1Rkq2cYbnFqAqU=",
}


@contextlib.contextmanager
def unwritable_directory(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "read-only"
    path.mkdir()
    if os.geteuid() != 0:
        path.chmod(0o500)
        try:
            yield path
        finally:
            path.chmod(0o700)
        return
    mounted = subprocess.run(["mount", "--bind", "-o", "ro", str(path), str(path)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"running as root without the right to mount a read-only directory: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


def start(command: list[str], data_dir: Path) -> subprocess.CompletedProcess:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FTDASH_", "DJANGO_")) and k not in ("DATABASE_URL", "REDIS_URL")
    }
    env.update(DJANGO_SETTINGS_MODULE="ftdash.settings", FTDASH_DATA_DIR=str(data_dir), PORT=str(free_port()), **KEYS)
    # A process that did start would serve until the timeout: that is a failure too.
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


COMMANDS = {
    "manage.py migrate": [sys.executable, "manage.py", "migrate", "--noinput"],
    "manage.py runserver": [sys.executable, "manage.py", "runserver", f"127.0.0.1:{free_port()}"],
    "gunicorn as make serve runs it": [
        str(BIN / "gunicorn"),
        "--config",
        "ftdash/gunicorn.conf.py",
        "ftdash.wsgi:application",
    ],
}


def assert_one_sentence(done: subprocess.CompletedProcess, data_dir: Path, reason: str) -> None:
    assert done.returncode != 0
    output = (done.stdout + done.stderr).strip()
    assert output == (
        f"ftdash cannot write to its data directory {data_dir} (FTDASH_DATA_DIR): {reason}; make it "
        "writable for the user ftdash runs as, or set FTDASH_DATA_DIR to a directory that is."
    ), output


@pytest.mark.parametrize("command", list(COMMANDS.values()), ids=list(COMMANDS))
def test_a_data_dir_that_cannot_be_written_stops_start_up_with_one_sentence(tmp_path, command):
    with unwritable_directory(tmp_path) as data_dir:
        done = start(command, data_dir)
        assert_one_sentence(done, data_dir, "read-only file system" if os.geteuid() == 0 else "permission denied")
        assert os.listdir(data_dir) == []


@pytest.mark.parametrize("command", list(COMMANDS.values()), ids=list(COMMANDS))
def test_a_data_dir_that_cannot_be_created_stops_start_up_with_one_sentence(tmp_path, command):
    (tmp_path / "a-file").write_text("not a directory")
    data_dir = tmp_path / "a-file" / "data"
    assert_one_sentence(start(command, data_dir), data_dir, "not a directory")


def test_gunicorn_without_ftdashs_config_stops_instead_of_restarting_workers_forever(tmp_path):
    (tmp_path / "a-file").write_text("not a directory")
    data_dir = tmp_path / "a-file" / "data"
    bare = [
        str(BIN / "gunicorn"),
        "--workers",
        "2",
        "--bind",
        "127.0.0.1:0",
        "--no-control-socket",
        "ftdash.wsgi:application",
    ]
    done = start(bare, data_dir)
    # It stopped (start() times out on a gunicorn that keeps restarting workers). Its exit status
    # and whether it prints a traceback of its own ("Worker failed to boot.") depend on whether
    # the worker died before or after the master entered its main loop: a race on a busy machine.
    assert done.returncode in (1, 3), done.stderr[-2000:]
    assert "Worker failed to boot." in done.stderr
    assert f"ftdash cannot write to its data directory {data_dir} (FTDASH_DATA_DIR): not a directory" in done.stderr
