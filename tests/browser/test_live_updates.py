"""Live updates as a person notices them (issue 9).

One poll per page and interval for every live part; focus, Tab order, a text selection and
open <details> survive the polls; status changes (not progress ticks) are announced politely
and followed by the tab title; a hidden tab rests and catches up when shown again; relative
times keep counting without the server; and without JavaScript a reload shows fresh data.

The server under test refreshes running jobs every second and pages poll at that interval
(read from `data-live-interval`, never assumed). Jobs move only when a test advances them in
the fake API, so nothing depends on how fast the machine is; fixed waits appear only where
the point is that nothing happens for a while, or in counting requests over a window.
"""

from __future__ import annotations

import re
import time
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.support.accessibility import Audit
from tests.support.browser_pages import (
    assert_no_more_requests,
    expect,
    fact,
    job_card,
    live_interval_seconds,
    open_job_page,
    record_requests,
    save_token,
    set_page_visibility,
    sign_in,
    track_job,
)

pytestmark = pytest.mark.browser


def _shown_versions(url: str) -> dict[str, str]:
    """The `?v=<pk>.<version>` pairs a poll sent, as {pk: version}."""
    return dict(value.split(".", 1) for value in parse_qs(urlsplit(url).query).get("v", []))


def _progress(container):
    return container.get_by_role("progressbar")


def _is_focused(page, handle) -> bool:
    return page.evaluate("el => el.isConnected && document.activeElement === el", handle)


def test_dashboard_sends_one_poll_per_interval_for_all_its_cards(dashboard, fake_api, api_secret):
    page = dashboard
    job_ids = [job["id"] for job in fake_api.add_jobs(12, token=api_secret, total_steps=100)]
    page.get_by_label("Job ID").fill("\n".join(job_ids))  # several at once, one per line
    page.get_by_role("button", name="Track job").click()
    cards = page.locator("li.job-card[data-live-active]")
    expect(cards).to_have_count(12)
    keys = set(cards.evaluate_all("cards => cards.map(card => card.dataset.liveKey)"))
    interval = live_interval_seconds(page)

    polls = record_requests(page, "/live/")
    window = max(5.0, 2.5 * interval)
    page.wait_for_timeout(window * 1000)
    seen = list(polls)

    # One request per interval for the whole page (one per card would be 12 per interval)...
    assert seen, "the dashboard never polled"
    assert len(seen) <= window / interval + 1, f"{len(seen)} polls in {window} s at a {interval} s interval"
    assert all(urlsplit(url).path == "/live/cards/" for url in seen), seen
    # ...naming every live card and the version it shows.
    for url in seen:
        shown = _shown_versions(url)
        assert set(shown) == keys, url
        assert all(re.fullmatch(r"[0-9a-f]{12}", version) for version in shown.values()), url


def test_focus_and_tab_order_survive_polls_on_the_dashboard(dashboard, fake_api, api_secret):
    page = dashboard
    for suffix in ("focus-a", "focus-b"):
        track_job(page, fake_api.add_job(token=api_secret, total_steps=100, suffix=suffix)["id"])
    cards = page.locator("li.job-card")
    expect(cards).to_have_count(2)
    top_id, below_id = (cards.nth(n).locator("a.job-id").inner_text() for n in range(2))
    top, below = job_card(page, top_id), job_card(page, below_id)

    details_link = top.get_by_role("link", name=re.compile(r"^Details"))
    details_link.focus()
    focused = details_link.element_handle()

    # Two polls that bring this very card a change.
    for steps in ("10", "20"):
        fake_api.advance(top_id, 10)
        expect(_progress(top)).to_have_attribute("aria-valuenow", steps)
    assert _is_focused(page, focused), "a poll moved keyboard focus away from the card's link"

    # Tab goes on from where it was: the same card's next link, then the next card.
    page.keyboard.press("Tab")
    expect(top.get_by_role("link", name=re.compile(r"^Remove"))).to_be_focused()
    page.keyboard.press("Tab")
    expect(below.get_by_role("link", name=below_id, exact=True)).to_be_focused()


