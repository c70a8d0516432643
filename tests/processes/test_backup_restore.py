"""Backups taken while the app runs restore into a fresh data dir with everything intact."""

from __future__ import annotations

import contextlib
import json
import resource
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connection

from tests.support.fake_tokenfactory import FakeTokenFactory
from tests.support.server_process import ROOT, ftdash_server
from tests.support.web_forms import ADMIN_PASSWORD, create_admin, post_form, save_token, signed_in_session

SECRET = "sk-backup-test-0123456789-abcd"
KEYS = {
    "FTDASH_SECRET_KEY": "backup-test-" + "k" * 50,
    "FTDASH_ENCRYPTION_KEYS": "mkK3wq0dPzgXk6pI3ZdX6c6nXbH2x1Rkq2cYbnFqAqU=",
}

INSPECT = """
import json
from django.contrib.auth.models import User
from jobs import vault
from jobs.models import ApiToken, Membership, TrackedJob, Workspace
print(json.dumps({
    "users": sorted(User.objects.values_list("username", flat=True)),
    "workspaces": sorted(Workspace.objects.values_list("name", flat=True)),
    "memberships": Membership.objects.count(),
    "tokens": [vault.decrypt(t.secret_encrypted) for t in ApiToken.objects.all()],
    "jobs": sorted(TrackedJob.objects.values_list("job_id", "label", "status")),
}))
"""


@pytest.mark.skipif(connection.vendor != "sqlite", reason="the SQLite leg; see test for PostgreSQL")
def test_a_backup_taken_while_serving_restores_everything(tmp_path):
    with FakeTokenFactory() as api, ftdash_server(tmp_path / "live", api_url=api.url, **KEYS) as server:
        api.add_token(SECRET)
        job = api.add_job(total_steps=100, trained_steps=40)
        create_admin(server)
        session = signed_in_session(server, "admin", ADMIN_PASSWORD)
        token_pk = save_token(session, server, SECRET)
        post_form(session, server, "/jobs/track/", {"job_id": job["id"], "token": token_pk, "label": "baseline"})
        # The app keeps serving (and writing sessions) while the backup runs.
        backup = tmp_path / "ftdash.sqlite3.bak"
        server.manage("backup", "--output", str(backup))
        assert session.get(server.url + "/").status_code == 200
        before = json.loads(server.manage("shell", "-v", "0", "-c", INSPECT).stdout)
    assert oct(backup.stat().st_mode & 0o777) == "0o600"

    fresh = tmp_path / "fresh"
    env = {**server.env, "FTDASH_DATA_DIR": str(fresh)}

    def manage(*args):
        return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True)

    restored = manage("restore", str(backup))
    assert restored.returncode == 0, restored.stderr
    assert manage("migrate", "--check").returncode == 0
    after = json.loads(manage("shell", "-v", "0", "-c", INSPECT).stdout)
    assert after == before
    assert after["tokens"] == [SECRET]
    assert after["users"] == ["admin"]
    assert after["jobs"] == [[job["id"], "baseline", "running"]]
    # A second restore over live data is refused unless forced.
    again = manage("restore", str(backup))
    assert again.returncode != 0 and "already holds accounts" in again.stderr


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the PostgreSQL leg (DATABASE_URL set)")
def test_a_postgres_backup_restores_into_a_fresh_database(tmp_path):
    import psycopg

    settings_db = connection.settings_dict
    admin_url = (
        f"postgresql://{settings_db['USER']}@{settings_db['HOST']}:{settings_db['PORT'] or 5432}/{settings_db['NAME']}"
    )
    names = ["ftdash_backup_source", "ftdash_backup_target"]
    with psycopg.connect(admin_url, autocommit=True) as admin:
        for name in names:
            admin.execute(f"DROP DATABASE IF EXISTS {name}")
            admin.execute(f"CREATE DATABASE {name}")
    base = admin_url.rsplit("/", 1)[0]
    try:
        source_env = {
            **_clean_env(),
            **KEYS,
            "FTDASH_DATA_DIR": str(tmp_path / "a"),
            "DATABASE_URL": f"{base}/{names[0]}",
        }
        target_env = {**source_env, "FTDASH_DATA_DIR": str(tmp_path / "b"), "DATABASE_URL": f"{base}/{names[1]}"}

        def manage(env, *args):
            result = subprocess.run(
                [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True
            )
            assert result.returncode == 0, result.stderr
            return result.stdout

        manage(source_env, "migrate", "--noinput")
        manage(source_env, "shell", "-v", "0", "-c", SEED)
        before = json.loads(manage(source_env, "shell", "-v", "0", "-c", INSPECT))
        backup = tmp_path / "ftdash.pgdump"
        manage(source_env, "backup", "--output", str(backup))
        manage(target_env, "restore", str(backup))
        after = json.loads(manage(target_env, "shell", "-v", "0", "-c", INSPECT))
        assert after == before and after["tokens"] == [SECRET]
    finally:
        connection.close()
        with psycopg.connect(admin_url, autocommit=True) as admin:
            for name in names:
                admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


SEED = f"""
from django.contrib.auth.models import User
from django.utils import timezone
from jobs import services
from jobs.access import user_memberships
from jobs.models import TrackedJob
user = User.objects.create_user("admin", password="a-long-passphrase-1")
workspace = user_memberships(user)[0].workspace
token = services.token_create(workspace=workspace, user=user, name="main", secret="{SECRET}")
now = timezone.now()
TrackedJob.objects.create(workspace=workspace, token=token, job_id="ftjob-" + "c" * 32, label="baseline",
    snapshot={{"id": "ftjob-" + "c" * 32, "status": "running"}}, status="running", fetched_at=now, checked_at=now)
"""


def _clean_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith(("FTDASH_", "DJANGO_")) and k != "REDIS_URL"}


