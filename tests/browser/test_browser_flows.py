"""What a person sees in a real browser: first run, tokens, tracking, live progress, errors.

Every test asserts on the rendered page (text, roles, ARIA values, URL, title) and relies on
Playwright's auto-waiting ``expect``; the only fixed waits are the ~3 s windows that show
polling has stopped.
"""

from __future__ import annotations

import re

import pytest

from tests.support.browser_pages import (
    assert_no_more_requests,
    expect,
    fact,
    job_card,
    open_job_page,
    record_requests,
    sign_in,
    track_job,
)

INVALID_FILE_ERROR = {
    "code": "invalid_training_file",
    "message": "Line 3 is not valid JSON",
    "param": "training_file",
}


@pytest.mark.browser
def test_first_run_offers_admin_creation(first_admin, page, app_server):
    # The `first_admin` fixture opened `/` on the empty site, saw the first-run page, created
    # the account there and was signed in by it.
    assert first_admin.first_page_path == "/setup/"
    assert first_admin.landed_path == "/tokens/"
    assert first_admin.signed_in_as == first_admin.account.username

    # Now that an account exists, the first-run page is gone for good...
    page.goto("/setup/")
    expect(page).to_have_url(re.compile(r"/accounts/login/"))
    expect(page.get_by_role("heading", name="Sign in to ftdash")).to_be_visible()
    expect(page.get_by_text("Create the first administrator account")).to_have_count(0)
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/accounts/login/"))

    # ...and the account it created signs in.
    sign_in(page, first_admin.account)
    expect(page.get_by_role("link", name="API tokens")).to_be_visible()


@pytest.mark.browser
def test_sign_in_save_token_track_job_and_watch_progress(page, user, fake_api, api_secret):
    sign_in(page, user)
    expect(page).to_have_url(re.compile(r"/$"))

    # Save a token: afterwards only its last four characters are ever shown.
    page.get_by_role("link", name="API tokens").click()
    expect(page.get_by_role("heading", name="API tokens", exact=True)).to_be_visible()
    page.get_by_label("Token name").fill("research")
    page.get_by_label("API token", exact=True).fill(api_secret)
    page.get_by_role("button", name="Save token").click()
    row = page.get_by_role("row").filter(has=page.get_by_role("rowheader", name="research", exact=True))
    expect(row).to_contain_text("…" + api_secret[-4:])
    assert api_secret not in page.content()

    row.get_by_role("button", name="Test").click()
    expect(page.get_by_role("status")).to_contain_text("Token Factory accepts this token.")
    expect(row).to_contain_text("works")
    assert api_secret not in page.content()

    # Track a job that trains 100 steps in about 6 s.
    page.get_by_role("link", name="Dashboard", exact=True).click()
    expect(page.get_by_role("heading", name="Fine-tuning jobs")).to_be_visible()
    job_id = fake_api.add_job(token=api_secret, total_steps=100, steps_per_second=16, suffix="watch-me")["id"]
    card = track_job(page, job_id)
    card_id = card.get_attribute("id")
    bar = card.get_by_role("progressbar")
    expect(bar).to_have_attribute("aria-valuenow", re.compile(r"^\d+$"))
    start = int(bar.get_attribute("aria-valuenow"))
    assert start < 100

    # The card's progress grows by itself: no reload (the marker on `window` survives).
    page.evaluate("window.__marker = 1")
    page.wait_for_function(
        """([selector, start]) => {
            const bar = document.querySelector(selector);
            return bar !== null && Number(bar.getAttribute("aria-valuenow")) > start;
        }""",
        arg=[f"#{card_id} [role=progressbar]", start],
    )
    assert page.evaluate("window.__marker") == 1

    # The job page follows the job to the end, then stops asking.
    live_requests = record_requests(page, "/live/")
    open_job_page(page, job_id)
    expect(page).to_have_title(re.compile(r"^running · "))
    page.evaluate("window.__marker = 2")
    live = page.locator("#job-live")
    expect(live.get_by_role("progressbar")).to_have_attribute("aria-valuenow", "100", timeout=15_000)
    expect(live.get_by_role("heading", name=re.compile("^Progress")).locator(".badge")).to_have_text("succeeded")
    expect(fact(live, "Steps")).to_have_text("100 of 100")
    expect(page).to_have_title(re.compile(r"succeeded"))
    assert page.evaluate("window.__marker") == 2
    assert live_requests, "the job page never polled /live/"
    assert_no_more_requests(page, live_requests)
    assert live.get_attribute("hx-get") is None


@pytest.mark.browser
def test_failed_job_shows_its_error(dashboard, fake_api, api_secret):
    page = dashboard
    job_id = fake_api.add_job(
        token=api_secret,
        total_steps=100,
        steps_per_second=20,
        fail_at_step=50,  # fails about 2.5 s from now, while its page is open
        fail_with=INVALID_FILE_ERROR,
        suffix="bad-data",
    )["id"]
    track_job(page, job_id)
    open_job_page(page, job_id)

    error = page.get_by_role("region", name="Error")
    expect(error).to_be_visible()
    expect(fact(error, "Code")).to_have_text("invalid_training_file")
    expect(fact(error, "Message")).to_have_text("Line 3 is not valid JSON")
    expect(fact(error, "Param")).to_have_text("training_file")
    expect(page.locator("#progress-heading .badge")).to_have_text("failed")
    expect(page).to_have_title(re.compile(r"^failed · "))


