"""The "Training prices" page in Chromium: reached from Settings beside the username, a price
added with the keyboard alone, a bad one refused with its message, a row removed after asking;
every state passes axe, light and dark, and at 390 px."""

from __future__ import annotations

import re

import pytest

from tests.support.accessibility import Audit
from tests.support.browser_pages import expect, sign_in


@pytest.mark.browser
def test_an_owner_keeps_the_personal_price_table_with_the_keyboard(page, user):
    audit = Audit()
    sign_in(page, user)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Settings").click()
    expect(page.get_by_role("heading", name="Settings", level=1)).to_be_visible()
    expect(page.get_by_role("heading", name="Training prices")).to_be_visible()
    audit.check(page, "settings, no prices")

    page.get_by_role("link", name="Edit training prices").click()
    expect(page.get_by_role("heading", name="Training prices", level=1)).to_be_visible()
    expect(page.get_by_text("No training prices yet.")).to_be_visible()
    expect(page.get_by_text("Prices in US dollars", exact=False)).to_be_visible()
    audit.check(page, "training prices, empty")

    # With the keyboard alone: into the first field, type, Tab to the next, Tab to the button, Enter.
    page.get_by_label("Model or pattern").focus()
    page.keyboard.type("meta-llama/*")
    page.keyboard.press("Tab")
    expect(page.get_by_label("USD per 1M training tokens")).to_be_focused()
    page.keyboard.type("0.4")
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Add price")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_contain_text("Added the training price meta-llama/*: 0.40 USD")
    expect(page.get_by_role("status")).to_contain_text(
        "No job in this workspace uses a model matching meta-llama/* yet."
    )
    row = page.get_by_role("row").filter(has=page.get_by_role("rowheader", name="meta-llama/*", exact=True))
    expect(row.get_by_role("cell").first).to_have_text("0.40")
    audit.check(page, "training prices, one row and flash messages")

    # A bad price: refused with its message, next to the field, and the form kept.
    page.get_by_label("Model or pattern").fill("Qwen/*")
    page.get_by_label("USD per 1M training tokens").fill("5000")
    page.get_by_role("button", name="Add price").click()
    price_field = page.get_by_label("USD per 1M training tokens")
    expect(price_field).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_text(re.compile("5000 USD per 1M tokens is over the 1000 limit"))).to_be_visible()
    expect(page.get_by_label("Model or pattern")).to_have_value("Qwen/*")
    audit.check(page, "training prices, a refused price")

    # Change the row's price: its link starts the form with its pattern.
    row.get_by_role("link", name="Change price of meta-llama/*").click()
    expect(page.get_by_label("Model or pattern")).to_have_value("meta-llama/*")
    page.get_by_label("USD per 1M training tokens").fill("0.8")
    page.get_by_label("USD per 1M training tokens").press("Enter")
    expect(page.get_by_role("status")).to_contain_text("Changed the training price of meta-llama/* from 0.40 to 0.80")

    # Remove it, after saying yes.
    row.get_by_role("link", name="Remove the price of meta-llama/*").click()
    expect(page.get_by_role("heading", name="Remove the training price meta-llama/*?")).to_be_visible()
    audit.check(page, "remove a training price, confirmation")
    page.get_by_role("button", name="Remove price").click()
    expect(page.get_by_role("status")).to_contain_text("Removed the training price meta-llama/*.")
    expect(page.get_by_text("No training prices yet.")).to_be_visible()

    page.get_by_role("link", name="← Settings").click()
    expect(page).to_have_url(re.compile(r"/settings/$"))
    audit.assert_clean()
