"""Every page of ftdash passes axe-core, in light and dark mode and at 390 px (see accessibility.py).

Signed-in pages are reached the way a person reaches them: the test saves a token, tracks jobs,
creates a team and an invite, auditing each page that answers with a flash message, then
follows every link the app's pages offer (GET only: links never change anything) and audits
each page it finds. The error pages and the first-run page need a site with DEBUG off and no
accounts, so they are audited on a second server started that way.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from urllib.parse import urljoin, urlsplit

import pytest
from cryptography.fernet import Fernet

from tests.support.accessibility import Audit
from tests.support.browser_pages import expect, open_job_page, save_token, sign_in, track_job
from tests.support.server_process import ROOT, ftdash_server

# Pages reached by links from these, too; the last two are linked from nowhere.
START_PATHS = [
    "/",
    "/tokens/",
    "/teams/",
    "/notifications/",
    "/accounts/password_change/",
    "/accounts/password_change/done/",
    "/accounts/create/",
]
# Not pages (static files, fragments) or not for this signed-in crawl (signing out, invites).
# Downloads (exports) and the API's OpenAPI schema are files, not pages.
SKIP = re.compile(
    r"^/(static/|accounts/logout/|invite/|jobs/\d+/(card|live)/|jobs/(\d+/)?[\w.-]+\.(json|csv)$|api/v1/openapi\.json$)"
)
CRAWL_LIMIT = 60

INVALID_FILE_ERROR = {"code": "invalid_training_file", "message": "Line 3 is not valid JSON", "param": "training_file"}


def _links(page, base: str) -> list[str]:
    hrefs = page.eval_on_selector_all("a[href]", "(links) => links.map((a) => a.getAttribute('href'))")
    paths = []
    for href in hrefs:
        url = urlsplit(urljoin(page.url, href))
        if f"{url.scheme}://{url.netloc}" == base and not url.query and not SKIP.match(url.path):
            paths.append(url.path)
    return paths


@pytest.mark.browser
def test_every_signed_in_page_passes_axe(page, user, fake_api, api_secret, app_server, browser):
    audit = Audit()
    sign_in(page, user)
    expect(page.get_by_role("heading", name="Fine-tuning jobs")).to_be_visible()
    audit.check(page, "dashboard, no token yet")

    save_token(page, "research", api_secret)
    audit.check(page, "tokens, with a flash message")

    page.goto("/")
    audit.check(page, "dashboard, no jobs")
    running = fake_api.add_job(
        token=api_secret,
        total_steps=400,
        trained_steps=120,
        validation_file="file-d1c98e51-0000-0000-0000-000000000000",
        from_checkpoint={"type": "hf", "repo": "acme-ml/faq-v1", "revision": "main"},
        integrations=[
            {"type": "wandb", "wandb": {"project": "demo", "entity": "acme-ml", "name": "run-1", "tags": ["sft"]}},
            {"type": "hf", "hf": {"output_repo_name": "acme-ml/support-bot-qwen3-4b"}},
        ],
    )["id"]
    failed = fake_api.add_job(
        token=api_secret, status="failed", total_steps=100, trained_steps=40, error=INVALID_FILE_ERROR
    )["id"]
    succeeded = fake_api.add_job(
        token=api_secret,
        status="succeeded",
        total_steps=50,
        trained_steps=50,
        result_files=["file-aaaa1111-0000-0000-0000-000000000000"],
    )["id"]
    # Its page then shows events, a checkpoints table and curves, one metric missing.
    for step, loss in ((25, 1.2), (50, 0.8)):
        fake_api.add_checkpoint(succeeded, step_number=step, metrics={"train_loss": loss, "valid_loss": float("nan")})
    fake_api.add_event(succeeded, "Checkpoint saved", level="warning")
    track_job(page, failed)
    track_job(page, succeeded, label="Summarizer v1")
    track_job(page, running, label="Support bot")
    audit.check(page, "dashboard with jobs, with a flash message")
    job_paths = []
    for job_id in (running, failed, succeeded):
        page.goto("/")
        job_paths.append(open_job_page(page, job_id))
        audit.check(page, f"job page {job_id}")
    # Compare (a GET form's answer, so no link leads there): two jobs, one with curves.
    page.goto("/")
    for name in ("Summarizer v1", "Support bot"):
        page.get_by_label(f"Compare {name}", exact=True).check()
    page.get_by_role("button", name="Compare", exact=True).click()
    expect(page.get_by_role("heading", name="Compare 2 jobs")).to_be_visible()
    audit.check(page, "compare two jobs")

    page.goto("/teams/")
    page.get_by_label("Team name").fill("Research")
    page.get_by_role("button", name="Create team").click()
    expect(page.get_by_role("status")).to_contain_text("Research")
    audit.check(page, "team page, with a flash message")
    team_path = urlsplit(page.url).path
    invite_paths = []
    invite_button = page.get_by_role("button", name=re.compile("invite link", re.I))
    if invite_button.count():
        invite_button.first.click()
        expect(page.get_by_role("status")).to_be_visible()
        audit.check(page, "team page, after creating an invite")
        invite_paths = sorted(set(re.findall(r"/invite/[A-Za-z0-9_-]+/", page.content())))

    # Every other page the app links to.
    seen = set(job_paths) | {team_path}
    queue = START_PATHS + [team_path] + job_paths
    crawled = set()
    while queue:
        path = queue.pop(0)
        if path in crawled:
            continue
        crawled.add(path)
        assert len(crawled) <= CRAWL_LIMIT, f"more than {CRAWL_LIMIT} pages: {sorted(crawled)}"
        response = page.goto(path)
        assert response.status == 200, f"{path} answered {response.status}"
        if path not in seen:
            audit.check(page, path)
            seen.add(path)
        queue += [p for p in _links(page, app_server.url) if p not in crawled]

    # Signed out: sign-in, an invite (as a newcomer) and an invite that does not exist.
    with browser.new_context(base_url=app_server.url) as signed_out:
        other = signed_out.new_page()
        other.goto("/accounts/login/")
        audit.check(other, "sign-in")
        for path in invite_paths[:1] + ["/invite/not-a-real-invite/"]:
            other.goto(path)
            audit.check(other, f"invite {path}")

    audit.assert_clean()
    assert len(audit.audited) >= 15, audit.audited


# ---------------------------------------------------------------------------- DEBUG off

FERNET_KEY = Fernet.generate_key().decode()
PRODUCTION = {
    "FTDASH_DEBUG": "false",
    "FTDASH_SECRET_KEY": secrets.token_urlsafe(50),
    "FTDASH_ENCRYPTION_KEYS": FERNET_KEY,
    "FTDASH_SIGNUP_OPEN": "true",
}
PLAIN_PASSWORD = "plain-member-passphrase-1"


@pytest.fixture(scope="module")
def production_server(tmp_path_factory, fake_api, chromium_executable):
    """ftdash with DEBUG off and no accounts yet, its static files collected as a deploy does."""
    data_dir = tmp_path_factory.mktemp("production") / "data"
    data_dir.mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FTDASH_", "DJANGO_")) and k not in ("DATABASE_URL", "REDIS_URL")
    }
    env.update(DJANGO_SETTINGS_MODULE="ftdash.settings", FTDASH_DATA_DIR=str(data_dir), **PRODUCTION)
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "--verbosity", "0"],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=300,
    )
    with ftdash_server(data_dir, api_url=fake_api.url, workers=1, **PRODUCTION) as server:
        yield server


@pytest.mark.browser
def test_error_and_first_run_pages_pass_axe_with_debug_off(production_server, browser):
    server = production_server
    audit = Audit()
    with browser.new_context(base_url=server.url) as context:
        page = context.new_page()
        page.goto("/setup/")
        expect(page.get_by_role("heading", name="Create the first administrator account")).to_be_visible()
        audit.check(page, "first run")

        response = page.goto("/no/such/page/")
        assert response.status == 404
        expect(page.get_by_role("heading", name="Page not found")).to_be_visible()
        expect(page.get_by_role("link", name="Sign in")).to_be_visible()
        audit.check(page, "404, signed out")

        page.goto("/accounts/signup/")
        audit.check(page, "sign-up")

        server.manage(
            "shell",
            "-c",
            "from django.contrib.auth import get_user_model; "
            f"get_user_model().objects.create_user('member', password='{PLAIN_PASSWORD}')",
        )
        page.goto("/accounts/login/")
        page.get_by_label("Username").fill("member")
        page.get_by_label("Password").fill(PLAIN_PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator(".nav-user")).to_have_text("member")

        response = page.goto("/jobs/999999/")
        assert response.status == 404
        expect(page.get_by_text("No such job.")).to_be_visible()
        response = page.goto("/no/such/page/")
        assert response.status == 404
        expect(page.get_by_role("heading", name="Page not found")).to_be_visible()
        nav = page.get_by_role("navigation", name="Main")
        expect(nav.get_by_role("link", name="Dashboard")).to_be_visible()
        expect(nav.locator("[aria-current]")).to_have_count(0)  # no section is "current" here
        audit.check(page, "404, signed in")

        response = page.goto("/accounts/create/")
        assert response.status == 403
        expect(page.get_by_role("heading", name="You cannot do that here")).to_be_visible()
        expect(page.get_by_text("Only administrators create accounts.")).to_be_visible()
        audit.check(page, "403")

        # The database breaks: the 500 page still shows, with the layout and the section links.
        database = server.data_dir / "ftdash.sqlite3"
        for leftover in server.data_dir.glob("ftdash.sqlite3-*"):
            leftover.unlink()
        database.write_bytes(b"this is not a database" * 100)
        response = page.goto("/")
        assert response.status == 500
        expect(page.get_by_role("heading", name="Something went wrong on our side")).to_be_visible()
        expect(page.get_by_role("navigation", name="Main").get_by_role("link", name="API tokens")).to_be_visible()
        assert "Traceback" not in page.content()
        audit.check(page, "500, database unreadable")
    audit.assert_clean()
