"""The cost warnings on the Notifications page in a real browser: each choice's note is its
checkbox's description, the Spend page link is there, the choices work from the keyboard, and
the page passes axe (light, dark, 390 px)."""

from __future__ import annotations

import re

import pytest

from tests.support.accessibility import Audit
from tests.support.browser_pages import expect, sign_in


@pytest.mark.browser
def test_the_budget_choices_say_no_budget_is_set_and_work_from_the_keyboard(page, user):
    sign_in(page, user)
    page.goto("/notifications/")
    form = page.locator("form.channel-form").first
    budget = form.get_by_role("checkbox", name="Budget 80%")
    expect(budget).to_have_accessible_description(
        "No monthly budget is set for this workspace, so this is never sent: set one on the Spend page."
    )
    expect(form.get_by_role("checkbox", name="Expensive job")).to_have_accessible_description(
        re.compile("^No expensive-job warning is set")
    )
    expect(form.get_by_role("link", name="set one on the Spend page").first).to_have_attribute(
        "href", re.compile(r"^/spend/\?workspace=\d+$")
    )

    audit = Audit()
    audit.check(page, "notifications")
    audit.assert_clean()

    form.get_by_label("Email address").fill("finance@example.com")
    for name in ("Succeeded", "Failed", "Cancelled", "Stalled"):
        form.get_by_role("checkbox", name=name).uncheck()
    budget.focus()
    page.keyboard.press("Space")
    form.get_by_role("checkbox", name="Budget 100%").focus()
    page.keyboard.press("Space")
    expect(budget).to_be_checked()
    form.get_by_role("button", name="Add channel").press("Enter")
    expect(page.get_by_role("status")).to_contain_text("Added")
    expect(page.locator(".channel-list")).to_contain_text("on budget_80, budget_100")