def test_focus_survives_a_refresh_notice_coming_and_going_in_its_card(dashboard, fake_api, api_secret):
    # A part that appears (or leaves) above the focused link must not take the link's place.
    page = dashboard
    job_id = fake_api.add_job(token=api_secret, total_steps=100, suffix="hiccup")["id"]
    card = track_job(page, job_id)
    details_link = card.get_by_role("link", name=re.compile(r"^Details"))
    details_link.focus()
    focused = details_link.element_handle()

    fake_api.fail_next("500", job_id=job_id)  # not retried: the refresh fails
    notice = card.get_by_role("status")
    expect(notice).to_contain_text("Showing the snapshot from")
    assert _is_focused(page, focused), "the refresh notice took the focused link's place"

    fake_api.advance(job_id, 10)  # the next refresh succeeds, and the notice goes
    expect(_progress(card)).to_have_attribute("aria-valuenow", "10")
    expect(notice).to_have_count(0)
    assert _is_focused(page, focused), "the notice took the focused link with it"
    page.keyboard.press("Tab")
    expect(card.get_by_role("link", name=re.compile(r"^Remove"))).to_be_focused()


def test_focus_and_open_details_survive_polls_on_the_job_page(dashboard, fake_api, api_secret):
    page = dashboard
    job_id = fake_api.add_job(token=api_secret, total_steps=100, suffix="details-open")["id"]
    track_job(page, job_id)
    open_job_page(page, job_id)
    live = page.locator("#job-live")

    edit = page.locator("details.job-edit")
    edit.locator("summary").click()
    expect(edit).to_have_attribute("open", "")
    raw = page.locator("#raw-json")
    summary = raw.locator("summary")
    summary.focus()
    page.keyboard.press("Enter")
    expect(raw).to_have_attribute("open", "")
    focused = summary.element_handle()

    for steps in (10, 20):
        fake_api.advance(job_id, 10)
        expect(fact(live, "Steps")).to_have_text(f"{steps} of 100")
        expect(raw.locator("pre")).to_contain_text(f'"trained_steps": {steps}')
    assert _is_focused(page, focused), "a poll moved keyboard focus away from the summary"
    expect(raw).to_have_attribute("open", "")
    expect(edit).to_have_attribute("open", "")


def test_text_selection_in_a_card_survives_a_poll(dashboard, fake_api, api_secret):
    page = dashboard
    job_id = fake_api.add_job(token=api_secret, total_steps=100, suffix="keep-me-selected")["id"]
    card = track_job(page, job_id)
    page.evaluate(
        """el => {
            const range = document.createRange();
            range.selectNodeContents(el);
            getSelection().removeAllRanges();
            getSelection().addRange(range);
        }""",
        fact(card, "Suffix").element_handle(),
    )
    assert page.evaluate("getSelection().toString()") == "keep-me-selected"

    fake_api.advance(job_id, 25)
    expect(_progress(card)).to_have_attribute("aria-valuenow", "25")
    assert page.evaluate("getSelection().toString()") == "keep-me-selected"


def test_status_changes_are_announced_once_and_counted_in_the_title(dashboard, fake_api, api_secret):
    page = dashboard
    alpha = fake_api.add_job(token=api_secret, total_steps=100)["id"]
    beta = fake_api.add_job(token=api_secret, total_steps=100)["id"]
    alpha_card = track_job(page, alpha, label="Alpha run")
    beta_card = track_job(page, beta, label="Beta run")
    expect(page).to_have_title("(2 running) Dashboard · ftdash")
    announcer = page.locator("#live-announcer")
    expect(announcer).to_have_attribute("aria-live", "polite")

    # A progress tick is not news.
    fake_api.advance(alpha, 10)
    expect(_progress(alpha_card)).to_have_attribute("aria-valuenow", "10")
    expect(announcer).to_have_text("")

    # The end is, once; and the title counts one job running.
    fake_api.advance(alpha, 90)
    expect(alpha_card.locator(".badge")).to_have_text("succeeded")
    expect(announcer).to_have_text("Alpha run is now succeeded.")
    expect(page).to_have_title("(1 running) Dashboard · ftdash")
    fake_api.advance(beta, 10)
    expect(_progress(beta_card)).to_have_attribute("aria-valuenow", "10")
    expect(announcer.locator("p")).to_have_count(1)


