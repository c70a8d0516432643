"""The best checkpoint in a real browser: the checkpoints table's "Best" row, "Best so far" in the
progress panel, the loss curve's marks for it and for an overfitting alert (each with its text
alternative), whether it is the deployed one, and compare's "Best checkpoint" table; axe-clean
light, dark and at 390 px."""

from __future__ import annotations

import re

import pytest

from tests.support.accessibility import Audit
from tests.support.browser_pages import expect, open_job_page, track_job

# Valid loss falls to 0.81 at epoch 3, then rises twice while the training loss keeps falling.
OVERFITTING = [(1.2, 1.0), (1.0, 0.9), (0.8, 0.81), (0.6, 0.86), (0.4, 0.93)]


def _overfitting_job(fake_api, api_secret) -> tuple[str, list[dict]]:
    job_id = fake_api.add_job(token=api_secret, total_steps=100, trained_steps=50)["id"]
    made = [
        fake_api.add_checkpoint(
            job_id,
            step_number=10 * epoch,
            metrics={"train_loss": train, "valid_loss": valid, "full_valid_loss": None},
        )
        for epoch, (train, valid) in enumerate(OVERFITTING, start=1)
    ]
    return job_id, made


@pytest.mark.browser
def test_the_best_checkpoint_is_marked_in_the_table_the_panel_and_the_curves(dashboard, fake_api, api_secret):
    page = dashboard
    audit = Audit()
    job_id, made = _overfitting_job(fake_api, api_secret)
    fake_api.add_model(job_id=job_id, checkpoint_id=made[2]["id"], name="support-bot-v1")
    track_job(page, job_id)
    path = open_job_page(page, job_id)

    best_row = page.locator("#checkpoints-panel tr.checkpoint-best")
    expect(best_row).to_have_count(1, timeout=15_000)
    expect(best_row.get_by_role("rowheader")).to_contain_text("30")
    expect(best_row.locator(".badge-best")).to_have_text("Best")
    expect(best_row).to_contain_text("lowest valid loss (0.81)")
    expect(page.locator("#checkpoints-panel tbody tr")).to_have_count(5)
    expect(page.locator("#best-so-far")).to_have_text("Best so far: epoch 3, valid loss 0.81")

    best_mark = page.locator("#chart-loss g.chart-mark-best")
    expect(best_mark).to_have_count(1)
    expect(best_mark.locator("title")).to_have_text("Best: epoch 3, valid loss 0.81")
    alert_mark = page.locator("#chart-loss g.chart-mark-alert")
    expect(alert_mark).to_have_count(1, timeout=15_000)
    expect(alert_mark.locator("title")).to_contain_text("Overfitting: Validation loss has risen for 2 checkpoints")
    # The same words outside the SVG: in the chart's legend and its data table.
    expect(page.locator("#chart-loss .chart-marks-legend")).to_contain_text("Best: epoch 3, valid loss 0.81")
    page.locator("#curves-data summary").click()
    expect(page.locator("#curves-data td.chart-note").nth(2)).to_have_text("Best: lowest valid loss (0.81)")

    page.reload()  # the deployments are read during a refresh; the page shows them from then on
    expect(page.locator("#best-deployed")).to_have_text(
        "The best checkpoint (epoch 3) is deployed as support-bot-v1", timeout=15_000
    )
    audit.check(page, "job page, the best checkpoint and an alert marked")

    other_id, _ = _overfitting_job(fake_api, api_secret)
    page.goto("/")
    track_job(page, other_id)
    other_path = open_job_page(page, other_id)
    expect(page.locator("#checkpoints-panel tr.checkpoint-best")).to_have_count(1, timeout=15_000)
    ids = [re.search(r"/jobs/(\d+)/", p).group(1) for p in (path, other_path)]
    page.goto(f"/jobs/compare/?ids={ids[0]}&ids={ids[1]}")
    best_table = page.get_by_role("region", name="Best checkpoint table")
    expect(best_table.get_by_role("row").filter(has_text="Best checkpoint")).to_contain_text("epoch 3, step 30")
    expect(best_table.get_by_role("row").filter(has_text="Chosen by")).to_contain_text("lowest valid loss (0.81)")
    audit.check(page, "compare, the best checkpoints")
    audit.assert_clean()
