"""The "Training alerts" page in a real browser: reached from Settings, a threshold changed and a
rule turned off from the keyboard, a refused value described on its field, and the page passes
axe (light, dark, 390 px) as it starts and with the refusal shown."""

from __future__ import annotations

import re

import pytest

from tests.support.accessibility import Audit
from tests.support.browser_pages import expect, sign_in

RISES = "Validation loss rises on this many checkpoints in a row"
SLOW_PERCENT = "Steps per minute below this % of the job's own median"


@pytest.mark.browser
def test_an_owner_changes_a_threshold_by_keyboard_and_a_refused_value_is_explained(page, user):
    sign_in(page, user)
    page.goto("/settings/")
    section = page.get_by_role("region", name="Training alerts")
    expect(section).to_contain_text("Overfitting: on when the validation loss rises on 2 checkpoints in a row")
    section.get_by_role("link", name="Edit training alerts").click()
    expect(page).to_have_url(re.compile(r"/workspaces/\d+/alerts/$"))
    expect(page.get_by_role("heading", name="Training alerts", level=1)).to_be_visible()

    audit = Audit()
    audit.check(page, "training alerts")

    rises = page.get_by_label(RISES)
    expect(rises).to_have_value("2")
    expect(rises).to_have_accessible_description("From 1 to 10; default 2.")
    rises.focus()
    page.keyboard.press("ArrowUp")
    expect(rises).to_have_value("3")
    slow = page.get_by_role("checkbox", name="Alert when a run slows down")
    slow.focus()
    page.keyboard.press("Space")
    expect(slow).not_to_be_checked()
    rises.focus()
    page.keyboard.press("Enter")  # submits the form, as Enter in a field does

    expect(page.get_by_role("status")).to_contain_text("Saved the training alerts")
    expect(page.get_by_label(RISES)).to_have_value("3")
    expect(page.get_by_role("checkbox", name="Alert when a run slows down")).not_to_be_checked()
    in_effect = page.get_by_role("region", name="In effect")
    expect(in_effect).to_contain_text("rises on 3 checkpoints in a row")
    expect(in_effect.locator("#rule-slow")).to_contain_text("Slow: off")

    percent = page.get_by_label(SLOW_PERCENT)
    percent.fill("150")
    percent.press("Enter")
    expect(page.get_by_role("alert")).to_have_text("Nothing was saved: correct the value marked below.")
    percent = page.get_by_label(SLOW_PERCENT)
    expect(percent).to_have_value("150")
    expect(percent).to_have_attribute("aria-invalid", "true")
    expect(percent).to_have_accessible_description("From 1 to 99; default 40. Enter a whole percentage from 1 to 99.")
    audit.check(page, "training alerts, a value refused")

    page.goto(page.url)  # (a GET: a reload would post the form again)
    expect(page.get_by_label(SLOW_PERCENT)).to_have_value("40")  # nothing was saved
    expect(page.get_by_label(RISES)).to_have_value("3")
    audit.assert_clean()
