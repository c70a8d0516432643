"""The job page in a real browser: what comes first, the Edit disclosure, copy buttons, 390 px."""

from __future__ import annotations

import re

import pytest

from tests.support.browser_pages import expect, open_job_page, track_job

HF_REPO = "acme-ml/support-bot-qwen3-4b"
TRAINING_FILE = "file-76807105-0000-0000-0000-000000000000"
VALIDATION_FILE = "file-d1c98e51-0000-0000-0000-000000000000"


def _finished_job(fake_api, api_secret) -> str:
    """A succeeded job (no polling) with every kind of ID the page offers to copy."""
    return fake_api.add_job(
        token=api_secret,
        status="succeeded",
        total_steps=50,
        trained_steps=50,
        training_file=TRAINING_FILE,
        validation_file=VALIDATION_FILE,
        integrations=[{"type": "hf", "hf": {"output_repo_name": HF_REPO}}],
    )["id"]


@pytest.mark.browser
def test_progress_comes_first_and_edit_forms_open_on_demand(dashboard, fake_api, api_secret):
    page = dashboard
    job_id = _finished_job(fake_api, api_secret)
    track_job(page, job_id)
    open_job_page(page, job_id)

    headings = page.locator("main h2").all_inner_texts()
    assert headings[0].startswith("Progress"), headings
    label = page.get_by_label("Label")
    expect(label).to_be_hidden()

    edit = page.locator("summary", has_text="Edit")
    expect(edit).to_have_accessible_name(re.compile(r"^Edit label"))
    edit.focus()
    page.keyboard.press("Enter")
    expect(label).to_be_visible()
    label.fill("Support bot")
    page.get_by_role("button", name="Save label").click()
    expect(page.get_by_role("status")).to_contain_text("Label saved.")
    expect(page.get_by_role("heading", level=1)).to_have_text("Support bot")
    expect(page.get_by_label("Label")).to_be_hidden()  # closed again after a successful save


@pytest.mark.browser
def test_copy_buttons_put_the_ids_on_the_clipboard(dashboard, context, app_server, fake_api, api_secret):
    page = dashboard
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=app_server.url)
    job_id = _finished_job(fake_api, api_secret)
    track_job(page, job_id)
    open_job_page(page, job_id)

    def clipboard() -> str:
        return page.evaluate("navigator.clipboard.readText()")

    job_panel = page.get_by_role("region", name="Job", exact=True)
    button = job_panel.get_by_role("button", name="Copy job ID")
    button.click()
    assert clipboard() == job_id
    expect(button).to_have_text("Copied")
    expect(page.locator("#copy-status")).to_have_text("Copied job ID")
    expect(button).to_have_text("Copy", timeout=4000)  # back after about 2 s

    job_panel.get_by_role("button", name="Copy training file ID").click()
    assert clipboard() == TRAINING_FILE
    job_panel.get_by_role("button", name="Copy validation file ID").click()
    assert clipboard() == VALIDATION_FILE
    page.get_by_role("region", name="Integrations").get_by_role("button", name="Copy Hugging Face repo").click()
    assert clipboard() == HF_REPO

    # Keyboard: the button in the page head, from Tab and Enter.
    page.locator(".page-head").get_by_role("button", name="Copy job ID").focus()
    page.keyboard.press("Enter")
    page.wait_for_function("(id) => navigator.clipboard.readText().then((t) => t === id)", arg=job_id)

    # Without the Clipboard API (ftdash served over plain http), the selection fallback copies.
    page.evaluate("navigator.clipboard.writeText('')")
    page.evaluate("Object.defineProperty(navigator, 'clipboard', {value: undefined, configurable: true})")
    job_panel.get_by_role("button", name="Copy training file ID").click()
    expect(job_panel.get_by_role("button", name="Copy training file ID")).to_have_text("Copied")
    reader = context.new_page()
    reader.goto("/tokens/")
    assert reader.evaluate("navigator.clipboard.readText()") == TRAINING_FILE


@pytest.mark.browser
def test_job_page_fits_a_390px_phone_without_cutting_ids(dashboard, fake_api, api_secret, tmp_path):
    page = dashboard
    job_id = _finished_job(fake_api, api_secret)
    track_job(page, job_id)  # no label: the title is the job ID itself
    open_job_page(page, job_id)
    page.set_viewport_size({"width": 390, "height": 844})
    page.locator("#raw-json > summary").click()
    page.locator(".job-edit > summary").click()
    page.screenshot(path=tmp_path / "job-390.png", full_page=True)

    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    # Each part of an ID stays whole on its line: "ftjob-" may end a line, the 32 hex digits
    # after it never break; a file ID breaks only between the groups of its UUID.
    pieces_split = page.evaluate(
        """() => Array.from(document.querySelectorAll('#job-id, #fact-job-id, #training-file, #validation-file'))
            .flatMap((el) => Array.from(el.childNodes).filter((n) => n.nodeType === Node.TEXT_NODE))
            .filter((node) => {
                const range = document.createRange();
                range.selectNodeContents(node);
                return new Set(Array.from(range.getClientRects()).map((r) => Math.round(r.top))).size > 1;
            })
            .map((node) => node.textContent)"""
    )
    assert pieces_split == []
    expect(page.get_by_role("heading", level=1)).to_have_text(job_id)
    # Nothing of the raw JSON is out of reach: it scrolls inside itself, and takes focus to do so.
    pre = page.get_by_role("region", name="Raw JSON")
    pre.focus()
    expect(pre).to_be_focused()
