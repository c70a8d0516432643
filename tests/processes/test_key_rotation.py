"""Start-up without a usable FTDASH_ENCRYPTION_KEYS in production: `manage.py check` in a fresh
process stops with a message naming the setting, and mints no key on the quiet. Rotation itself,
and a wrong key while running, are tested in tests/test_key_rotation.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.server_process import ROOT


def production_env(data_dir: Path, **variables: str) -> dict[str, str]:
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR") if k in os.environ}
    env.update(
        DJANGO_SETTINGS_MODULE="ftdash.settings",
        FTDASH_DATA_DIR=str(data_dir),
        FTDASH_SECRET_KEY="production-" + "s" * 50,
        PYTHONUNBUFFERED="1",
        **variables,
    )
    return env


def test_a_missing_key_in_production_stops_start_up_with_a_message_naming_it(tmp_path):
    data_dir = tmp_path / "data"
    done = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=production_env(data_dir),
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode != 0
    assert "FTDASH_ENCRYPTION_KEYS is not set" in done.stderr
    assert "Traceback" not in done.stderr.splitlines()[-1]
    # No key was minted on the quiet: that would make later-restored tokens unreadable.
    assert not (data_dir / "encryption_key").exists()


def test_a_value_that_is_not_a_fernet_key_stops_start_up_with_a_message_naming_it(tmp_path):
    done = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=production_env(tmp_path / "data", FTDASH_ENCRYPTION_KEYS="not-a-key"),
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode != 0
    assert "FTDASH_ENCRYPTION_KEYS holds a value that is not a Fernet key" in done.stderr
