"""The limits of every upstream call (issue 17, items 1 and 2), where only a process of their
own can tell: a 400 MB answer refused within 150 MB of memory, and the limits read from the
environment at start-up. The rest of the limits are tested in tests/test_upstream_limits.py.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from cryptography.fernet import Fernet

from bench.upstream_limits import call_in_fresh_process


@pytest.mark.parametrize("kind", ["huge_chunked", "huge_gzip"])
def test_a_process_refusing_a_400_mb_answer_stays_under_150_mb(fake_api, kind):
    job = fake_api.add_job()
    fake_api.fail_next(kind)  # 400 MiB, made as it is sent

    # ftdash's own settings (FTDASH_API_MAX_ANSWER_BYTES at its 8 MiB default), a fresh process.
    result = call_in_fresh_process(fake_api.url, job["id"])

    assert result["error"] == "AnswerTooLarge"
    assert result["message"] == "Token Factory's answer was larger than 8 MB."
    assert result["peak_rss_mb"] <= 150


def test_the_limits_come_from_the_environment_and_refuse_nonsense(tmp_path):
    check = "from django.conf import settings; print(settings.FTDASH_API_TOTAL_TIMEOUT, settings.FTDASH_API_MAX_ANSWER_BYTES)"

    def settings_with(**env):
        return subprocess.run(
            [sys.executable, "-c", f"import django; django.setup(); {check}"],
            env={
                "PATH": "/usr/bin:/bin",
                "DJANGO_SETTINGS_MODULE": "ftdash.settings",
                "FTDASH_DATA_DIR": str(tmp_path),
                "FTDASH_SECRET_KEY": "k" * 50,
                "FTDASH_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
                **env,
            },
            capture_output=True,
            text=True,
            timeout=60,
        )

    assert settings_with().stdout.split() == ["15.0", "8388608"]
    assert settings_with(FTDASH_API_TOTAL_TIMEOUT="2.5", FTDASH_API_MAX_ANSWER_BYTES="1000").stdout.split() == [
        "2.5",
        "1000",
    ]
    refused = settings_with(FTDASH_API_MAX_ANSWER_BYTES="8MB")
    assert refused.returncode != 0 and "FTDASH_API_MAX_ANSWER_BYTES='8MB' is not a whole number" in refused.stderr
