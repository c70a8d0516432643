"""Bringing jobs in without pasting IDs, in a real browser: "Import jobs" with a filter and
"Select all", the live progress of a long import, several IDs at once, and the search box.
The import pages (reached only after reading a list) are audited with axe here."""

from __future__ import annotations

import re

import pytest

from tests.support.accessibility import Audit
from tests.support.browser_pages import expect, job_card, record_requests

QWEN, LLAMA = "Qwen/Qwen3-4B", "meta-llama/Llama-3.1-8B-Instruct"


def open_import_page(page) -> None:
    page.goto("/")
    page.get_by_role("link", name="Import jobs with research").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Import jobs with “research”")


@pytest.mark.browser
def test_import_with_a_filter_and_select_all_tracks_just_the_matching_jobs(dashboard, fake_api, api_secret):
    page = dashboard
    audit = Audit()
    wanted = [
        fake_api.add_job(token=api_secret, status="succeeded", model=QWEN, suffix=f"qa-{n}")["id"] for n in range(3)
    ]
    others = [fake_api.add_job(token=api_secret, status="running", model=LLAMA)["id"] for _ in range(2)]
    open_import_page(page)
    audit.check(page, "import, nothing read yet")

    page.get_by_role("button", name="Read the job list").click()
    expect(page.get_by_role("heading", name="5 jobs listed")).to_be_visible()
    for job_id in wanted + others:
        expect(page.get_by_role("rowheader", name=job_id)).to_be_visible()
    audit.check(page, "import, the list read")

    page.get_by_label("Status").select_option("succeeded")
    page.get_by_label("Model").select_option(QWEN)
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"status=succeeded"))
    expect(page.get_by_role("row")).to_have_count(1 + 3)
    page.get_by_label("Select all 3 jobs that match the filters").check()
    page.get_by_role("button", name="Track selected").first.click()

    expect(page.get_by_role("status")).to_contain_text("Now tracking 3 jobs")
    expect(page.locator("tr.is-tracked")).to_have_count(3)
    audit.check(page, "import, after tracking")
    page.goto("/")
    for job_id in wanted:
        expect(job_card(page, job_id)).to_be_visible()
    for job_id in others:
        expect(job_card(page, job_id)).to_have_count(0)
    audit.assert_clean()


@pytest.mark.browser
def test_a_long_import_shows_its_progress_live_and_stops_polling_when_done(dashboard, fake_api, api_secret):
    page = dashboard
    audit = Audit()
    fake_api.add_jobs(250, token=api_secret)
    open_import_page(page)
    polls = record_requests(page, "/import/progress/")
    page.get_by_role("button", name="Read the job list").click()

    # The click read the first page; the polls read on. A 429 holds the reading still for a
    # few seconds, long enough to look at it: the page says why it waits.
    progress = page.locator("#import-progress")
    expect(progress).to_contain_text("jobs found so far")
    fake_api.fail_next("429", retry_after=8)
    expect(progress).to_contain_text("Token Factory asked ftdash to slow down")
    expect(progress).to_contain_text(re.compile(r"(100|200) jobs found so far"))
    audit.check(page, "import, reading")
    expect(page.get_by_role("heading", name="250 jobs listed")).to_be_visible(timeout=30_000)
    expect(page.get_by_label("Select all 250 jobs")).to_be_visible()
    assert polls, "the progress was never polled"
    count = len(polls)
    page.wait_for_timeout(2500)
    assert len(polls) == count, "the page kept polling after the list was read"
    audit.assert_clean()


@pytest.mark.browser
def test_several_ids_at_once_and_a_search_that_stays_in_the_url(dashboard, fake_api, api_secret):
    page = dashboard
    nightly = fake_api.add_job(token=api_secret, suffix="nightly-eval")["id"]
    release = fake_api.add_job(token=api_secret, suffix="release-candidate", model=LLAMA)["id"]
    missing = "ftjob-" + "f" * 32

    page.get_by_label("Job ID").fill(f"{nightly}\n{release}, {missing}")
    page.get_by_role("button", name="Track job").click()
    status = page.get_by_role("status")
    expect(status).to_contain_text(f"{nightly}: tracked")
    expect(status).to_contain_text(f"{release}: tracked")
    expect(status).to_contain_text(f"{missing}: not found")

    page.get_by_role("searchbox", name="Search").fill("LLAMA")
    page.get_by_role("searchbox", name="Search").press("Enter")
    expect(page).to_have_url(re.compile(r"[?&]q=LLAMA"))
    expect(job_card(page, release)).to_be_visible()
    expect(job_card(page, nightly)).to_have_count(0)
    # The same view, shared as a link, combined with a filter.
    page.goto(page.url + "&status=running")
    expect(page.get_by_role("searchbox", name="Search")).to_have_value("LLAMA")
    expect(job_card(page, release)).to_be_visible()
