"""Training-health alerts in a real browser (issue 20): a job's checkpoint goes NaN, and its card
and page grow a "Diverged" badge through the live updates without moving keyboard focus; the
dashboard's "Has an alert" filter keeps it; "Mute alerts" and "Unmute" work from the keyboard.
Each view axe-clean, light, dark and 390 px."""

from __future__ import annotations

import re

import pytest

from tests.support.accessibility import Audit
from tests.support.browser_pages import expect, job_card, open_job_page, track_job

pytestmark = pytest.mark.browser


def _is_focused(page, handle) -> bool:
    return page.evaluate("el => el.isConnected && document.activeElement === el", handle)


def test_alert_badges_the_filter_and_mute_alerts_by_keyboard(dashboard, fake_api, api_secret, user):
    page = dashboard
    audit = Audit()
    job_id = fake_api.add_job(token=api_secret, total_steps=100, trained_steps=5, suffix="alert-badges")["id"]
    card = track_job(page, job_id)
    details = card.get_by_role("link", name=re.compile(r"^Details"))
    details.focus()
    focused = details.element_handle()

    # The first epoch ends with a NaN training loss: the refresh reads its checkpoint.
    fake_api.add_checkpoint(job_id, step_number=10, metrics={"train_loss": float("nan"), "valid_loss": 1.0})
    fake_api.advance(job_id, 5)
    alerts = card.get_by_role("list", name=re.compile(r"^Alerts of"))
    expect(alerts).to_contain_text("Diverged")
    expect(alerts).to_contain_text("The train loss of epoch 1 is not a number (NaN or infinite)")
    assert _is_focused(page, focused), "the alert's arrival moved keyboard focus away from the card's link"
    audit.check(page, "dashboard, a card with an alert")

    page.get_by_label("Has an alert").check()
    page.get_by_role("button", name="Filter").press("Enter")
    expect(page).to_have_url(re.compile(r"[?&]alert=1"))
    expect(page.locator("li.job-card")).to_have_count(1)
    expect(job_card(page, job_id)).to_be_visible()
    expect(page.get_by_label("Has an alert")).to_be_checked()
    audit.check(page, "dashboard, filtered to jobs with an alert")

    open_job_page(page, job_id)
    panel = page.locator("#alerts-panel")
    expect(panel.get_by_role("heading", name="Alerts")).to_be_visible()
    expect(panel.get_by_role("list")).to_contain_text("Diverged")
    audit.check(page, "job page, an open alert")

    # Mute from the keyboard: the badge stays, the page says who muted and when.
    mute = page.get_by_role("button", name="Mute alerts")
    mute.focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("status").filter(has_text="Alerts muted")).to_be_visible()
    expect(panel).to_contain_text(f"Alerts muted by {user.username} on")
    expect(panel).to_contain_text("badges stay, notifications are not sent")
    expect(panel.get_by_role("list")).to_contain_text("Diverged")
    unmute = page.get_by_role("button", name="Unmute")
    expect(unmute).to_be_visible()
    audit.check(page, "job page, alerts muted")

    page.goto("/")
    expect(job_card(page, job_id)).to_contain_text("alerts muted")

    page.go_back()
    page.get_by_role("button", name="Unmute").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("status").filter(has_text="Alerts unmuted")).to_be_visible()
    expect(page.locator("#alerts-panel")).not_to_contain_text("Alerts muted")
    expect(page.get_by_role("button", name="Mute alerts")).to_be_visible()

    audit.assert_clean()
