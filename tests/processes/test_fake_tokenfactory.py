"""The fake Token Factory run by hand (`python -m tests.support.fake_tokenfactory`), as the README
shows for trying ftdash without an API key: it prints a demo token and jobs, serves them, and
stops on Ctrl-C. Its behaviour as an API is tested in tests/test_fake_tokenfactory.py.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys

import requests

from tests.support.server_process import ROOT


def test_it_runs_standalone_with_a_demo_token_and_jobs():
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.fake_tokenfactory", "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        lines = []
        while not any("Ctrl-C" in line for line in lines):
            line = process.stdout.readline()
            assert line, f"demo server exited early: {lines}"
            lines.append(line)
        output = "".join(lines)
        url = re.search(r"http://127\.0\.0\.1:\d+", output).group(0)
        assert "demo-token" in output
        printed_ids = set(re.findall(r"ftjob-[0-9a-f]{32}", output))
        assert len(printed_ids) == 5
        jobs = requests.get(
            f"{url}/v1/fine_tuning/jobs", headers={"Authorization": "Bearer demo-token"}, timeout=5
        ).json()["data"]
        assert {j["id"] for j in jobs} == printed_ids
        statuses = sorted(j["status"] for j in jobs)
        assert statuses == ["failed", "queued", "running", "running", "succeeded"]
        methods = {(j["method"] or {}).get("type") for j in jobs}
        assert {"supervised", "spec-draft"} <= methods
        failed = next(j for j in jobs if j["status"] == "failed")
        assert set(failed["error"]) == {"code", "message", "param"}
        kinds = {i["type"] for j in jobs for i in (j["integrations"] or [])}
        assert {"wandb", "hf"} <= kinds
        process.send_signal(signal.SIGINT)  # Ctrl-C
        assert process.wait(timeout=60) == 0  # a deadline for a loaded machine, not a speed test
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=60)
        process.stdout.close()
