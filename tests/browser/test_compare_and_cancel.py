"""Cancel and Compare in a real browser: the confirmation step, and two jobs' curves on one chart."""

from __future__ import annotations

import re

import pytest

from tests.support.browser_pages import expect, job_card, open_job_page, track_job


@pytest.mark.browser
def test_cancel_asks_for_confirmation_and_the_job_then_shows_cancelled(dashboard, fake_api, api_secret):
    page = dashboard
    job_id = fake_api.add_job(token=api_secret, total_steps=1000, trained_steps=10)["id"]
    track_job(page, job_id)
    open_job_page(page, job_id)

    page.get_by_role("link", name="Cancel job").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Cancel job")
    assert fake_api.get_job(job_id)["status"] == "running"  # asking changed nothing

    page.get_by_role("button", name="Cancel job").click()
    expect(page).to_have_url(re.compile(r"/jobs/\d+/$"))
    expect(page.locator("#progress-heading .badge")).to_have_text("cancelled")
    expect(page.get_by_role("link", name="Cancel job")).to_have_count(0)
    assert fake_api.get_job(job_id)["status"] == "cancelled"


@pytest.mark.browser
def test_compare_keeps_ticks_across_live_updates_and_overlays_two_jobs_curves(dashboard, fake_api, api_secret):
    page = dashboard
    ids = []
    for loss in (2.0, 1.0):
        job_id = fake_api.add_job(token=api_secret, total_steps=100_000, trained_steps=10, steps_per_call=1)["id"]
        for step in (10, 20, 30):
            fake_api.add_checkpoint(job_id, step_number=step, metrics={"train_loss": loss / step * 10})
        track_job(page, job_id)
        ids.append(job_id)

    first = page.get_by_label(re.compile(r"^Compare " + ids[0]))
    second = page.get_by_label(re.compile(r"^Compare " + ids[1]))
    first.check()
    second.check()
    # The cards are morphed by the live poll as the jobs move on; the ticks must survive it.
    card = job_card(page, ids[0])
    version = card.get_attribute("data-live-version")
    expect(card).not_to_have_attribute("data-live-version", version)
    expect(first).to_be_checked()
    expect(second).to_be_checked()

    page.get_by_role("button", name="Compare", exact=True).click()
    expect(page).to_have_url(re.compile(r"/jobs/compare/\?ids=\d+&ids=\d+$"))
    expect(page.get_by_role("heading", name="Compare 2 jobs")).to_be_visible()

    chart = page.locator("#compare-train_loss svg.chart-svg")
    for _ in range(40):  # until the refresh has stored both jobs' checkpoints
        if chart.count() and chart.locator(".chart-series").count() == 2:
            break
        page.wait_for_timeout(500)
        page.reload()
    expect(chart.locator(".chart-series")).to_have_count(2)
    expect(chart.locator(".chart-series circle")).to_have_count(6)
    legend = page.locator("#compare-train_loss .chart-legend li")
    expect(legend).to_have_count(2)
    assert sorted(text.strip() for text in legend.all_inner_texts()) == sorted(ids)
    # Hovering a point tells its exact value.
    titles = chart.locator(".chart-series circle title").all_text_contents()
    assert f"{ids[0]} at step 10: 2" in titles and f"{ids[1]} at step 30: 0.333333" in titles


@pytest.mark.browser
def test_compare_with_one_job_says_how_many_to_pick(dashboard, fake_api, api_secret):
    page = dashboard
    job_id = fake_api.add_job(token=api_secret, status="succeeded")["id"]
    track_job(page, job_id)
    page.get_by_label(re.compile(r"^Compare " + job_id)).check()
    page.get_by_role("button", name="Compare", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text("Pick between 2 and 4 jobs to compare (you picked 1).")
