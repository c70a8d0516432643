"""A read-only share link in a real browser (issue 21, section 2): made from the job page's
"Share" disclosure, opened by someone with no account, axe-clean in light and dark and at
390 px, and updating live without moving keyboard focus."""

from __future__ import annotations

import pytest

from tests.support.accessibility import Audit
from tests.support.browser_pages import expect, fact, open_job_page, track_job
from tests.support.chromium import TIMEOUT_MS

pytestmark = pytest.mark.browser


def test_a_shared_page_is_accessible_and_updates_live_without_moving_focus(
    dashboard, fake_api, api_secret, browser, app_server
):
    page = dashboard
    job_id = fake_api.add_job(token=api_secret, total_steps=100, suffix="shared-run")["id"]
    track_job(page, job_id, label="Shared run")
    open_job_page(page, job_id)

    share = page.locator("details#sharing")
    share.locator("summary").click()
    page.get_by_label("Expires after").select_option(label="1 day")
    page.get_by_role("button", name="Create read-only link").click()
    expect(page.get_by_role("status").filter(has_text="Made a read-only link")).to_be_visible()
    expect(share).to_have_attribute("open", "")
    url = page.locator("#share-link-new").inner_text()
    assert url.startswith(app_server.url + "/share/")
    expect(page.locator(".share-links li")).to_contain_text("works until")
    audit = Audit()
    audit.check(page, "job page with a new read-only link")

    # Someone without an account opens the link in a browser of their own.
    context = browser.new_context(base_url=app_server.url)
    context.set_default_timeout(TIMEOUT_MS)
    try:
        stranger = context.new_page()
        response = stranger.goto(url)
        assert response.status == 200
        assert response.headers["x-robots-tag"].startswith("noindex")
        assert response.headers["referrer-policy"] == "no-referrer"
        expect(stranger.get_by_role("heading", name="Shared run", level=1)).to_be_visible()
        expect(stranger.get_by_role("button", name="Sign out")).to_have_count(0)
        expect(stranger.locator("#raw-json")).to_have_count(0)
        audit.check(stranger, "shared job page")

        live = stranger.locator("#job-live")
        copy = stranger.get_by_role("region", name="Job").get_by_role("button", name="Copy job ID")
        copy.focus()
        focused = copy.element_handle()
        for steps in (10, 30):
            fake_api.advance(job_id, steps - (10 if steps == 30 else 0))
            expect(fact(live, "Steps")).to_have_text(f"{steps} of 100")
        assert stranger.evaluate("el => el.isConnected && document.activeElement === el", focused), (
            "a poll moved keyboard focus away from the copy button"
        )
        # The title follows the job, as on the job page.
        fake_api.update_job(job_id, status="succeeded", trained_steps=100)
        expect(stranger).to_have_title("succeeded · Shared run · ftdash")
    finally:
        context.close()
    audit.assert_clean()
