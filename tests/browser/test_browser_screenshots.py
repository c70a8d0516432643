"""Screenshots of the dashboard and a job page, with a realistic mix of jobs.

They go to pytest's tmp_path, or, with FTDASH_UPDATE_SCREENSHOTS=1, to docs/screenshot.png
(dashboard) and docs/screenshot-job.png (job page) for the README.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from tests.support.browser_pages import expect, job_card, open_job_page, track_job
from tests.support.fake_tokenfactory import seed_demo_jobs

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", header[16:24])


@pytest.mark.browser
@pytest.mark.username("ada")
def test_dashboard_and_job_page_screenshots(dashboard, fake_api, api_secret, tmp_path):
    page = dashboard
    seeded = seed_demo_jobs(fake_api, token=api_secret)
    queued, succeeded, failed, running = (
        next(job_id for description, job_id in seeded.items() if description.startswith(status))
        for status in ("queued", "succeeded", "failed", "running")
    )
    # Newest first on the dashboard: running, failed and succeeded fill the first row.
    track_job(page, queued, label="FAQ bot v2")
    track_job(page, succeeded, label="Summarizer v1")
    track_job(page, failed)
    track_job(page, running, label="Support bot")

    page.goto("/")  # without the "Now tracking" message
    for job_id, status in [(running, "running"), (queued, "queued"), (succeeded, "succeeded"), (failed, "failed")]:
        expect(job_card(page, job_id).locator(".badge")).to_have_text(status)
    update = os.environ.get("FTDASH_UPDATE_SCREENSHOTS") == "1"
    out = DOCS if update else tmp_path
    dashboard_png = out / "screenshot.png"
    page.screenshot(path=dashboard_png)

    open_job_page(page, running)
    expect(page.get_by_role("region", name="Integrations")).to_contain_text("Weights & Biases")
    job_png = out / "screenshot-job.png"
    page.screenshot(path=job_png)

    for path in (dashboard_png, job_png):
        assert _png_size(path) == (1280, 800)
