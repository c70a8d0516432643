"""Backups taken while the app runs restore into a fresh data dir with everything intact."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from django.db import connection

from tests.fake_tokenfactory import FakeTokenFactory
from tests.server_process import ROOT, ftdash_server, post_form, signed_in_session

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
        server.env["DJANGO_SUPERUSER_PASSWORD"] = "a-long-passphrase-1"
        server.manage("createsuperuser", "--noinput", "--username", "admin", "--email", "a@example.com")
        session = signed_in_session(server, "admin", "a-long-passphrase-1")
        page = post_form(session, server, "/tokens/", {"name": "main", "secret": SECRET}).text
        token_pk = re.search(r"/tokens/(\d+)/test/", page).group(1)
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