SCRIPT = "<script>window.__xss=1</script>"
IMG = '<img src=x onerror="window.__xss=1">'
JS_URL = "javascript:window.__xss=1"


@pytest.mark.browser
def test_upstream_markup_and_javascript_urls_stay_inert(dashboard, fake_api, api_secret):
    page = dashboard
    dialogs: list[str] = []

    def on_dialog(dialog):
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    job_id = fake_api.add_job(
        token=api_secret,
        status="failed",
        total_steps=100,
        trained_steps=10,
        suffix=SCRIPT,
        model=IMG,
        error={"code": "bad_input", "message": f"{SCRIPT} {IMG}", "param": IMG},
        integrations=[
            {
                "type": "wandb",
                "wandb": {"project": IMG, "entity": "acme", "name": SCRIPT, "tags": [SCRIPT, IMG]},
            },
            {"type": "mlflow", "mlflow": {"tracking_uri": JS_URL, "experiment_name": SCRIPT}},
        ],
        from_checkpoint={"type": "hf", "repo": "javascript:alert(1)"},
        unknown_extra=f"{SCRIPT}{IMG}",
    )["id"]

    card = track_job(page, job_id)
    expect(fact(card, "Suffix")).to_have_text(SCRIPT)
    expect(fact(card, "Model")).to_have_text(IMG)

    open_job_page(page, job_id)
    main = page.locator("main")
    expect(fact(page.get_by_role("region", name="Error"), "Message")).to_have_text(f"{SCRIPT} {IMG}")
    expect(fact(page.get_by_role("region", name="Job"), "Suffix")).to_have_text(SCRIPT)
    expect(fact(page.get_by_role("region", name="Job"), "Model")).to_have_text(IMG)
    integrations = page.get_by_role("region", name="Integrations")
    expect(fact(integrations, "Project")).to_have_text(IMG)
    expect(fact(integrations, "Run name")).to_have_text(SCRIPT)
    expect(integrations.locator(".tag")).to_have_text([SCRIPT, IMG])
    expect(fact(integrations, "Tracking URI")).to_have_text(JS_URL)
    expect(integrations.get_by_role("link", name=JS_URL)).to_have_count(0)
    expect(main).to_contain_text("javascript:alert(1)")  # the checkpoint, as text

    page.get_by_text("Raw JSON of the last snapshot").click()
    expect(page.locator("#raw-json pre")).to_contain_text(f'"unknown_extra": "{SCRIPT}')

    page.wait_for_load_state("load")
    expect(page.locator('a[href^="javascript:" i]')).to_have_count(0)
    expect(page.locator('img[src="x"]')).to_have_count(0)
    expect(page.locator("main script")).to_have_count(0)
    assert page.evaluate("typeof window.__xss") == "undefined"
    assert dialogs == []


@pytest.mark.browser
def test_session_expiry_sends_poll_to_sign_in(dashboard, context, fake_api, api_secret, user):
    page = dashboard
    job_id = fake_api.add_job(token=api_secret, total_steps=1000, steps_per_second=1, suffix="long-run")["id"]
    track_job(page, job_id)
    job_path = open_job_page(page, job_id)
    expect(page.locator("#job-live")).to_have_attribute("data-live-url", re.compile(r"/live/$"))
    page.evaluate("window.__marker = 1")

    context.clear_cookies()  # the session ends (expired, or signed out in another tab)

    # The next poll takes the whole tab to sign-in, coming back here afterwards.
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=" + re.escape(job_path) + "$"))
    expect(page.get_by_role("heading", name="Sign in to ftdash")).to_be_visible()
    expect(page).to_have_title("Sign in · ftdash")
    expect(page.locator("#job-live")).to_have_count(0)
    assert page.evaluate("typeof window.__marker") == "undefined"  # a real navigation

    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill(user.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(re.escape(job_path) + "$"))
    expect(page.locator("#job-live")).to_be_visible()


@pytest.mark.browser
def test_dashboard_card_stops_polling_when_job_finishes(dashboard, fake_api, api_secret):
    page = dashboard
    card_requests = record_requests(page, "/live/cards/")
    job_id = fake_api.add_job(token=api_secret, total_steps=30, steps_per_second=15, suffix="short")["id"]
    card = track_job(page, job_id)

    expect(card.locator(".badge")).to_have_text("succeeded")
    expect(card.get_by_role("progressbar")).to_have_attribute("aria-valuenow", "100")
    expect(card).to_contain_text("Finished")
    assert card_requests, "the dashboard never polled /live/cards/"
    assert_no_more_requests(page, card_requests)
    assert card.get_attribute("data-live-active") is None
    assert job_card(page, job_id).count() == 1
