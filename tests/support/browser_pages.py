"""What a person does in ftdash, as Playwright steps shared by the browser tests (tests/browser/,
and the CSP test in tests/processes/, which drives Chromium too)."""

from __future__ import annotations

import os
import re

import pytest

try:
    from playwright.sync_api import Locator, Page, expect
except ImportError:  # pragma: no cover - depends on the environment
    if os.environ.get("FTDASH_REQUIRE_BROWSER") == "1":
        raise
    pytest.skip("Playwright is not installed: pip install -e '.[test]'", allow_module_level=True)


def sign_in(page: Page, account) -> None:
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(account.username)
    page.get_by_label("Password").fill(account.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator(".nav-user")).to_have_text(account.username)


def token_row(page: Page, name: str) -> Locator:
    return page.get_by_role("row").filter(has=page.get_by_role("rowheader", name=name, exact=True))


def save_token(page: Page, name: str, secret: str) -> Locator:
    """Save an API token on the "API tokens" page; returns its row in the table."""
    page.goto("/tokens/")
    page.get_by_label("Token name").fill(name)
    page.get_by_label("API token", exact=True).fill(secret)
    page.get_by_role("button", name="Save token").click()
    expect(page.get_by_role("status")).to_contain_text(f"Saved token “{name}”")
    return token_row(page, name)


def track_job(page: Page, job_id: str, *, label: str = "") -> Locator:
    """Track a job from the dashboard's form; returns its card."""
    page.get_by_label("Job ID").fill(job_id)
    if label:
        page.get_by_label("Label (optional)").fill(label)
    page.get_by_role("button", name="Track job").click()
    expect(page.get_by_role("status")).to_contain_text(f"Now tracking {job_id}")
    card = job_card(page, job_id)
    expect(card).to_be_visible()
    return card


def job_card(page: Page, job_id: str) -> Locator:
    return page.locator("li.job-card").filter(has=page.get_by_role("link", name=job_id, exact=True))


def open_job_page(page: Page, job_id: str) -> str:
    """Click the job ID on its dashboard card; returns the job page's path."""
    job_card(page, job_id).get_by_role("link", name=job_id, exact=True).click()
    expect(page).to_have_url(re.compile(r"/jobs/\d+/$"))
    expect(page.locator("#job-live")).to_be_visible()
    return re.sub(r"^https?://[^/]+", "", page.url)


def fact(container: Locator, label: str) -> Locator:
    """The <dd> next to the <dt> called `label` in a facts list inside `container`."""
    return (
        container.locator("dl > div")
        .filter(has=container.page.locator("dt").get_by_text(label, exact=True))
        .locator("dd")
    )


def record_requests(page: Page, fragment: str) -> list[str]:
    """Start recording the URLs of the page's requests whose path contains `fragment`."""
    seen: list[str] = []
    page.on("request", lambda request: seen.append(request.url) if fragment in request.url else None)
    return seen


def assert_no_more_requests(page: Page, seen: list[str], *, for_ms: int = 3000) -> None:
    before = list(seen)
    page.wait_for_timeout(for_ms)
    assert seen == before, f"polling went on after the job finished: {seen[len(before) :]}"


def live_interval_seconds(page: Page) -> float:
    """How often the page's live parts poll while the tab is visible, as the server set it."""
    return float(page.locator("[data-live-url]").get_attribute("data-live-interval"))


def set_page_visibility(page: Page, state: str) -> None:
    """Make the page report `state` ("hidden" or "visible") and tell it so, as a browser does
    when its tab goes to the background or comes back (headless tabs never change by themselves)."""
    page.evaluate(
        """state => {
            Object.defineProperty(document, "visibilityState", { configurable: true, get: () => state });
            Object.defineProperty(document, "hidden", { configurable: true, get: () => state === "hidden" });
            document.dispatchEvent(new Event("visibilitychange"));
        }""",
        state,
    )
