"""Screenshots of the dashboard and a job page, with a realistic mix of jobs.

They go to pytest's tmp_path, or, with FTDASH_UPDATE_SCREENSHOTS=1, to docs/screenshot.png
(dashboard) and docs/screenshot-job.png (job page) for the README.
"""

from __future__ import annotations

import os
import struct
import time
from pathlib import Path

import pytest

from tests.browser.pages import expect, job_card, open_job_page, track_job
from tests.fake_tokenfactory import default_hyperparameters

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", header[16:24])


@pytest.mark.browser
@pytest.mark.username("ada")
def test_dashboard_and_job_page_screenshots(dashboard, fake_api, api_secret, tmp_path):
    page = dashboard
    now = int(time.time())
    supervised_lora = {
        "type": "supervised",
        "supervised": {"hyperparameters": {**default_hyperparameters(), "n_epochs": 3, "lora_r": 32}},
    }
    failed = fake_api.add_job(
        token=api_secret,
        model="Qwen/Qwen3-4B",
        suffix="broken-data",
        status="failed",
        created_at=now - 3_600,
        finished_at=now - 3_300,
        total_steps=240,
        trained_steps=38,
        error={
            "code": "invalid_training_file",
            "message": "Line 17 of the training file: expected a 'messages' list",
            "param": "training_file",
        },
    )["id"]
    succeeded = fake_api.add_job(
        token=api_secret,
        model="meta-llama/Llama-3.1-8B-Instruct",
        suffix="summarizer",
        status="succeeded",
        created_at=now - 86_400,
        finished_at=now - 86_400 + 5_400,
        total_steps=500,
        trained_steps=500,
        trained_tokens=500 * 4096,
        integrations=[
            {
                "type": "mlflow",
                "mlflow": {
                    "tracking_uri": "https://mlflow.example.com",
                    "experiment_name": "summarizer",
                    "run_name": "llama-8b-lora",
                },
            }
        ],
    )["id"]
    queued = fake_api.add_job(
        token=api_secret,
        model="meta-llama/Llama-3.1-8B-Instruct",
        suffix="faq-v2",
        total_steps=120,
        queued_for_seconds=3_600,
        method=supervised_lora,
        from_checkpoint={"type": "hf", "repo": "acme-ml/faq-v1", "revision": "main"},
    )["id"]
    running = fake_api.add_job(
        token=api_secret,
        model="Qwen/Qwen3-4B",
        suffix="support-bot",
        created_at=now - 1_260,
        total_steps=360,
        trained_steps=151,
        steps_per_second=0.5,
        method=supervised_lora,
        integrations=[
            {
                "type": "wandb",
                "wandb": {
                    "project": "ftdash-demo",
                    "entity": "acme-ml",
                    "name": "support-bot-qwen3-4b",
                    "tags": ["demo", "lora"],
                },
            },
            {"type": "hf", "hf": {"output_repo_name": "acme-ml/support-bot-qwen3-4b"}},
        ],
    )["id"]
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