def test_title_counts_running_jobs_on_other_pages_too(dashboard, fake_api, api_secret):
    # 52 running jobs fill the first page (50 cards) and spill onto the next.
    page = dashboard
    job_ids = [job["id"] for job in fake_api.add_jobs(52, token=api_secret, total_steps=100)]
    for batch in (job_ids[:50], job_ids[50:]):  # at most 50 IDs per submission
        page.get_by_label("Job ID").fill("\n".join(batch))
        with page.expect_navigation(timeout=60_000):  # one API call per job, then the dashboard
            page.get_by_role("button", name="Track job").click(no_wait_after=True)
        # One line per ID (not a count: a bare "50" turns up in some random job ID or other).
        tracked = page.get_by_role("status").get_by_role("listitem").filter(has_text=": tracked")
        expect(tracked).to_have_count(len(batch))
    expect(page).to_have_title("(52 running) Dashboard · ftdash")
    first = page.locator("li.job-card").first
    first_id = first.locator("a.job-id").inner_text()

    fake_api.advance(first_id, 100)
    # No worker here: each poll refreshes the four most overdue of the 52 jobs (1 s interval),
    # so any one of them is read again within 13 polls.
    expect(job_card(page, first_id).locator(".badge")).to_have_text("succeeded", timeout=60_000)
    expect(page).to_have_title("(51 running) Dashboard · ftdash")


def test_job_page_announces_the_end_follows_it_in_the_title_keeps_focus_and_stops_polling(
    dashboard, fake_api, api_secret
):
    page = dashboard
    job_id = fake_api.add_job(token=api_secret, total_steps=100)["id"]
    track_job(page, job_id, label="Gamma run")
    open_job_page(page, job_id)
    expect(page).to_have_title("running · Gamma run · ftdash")
    copy = page.get_by_role("region", name="Job").get_by_role("button", name="Copy job ID")
    copy.focus()
    focused = copy.element_handle()
    polls = record_requests(page, "/live/")

    # The job fails: an error panel appears above the focused button, which stays put.
    fake_api.update_job(job_id, status="failed", error={"code": "bad_data", "message": "Line 3", "param": None})
    expect(page.get_by_role("region", name="Error")).to_contain_text("bad_data")
    expect(page.locator("#progress-heading .badge")).to_have_text("failed")
    expect(page).to_have_title("failed · Gamma run · ftdash")
    expect(page.locator("#live-announcer")).to_have_text("Gamma run is now failed.")
    assert _is_focused(page, focused), "the error panel took the focused button's place"
    assert polls, "the job page never polled"
    assert_no_more_requests(page, polls)


def test_hidden_tab_rests_and_catches_up_when_shown(dashboard, fake_api, api_secret):
    page = dashboard
    job_id = fake_api.add_job(token=api_secret, total_steps=100, suffix="hide-me")["id"]
    card = track_job(page, job_id)
    polls = record_requests(page, "/live/")
    with page.expect_request(lambda request: "/live/" in request.url):
        pass  # the page is polling while visible
    # As if the server asked for a poll every 4 s (it says every second here): then catching
    # up "at once" is told apart from waiting for the next visible interval.
    page.locator("[data-live-url]").evaluate("root => { root.dataset.liveInterval = '4'; }")

    set_page_visibility(page, "hidden")
    page.wait_for_timeout(500)  # a poll sent just before may still be reported
    settled = len(polls)
    fake_api.advance(job_id, 30)
    page.wait_for_timeout(6000)  # longer than the visible interval: a poll is due when shown
    assert polls[settled:] == [], "a hidden tab went on polling at the visible rate"
    expect(_progress(card)).to_have_attribute("aria-valuenow", "0")

    # Shown again: it asks at once and the card catches up with what happened meanwhile.
    shown_at = time.monotonic()
    with page.expect_request(lambda request: "/live/" in request.url, timeout=2000):
        set_page_visibility(page, "visible")
    assert time.monotonic() - shown_at < 2.0
    expect(_progress(card)).to_have_attribute("aria-valuenow", "30")