@contextlib.contextmanager
def _small_tmpfs(path: Path) -> Iterator[Path]:
    """A 64 KB file system at `path`: a disk far too small for any backup."""
    path.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(path)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (the file-size-limit case still runs): {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


def _file_size_limit() -> None:
    """In the backup's process: no file may grow past 64 KB, and passing it fails the write
    (EFBIG) rather than killing the process (SIGXFSZ)."""
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


@pytest.mark.skipif(connection.vendor != "sqlite", reason="the SQLite leg")
@pytest.mark.parametrize(("disk", "reason"), [("tmpfs", "the disk is full"), ("file-size-limit", "disk I/O error")])
def test_a_disk_that_fills_during_a_backup_leaves_no_half_written_backup(tmp_path, disk, reason):
    env = {**_clean_env(), **KEYS, "FTDASH_DATA_DIR": str(tmp_path / "data"), "DATABASE_URL": ""}
    for args in (["migrate", "--noinput"], ["shell", "-v", "0", "-c", SEED]):
        subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=True)
    assert (tmp_path / "data" / "ftdash.sqlite3").stat().st_size > 256 * 1024  # more than either disk holds

    with contextlib.ExitStack() as stack:
        if disk == "tmpfs":
            backups = stack.enter_context(_small_tmpfs(tmp_path / "backups"))
            limit = None
        else:
            backups = tmp_path / "backups"
            backups.mkdir()
            limit = _file_size_limit
        earlier = backups / "ftdash-earlier.sqlite3"
        earlier.write_bytes(b"an earlier backup")
        output = backups / "ftdash-now.sqlite3"
        done = subprocess.run(
            [sys.executable, "manage.py", "backup", "--output", str(output)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            preexec_fn=limit,
            timeout=120,
        )
        assert done.returncode != 0
        assert done.stderr.strip() == f"CommandError: No backup was written to {output}: {reason}.", done.stderr
        assert "Traceback" not in done.stderr and "Backup written" not in done.stdout
        # Nothing half-written is left, under the backup's name or any other; earlier backups stay.
        assert sorted(p.name for p in backups.iterdir()) == [earlier.name]
        assert earlier.read_bytes() == b"an earlier backup"
