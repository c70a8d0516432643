"""At a phone's 390 px the saved-tokens and training-prices tables turn each row into a small card
(the `card-rows` class): no header row, the row's name with its second cell on the first line, the
rest below, the buttons last, and nothing wider than the screen."""

from __future__ import annotations

import pytest

from tests.support.accessibility import PHONE
from tests.support.browser_pages import expect, save_token, sign_in

# Where each cell of `row` is, relative to the row's own box, and what the table shows of itself.
CARD_LAYOUT = """(row) => {
    const box = row.getBoundingClientRect();
    const cells = Array.from(row.children).map((cell) => {
        const at = cell.getBoundingClientRect();
        return {top: Math.round(at.top - box.top), left: Math.round(at.left - box.left), right: Math.round(box.right - at.right)};
    });
    const table = row.closest("table");
    return {display: getComputedStyle(row).display, header: getComputedStyle(table.tHead).display,
            width: Math.round(box.width), cells, fits: document.documentElement.scrollWidth <= window.innerWidth};
}"""


def assert_a_card(row) -> None:
    layout = row.evaluate(CARD_LAYOUT)
    assert layout["display"] == "grid" and layout["header"] == "none", layout
    assert layout["fits"] and layout["width"] <= PHONE["width"], layout
    name, second, *rest = layout["cells"]
    assert name["top"] == second["top"] and second["left"] > name["left"], layout  # side by side
    assert all(cell["top"] > name["top"] for cell in rest), layout  # the other cells below
    assert rest[-1]["top"] == max(cell["top"] for cell in rest), layout  # the actions last


@pytest.mark.browser
def test_saved_tokens_and_training_prices_are_cards_on_a_phone(page, user, api_secret):
    sign_in(page, user)
    page.set_viewport_size(PHONE)
    row = save_token(page, "research", api_secret)
    expect(row).to_be_visible()
    assert_a_card(row)

    page.goto("/settings/")
    page.get_by_role("link", name="Edit training prices").click()
    page.get_by_label("Model or pattern").fill("meta-llama/*")
    page.get_by_label("USD per 1M training tokens").fill("0.4")
    page.get_by_role("button", name="Add price").click()
    price = page.get_by_role("row").filter(has=page.get_by_role("rowheader", name="meta-llama/*", exact=True))
    expect(price).to_be_visible()
    assert_a_card(price)