def test_relative_times_keep_counting_without_a_poll(dashboard, fake_api, api_secret):
    page = dashboard
    polls = record_requests(page, "/live/")
    job_id = fake_api.add_job(token=api_secret, status="succeeded", total_steps=100, trained_steps=100)["id"]
    card = track_job(page, job_id)
    changed = card.locator("time.changed[data-relative]")
    expect(changed).to_have_text(re.compile(r"^no change for \d+ s$"))
    first = int(changed.inner_text().split()[-2])
    handle = changed.element_handle()

    page.wait_for_function(
        "([el, first]) => el.isConnected && parseInt(el.textContent.split(' ').at(-2), 10) >= first + 3",
        arg=[handle, first],
    )
    expect(card).to_contain_text(re.compile(r"no change for \d+ s"))
    assert polls == [], "nothing on the page is live, yet it polled"


def test_dashboard_without_javascript_shows_fresh_data_on_reload(browser, app_server, user, fake_api, api_secret):
    context = browser.new_context(base_url=app_server.url, java_script_enabled=False)
    try:
        page = context.new_page()
        sign_in(page, user)
        save_token(page, "research", api_secret)
        page.goto("/")
        job_id = fake_api.add_job(token=api_secret, total_steps=100, suffix="no-js")["id"]
        card = track_job(page, job_id)
        expect(fact(card, "Suffix")).to_have_text("no-js")
        expect(_progress(card)).to_have_attribute("aria-valuenow", "0")

        fake_api.advance(job_id, 40)
        deadline = time.monotonic() + 15
        while _progress(card).get_attribute("aria-valuenow") != "40" and time.monotonic() < deadline:
            page.wait_for_timeout(500)  # the snapshot is fresh for a second; then a reload refreshes it
            page.reload()
        expect(_progress(card)).to_have_attribute("aria-valuenow", "40", timeout=1000)
        expect(page).to_have_title("(1 running) Dashboard · ftdash")
    finally:
        context.close()


def test_quiet_cards_stay_put_while_the_page_says_when_they_were_checked(dashboard, fake_api, api_secret):
    # Issue 17, item 9: a check that finds nothing new sends no card (204), yet the page tells
    # how fresh it is. A morph would drop the marker set on each card (the server's card has
    # none), so a marker that survives several checks means no card was sent again.
    page = dashboard
    for suffix in ("quiet-a", "quiet-b"):
        track_job(page, fake_api.add_job(token=api_secret, total_steps=100, trained_steps=10, suffix=suffix)["id"])
    answers: list[int] = []
    page.on("response", lambda response: answers.append(response.status) if "/live/cards/" in response.url else None)
    # The first check reads each job's training log (a change); then nothing changes.
    with page.expect_response(lambda r: "/live/cards/" in r.url and r.status == 204, timeout=20_000):
        pass
    cards = page.locator("li.job-card")
    cards.evaluate_all("cards => cards.forEach(card => card.setAttribute('data-test-marker', 'kept'))")
    del answers[:]
    checked = page.locator("[data-live-checked]")
    checked_time = checked.locator("time")
    expect(checked).to_be_visible()

    for _ in range(2):  # two checks later (each one moves the line's time)...
        before = checked_time.get_attribute("datetime")
        expect(checked_time).not_to_have_attribute("datetime", before, timeout=20_000)

    expect(checked).to_have_text(re.compile(r"^Checked with Token Factory \d+ s ago\.$"))
    # ...while no card was sent again: the markers are all still there, every answer a 204.
    assert cards.evaluate_all("cards => cards.map(card => card.getAttribute('data-test-marker'))") == ["kept", "kept"]
    assert answers and set(answers) == {204}, answers
    expect(cards.locator("time.changed").first).to_have_text(re.compile(r"^no change for \d+ s$"))
    # Read out at no poll: the line is in no live region.
    assert checked.evaluate("el => !el.closest('[aria-live], [role=status], [role=log], [role=alert]')")
    audit = Audit()
    audit.check(page, "dashboard of quiet jobs")
    audit.assert_clean()
