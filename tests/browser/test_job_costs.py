"""A job's Cost panel in a real browser: a running job's cost so far and at finish (priced by
Token Factory's model information), a job without a price offering its owner a link to add one,
and "Recalculate with today's prices" on a finished job; each axe-clean, light, dark and 390 px."""

from __future__ import annotations

import pytest

from tests.support.accessibility import Audit
from tests.support.browser_pages import expect, fact, open_job_page, track_job

PRICED_MODEL = "ftdash-browser/cost-panel-model"
UNPRICED_MODEL = "ftdash-browser/unpriced-model"


@pytest.mark.browser
def test_the_cost_panel_reads_well_and_passes_axe(dashboard, fake_api, api_secret):
    page = dashboard
    audit = Audit()
    priced_model = PRICED_MODEL
    fake_api.add_base_model(priced_model, training_price_per_million_tokens=0.4)  # $0.40 per 1M tokens

    running = fake_api.add_job(
        token=api_secret,
        model=priced_model,
        total_steps=1000,
        trained_steps=250,
        steps_per_call=1,
        tokens_per_step=8192,
    )["id"]
    track_job(page, running)
    open_job_page(page, running)
    panel = page.locator("#cost-panel")
    # The first refresh reads the token's model information; the next poll shows its price.
    expect(panel).to_contain_text("from Token Factory's model information")
    expect(fact(panel, "Cost so far")).to_contain_text("$")
    expect(fact(panel, "Projected at finish")).to_contain_text("≈ $")
    expect(panel).to_contain_text("Prices in US dollars")
    audit.check(page, "job page, a running job's cost")

    page.goto("/")
    unpriced = fake_api.add_job(
        token=api_secret, model=UNPRICED_MODEL, status="succeeded", total_steps=50, trained_steps=50
    )["id"]
    track_job(page, unpriced)
    open_job_page(page, unpriced)
    panel = page.locator("#cost-panel")
    expect(panel.locator("code")).to_have_text(UNPRICED_MODEL)
    expect(panel).to_contain_text(f"No training price for {UNPRICED_MODEL}")
    expect(panel.get_by_role("link", name="Add a training price")).to_be_visible()  # the user owns the workspace
    audit.check(page, "job page, no training price")

    page.goto("/")
    finished = fake_api.add_job(
        token=api_secret,
        model=priced_model,
        status="succeeded",
        total_steps=50,
        trained_steps=50,
        trained_tokens=2_048_000,
    )["id"]
    track_job(page, finished)
    open_job_page(page, finished)
    page.get_by_role("link", name="Recalculate with today's prices").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Recalculate with today's prices?")
    audit.check(page, "Recalculate with today's prices?")
    page.get_by_role("button", name="Recalculate with today's prices").press("Enter")
    expect(page.get_by_role("status")).to_contain_text("Recalculated the cost with today's prices: $0.82")
    panel = page.locator("#cost-panel")
    expect(fact(panel, "Final cost")).to_have_text("$0.82")
    expect(fact(panel, "Worked out")).to_have_text("2,048,000 trained tokens × $0.40 per 1M tokens = $0.82")
    expect(fact(panel, "Price frozen")).to_contain_text("Price frozen when the job finished")
    audit.check(page, "job page, a finished job's frozen cost")

    audit.assert_clean()
