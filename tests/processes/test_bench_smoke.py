"""Tiny runs of the benchmark scripts (bench/), so that `make bench` keeps working.

Each test runs one script's `--smoke` through bench/run.py, the way `make bench` runs it, as a
separate process (its own gunicorn, fake API and data dir), writing into a BENCHMARKS.md of its
own. What is checked is that the script ran, that its figures landed between the markers and
that the prose around them was kept. The figures of a smoke run mean nothing and are not judged.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench.run import BEGIN, END
from tests.support.server_process import ROOT

pytestmark = pytest.mark.bench

PROSE = f"# Benchmarks\n\nProse written by hand.\n\n{BEGIN}\nthe figures of an older run\n{END}\n\nMore prose.\n"


def run_smoke(tmp_path: Path, script: str) -> str:
    output = tmp_path / "BENCHMARKS.md"
    output.write_text(PROSE)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FTDASH_", "DJANGO_"))
        and k not in ("DATABASE_URL", "REDIS_URL", "PROMETHEUS_MULTIPROC_DIR")
    }
    result = subprocess.run(
        [sys.executable, "bench/run.py", "--smoke", "--only", script, "--output", str(output)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-5000:]
    text = output.read_text()
    assert text.startswith("# Benchmarks\n\nProse written by hand.\n\n" + BEGIN + "\n")
    assert text.endswith(END + "\n\nMore prose.\n")
    assert "the figures of an older run" not in text
    assert "a **smoke** run" in text
    return text


@pytest.mark.parametrize(
    "script, keys",
    [
        ("upstream_calls", ["P1"]),
        ("upstream_limits", ["P11"]),
        ("dashboard_size", ["P6"]),
        ("metrics_scrape", ["P12"]),
        ("worker_rounds", ["P7"]),
        ("soak", ["P8", "P9"]),
        ("token_budget", ["P10"]),
    ],
)
def test_a_benchmark_script_runs_and_writes_its_figures_into_benchmarks_md(tmp_path, script, keys):
    text = run_smoke(tmp_path, script)
    summary = text.split("### Summary", 1)[1].split("###", 1)[0]
    for key in keys:
        assert re.search(rf"^\| {key} \| .+ \| (met|\*\*NOT met\*\*) \|$", summary, re.M), summary
    assert "crashed" not in text


def test_the_poll_benchmark_counts_a_quiet_tabs_bytes_and_shows_its_poll_byte_for_byte(tmp_path):
    text = run_smoke(tmp_path, "polls")
    for key in ("P2", "P3", "P4"):
        assert re.search(rf"^\| {key} \| .+ \| (met|\*\*NOT met\*\*) \|$", text, re.M)
    assert re.search(r"^\| P4 \| .+ \| \d+ B in \d+ answers \|", text, re.M)
    captured = re.search(r"^\| unchanged poll \(0 of 20 cards back\) \| 204, (\d+) B \|", text, re.M)
    bytes_reported = int(captured.group(1))
    head = text.split("byte for byte as received", 1)[1].split("```")[1].strip("\n")
    # The status line and headers as received, each line ending CRLF, and the blank line after;
    # the poll captured from a tab of quiet jobs is a 204 that says how fresh they are.
    assert head.startswith("HTTP/1.1 204 ")
    assert re.search(r"^X-Ftdash-Checked-At: \S+Z$", head, re.M)
    assert bytes_reported == len((head.replace("\n", "\r\n") + "\r\n\r\n").encode("latin-1"))


@pytest.mark.browser
def test_the_browser_benchmark_counts_a_tabs_polls_visible_and_hidden(tmp_path, chromium_executable):
    text = run_smoke(tmp_path, "browser_polls")
    answered = sum(int(n) for n in re.findall(r"(\d+) × 200", text))
    hidden = int(re.search(r"^\| hidden \| (\d+) \|", text, re.M).group(1))
    # The page polled and its polls were seen. (How many fall in the smoke's 3 s visible window
    # depends on how busy the machine is: not asserted.)
    assert answered >= 1
    assert hidden == 0  # a hidden tab waits a minute, longer than the smoke's window
    assert re.search(r"^\| P5 \| .+ \| (met|\*\*NOT met\*\*) \|$", text, re.M)
