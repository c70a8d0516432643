"""Training curves, events and checkpoints on the job page in a real browser: the chart grows
while the job runs (no reload), a point's exact value is there on hover, and a checkpoint's
name copies."""

from __future__ import annotations

import pytest

from tests.support.browser_pages import expect, open_job_page, track_job


def _running_job(fake_api, api_secret) -> str:
    # 10 epochs of 10 steps: a checkpoint per epoch, as the fake writes them when told.
    job_id = fake_api.add_job(token=api_secret, total_steps=100, trained_steps=10)["id"]
    fake_api.add_checkpoint(job_id, metrics={"train_loss": 1.25, "valid_loss": 1.5, "full_valid_loss": 1.5})
    return job_id


@pytest.mark.browser
def test_the_loss_chart_draws_and_grows_while_the_job_runs(dashboard, fake_api, api_secret):
    page = dashboard
    job_id = _running_job(fake_api, api_secret)
    track_job(page, job_id)
    open_job_page(page, job_id)

    loss_points = page.locator("#chart-loss circle.chart-point")
    expect(loss_points).to_have_count(3, timeout=15_000)  # train, valid and full-valid at step 10
    expect(page.get_by_role("img", name="Loss by step")).to_be_visible()
    page.evaluate("window.notReloaded = true")

    fake_api.advance(job_id, 10)  # an epoch ends: the next refresh asks for checkpoints
    fake_api.add_checkpoint(job_id, metrics={"train_loss": 0.75, "valid_loss": 0.9, "full_valid_loss": 0.95})
    fake_api.add_event(job_id, "Step 20/100: <b>loss</b> 0.75")

    expect(loss_points).to_have_count(6, timeout=15_000)
    expect(page.locator("#chart-loss path.chart-line")).to_have_count(3)
    expect(page.locator("#checkpoints-panel tbody tr")).to_have_count(2)
    expect(page.locator("#events-list")).to_contain_text("Step 20/100: <b>loss</b> 0.75")
    assert page.evaluate("window.notReloaded") is True

    # Hover: the point under the pointer carries its exact value in its <title>.
    newest_train = page.locator("#chart-loss .series-solid circle").last
    newest_train.hover()
    expect(newest_train.locator("title")).to_have_text("Train loss at step 20: 0.75")


@pytest.mark.browser
def test_a_checkpoint_name_copies(dashboard, context, app_server, fake_api, api_secret):
    page = dashboard
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=app_server.url)
    job_id = _running_job(fake_api, api_secret)
    track_job(page, job_id)
    open_job_page(page, job_id)

    button = page.locator("#checkpoints-panel").get_by_role("button", name="Copy checkpoint name")
    expect(button).to_have_count(1, timeout=15_000)
    name = page.locator("#checkpoints-panel code").first.inner_text()
    assert name.endswith(f"{job_id}:ckpt-step-10")
    button.click()
    assert page.evaluate("navigator.clipboard.readText()") == name
    expect(button).to_have_text("Copied")
