"""The Spend page and the dashboard's summary in a real browser: the counters filter the list,
the owner sets a budget, the month's bar chart draws (light, dark, 390 px) beside a data table
with the same numbers, and both pages pass axe."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from tests.support.accessibility import Audit
from tests.support.browser_pages import expect, track_job

# Unique to this module on the session's shared fake, so no other test's job matches the price.
MODEL = "acme-spend/Tiny-1B"

_PRICE = """
import json, os
from decimal import Decimal
from django.contrib.auth import get_user_model
from jobs.access import user_memberships
from jobs.models import TrainingPrice
user = get_user_model().objects.get(username=os.environ["SPEND_USER"])
user_memberships(user)
TrainingPrice.objects.create(
    workspace=user.personal_workspace, pattern=os.environ["SPEND_MODEL"], usd_per_million=Decimal("0.40"), created_by=user
)
"""


def _price_for(app_server, username: str) -> None:
    """A training price in the user's workspace ($0.40 per 1M tokens of MODEL); the prices page
    is not what this module is about."""
    app_server.manage("shell", "--no-imports", "-c", _PRICE, extra_env={"SPEND_USER": username, "SPEND_MODEL": MODEL})


def _months_ago(months: int) -> dt.datetime:
    now = dt.datetime.now(dt.UTC)
    start = now.replace(day=10, hour=12, minute=0, second=0, microsecond=0)
    for _ in range(months):
        start = (start.replace(day=1) - dt.timedelta(days=1)).replace(day=10)
    return min(start, now - dt.timedelta(hours=1))


@pytest.mark.browser
def test_the_spend_page_with_its_chart_and_budget(dashboard, app_server, user, fake_api, api_secret):
    page = dashboard
    _price_for(app_server, user.username)
    # Finished this month ($1.00), two months ago ($4.00) and five months ago ($2.00); one running
    # at step 25 of 100 with $0.20 so far, so $0.80 projected.
    jobs = [
        fake_api.add_job(
            token=api_secret,
            model=MODEL,
            status="succeeded",
            finished_at=int(_months_ago(ago).timestamp()),
            trained_tokens=tokens,
            total_steps=100,
            trained_steps=100,
        )["id"]
        for ago, tokens in ((0, 2_500_000), (2, 10_000_000), (5, 5_000_000))
    ]
    running = fake_api.add_job(
        token=api_secret, model=MODEL, total_steps=100, trained_steps=25, trained_tokens=500_000
    )["id"]
    for job_id, label in zip([*jobs, running], ["faq-bot", "faq-bot", "", "summariser"], strict=True):
        track_job(page, job_id, label=label)

    # The dashboard's summary: counters that filter, and the month's spend.
    summary = page.locator(".dashboard-summary")
    expect(summary.get_by_role("link", name="3 Succeeded")).to_be_visible()
    expect(summary.get_by_role("link", name="$1.00 Spent this month")).to_be_visible()
    summary.get_by_role("link", name="1 Running").click()
    expect(page).to_have_url(re.compile(r"/\?status=running$"))
    expect(page.locator("li.job-card")).to_have_count(1)
    expect(summary.get_by_role("link", name="1 Running")).to_have_attribute("aria-current", "true")
    audit = Audit()
    audit.check(page, "dashboard with its summary, filtered to running jobs")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Spend", exact=True).click()
    expect(page.get_by_role("heading", name="Spend", exact=True)).to_be_visible()
    expect(page.get_by_text("Prices in US dollars.")).to_be_visible()

    # The owner sets a budget; a bad amount is refused first, with the message at the field.
    page.get_by_label("Monthly budget (USD)").fill("-3")
    page.get_by_role("button", name="Save budget").click()
    expect(page.get_by_text("Enter a positive amount (more than $0), or leave it empty.")).to_be_visible()
    expect(page.get_by_label("Monthly budget (USD)")).to_have_attribute("aria-invalid", "true")
    audit.check(page, "spend page, budget refused")
    page.get_by_label("Monthly budget (USD)").fill("2")
    page.get_by_label("Warn when one job is projected to cost more than $").fill("5")
    page.get_by_role("button", name="Save budget").click()
    expect(page.get_by_role("status")).to_contain_text("Saved the budget")
    # $1.00 finished + $0.80 projected, of $2.00.
    expect(page.get_by_text("$1.80 of $2.00 budget (90%)")).to_be_visible()
    expect(page.get_by_role("meter", name="$1.80 of $2.00 budget (90%)")).to_be_visible()

    chart = page.get_by_role("img", name=re.compile(r"^Spend by month, last 12 months"))
    expect(chart).to_be_visible()
    expect(page.locator("#spend-chart svg.chart-svg rect.bar-finished")).to_have_count(3)
    expect(page.locator("#spend-chart svg.chart-svg rect.bar-in-flight")).to_have_count(1)
    page.locator("#spend-chart-data > summary").click()
    table = page.get_by_role("region", name="Spend by month data")
    expect(table.locator("tbody tr")).to_have_count(12)
    this_month = dt.datetime.now(dt.UTC).strftime("%B %Y")
    expect(table.get_by_role("row", name=re.compile(rf"^{this_month} \$1\.00 \$0\.80 \$1\.80$"))).to_be_visible()
    expect(page.get_by_role("heading", name=f"{this_month} (this month): $1.00")).to_be_visible()
    expect(page.get_by_role("heading", name="In flight: $0.80")).to_be_visible()

    # At a phone's width the chart fits the screen, and its labels stay readable.
    page.set_viewport_size({"width": 390, "height": 844})
    box = chart.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390
    tick_size = page.locator("#spend-chart .chart-tick").first.evaluate("(el) => el.getBoundingClientRect().height")
    assert tick_size >= 9, f"the chart's labels are {tick_size}px high at 390px"
    page.set_viewport_size({"width": 1280, "height": 800})
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        fill = page.locator("#spend-chart svg.chart-svg rect.bar-finished").first.evaluate(
            "(el) => getComputedStyle(el).fill"
        )
        assert fill not in ("", "none", "rgb(0, 0, 0)"), f"{scheme}: bars drawn in {fill}"
    page.emulate_media(color_scheme="light")
    audit.check(page, "spend page with chart and budget")

    with page.expect_download() as download:
        page.get_by_role("link", name=re.compile("^Export CSV")).click()
    lines = Path(download.value.path()).read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("month,finished_at,job_id,label,model,tracked_by")
    assert len(lines) == 1 + 3 + 1
    assert lines[-1].startswith(f"in flight,,{running},summariser,{MODEL},")
    audit.assert_clean()
