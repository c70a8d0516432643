"""The "Access tokens" page in Chromium (issue 21): reached from the user menu beside Settings,
a token created with the keyboard, its secret shown once with a copy button and working against
the real server's API, revoked after a confirmation; every state passes axe, light and dark, and
at 390 px. The API's docs page is ftdash's own (no script), passes axe too and breaks no CSP rule."""

from __future__ import annotations

import re

import pytest
import requests

from tests.support.accessibility import Audit
from tests.support.browser_pages import expect, sign_in, token_row

REPORT_CSP = """
document.addEventListener("securitypolicyviolation", (event) => {
  window.__reportCsp([event.violatedDirective, event.blockedURI, event.sourceFile, event.lineNumber].join(" "));
});
"""


@pytest.mark.browser
def test_a_person_creates_uses_and_revokes_an_access_token(page, user, app_server):
    audit = Audit()
    sign_in(page, user)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Access tokens").click()
    expect(page.get_by_role("heading", name="Access tokens", level=1)).to_be_visible()
    expect(page.get_by_text("No access tokens yet.")).to_be_visible()
    audit.check(page, "access tokens, none")

    # A blank name: refused next to the field.
    name = page.get_by_label("Token name")
    name.fill("   ")
    page.get_by_role("button", name="Create access token").click()
    expect(name).to_have_attribute("aria-invalid", "true")
    audit.check(page, "access tokens, a refused form")

    # With the keyboard: the name, then a year, read and write, then the button.
    name.focus()
    page.keyboard.type("nightly training")
    page.get_by_label("A year").check()
    page.get_by_label("Read and write").check()
    page.get_by_role("button", name="Create access token").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Your new access token “nightly training”")).to_be_visible()
    secret = page.locator("#new-access-token").inner_text()
    assert re.fullmatch(r"ftd_[A-Za-z0-9_-]{43}", secret)
    expect(page.get_by_role("button", name="Copy access token")).to_be_visible()
    row = token_row(page, "nightly training")
    expect(row).to_contain_text("Read and write")
    expect(row).to_contain_text("never")  # not used yet
    audit.check(page, "access tokens, the new secret shown")

    # The secret works against the real server, once; the page never shows it again.
    answer = requests.get(f"{app_server.url}/api/v1/jobs", headers={"Authorization": f"Bearer {secret}"}, timeout=10)
    assert answer.status_code == 200 and answer.json()["results"] == []
    page.goto("/account/access-tokens/")
    expect(page.get_by_text(secret)).to_have_count(0)
    expect(token_row(page, "nightly training")).not_to_contain_text("never")

    # Revoke, after a confirmation: scripts using it get a 401 from then on.
    token_row(page, "nightly training").get_by_role("link", name="Revoke nightly training").click()
    expect(page.get_by_role("heading", name="Revoke the access token “nightly training”?")).to_be_visible()
    audit.check(page, "access tokens, revoke confirmation")
    page.get_by_role("button", name="Revoke").click()
    expect(page.get_by_role("status")).to_contain_text("Revoked the access token “nightly training”")
    expect(token_row(page, "nightly training")).to_contain_text("revoked")
    audit.check(page, "access tokens, one revoked")
    answer = requests.get(f"{app_server.url}/api/v1/jobs", headers={"Authorization": f"Bearer {secret}"}, timeout=10)
    assert answer.status_code == 401 and "revoked" in answer.json()["message"]
    audit.assert_clean()


@pytest.mark.browser
def test_the_api_docs_are_our_own_page_that_passes_axe_under_the_csp(context, user):
    violations: list[str] = []
    context.expose_function("__reportCsp", lambda line: violations.append(line))
    context.add_init_script(REPORT_CSP)
    page = context.new_page()
    outside: list[str] = []
    page.on("request", lambda request: outside.append(request.url) if "127.0.0.1" not in request.url else None)
    audit = Audit()

    # Signed out: public, as the schema is, in the site's own layout.
    page.goto("/api/v1/docs")
    expect(page.get_by_role("heading", name="The ftdash JSON API", level=1)).to_be_visible()
    expect(page.get_by_role("heading", name="POST /api/v1/jobs Track a job", level=3)).to_be_visible()
    expect(page.get_by_role("heading", name="GET /api/v1/jobs List jobs", level=3)).to_be_visible()
    audit.check(page, "API docs, signed out")

    # From the page's contents to an endpoint, with the keyboard.
    contents = page.get_by_role("navigation", name="On this page")
    contents.get_by_role("link", name="DELETE /api/v1/jobs/{job_id}: Stop tracking a job").focus()
    page.keyboard.press("Enter")
    assert page.url.endswith("#jobs_views_api_jobs_stop_tracking")
    page.get_by_role("link", name="OpenAPI schema (JSON)").click()
    assert "/api/v1/jobs" in page.evaluate("() => document.body.innerText")

    # Signed in: the same page with the site's menu, reached from the Access tokens page.
    sign_in(page, user)
    page.goto("/account/access-tokens/")
    page.get_by_role("main").get_by_role("link", name="JSON API").click()
    expect(page.get_by_role("heading", name="The ftdash JSON API", level=1)).to_be_visible()
    audit.check(page, "API docs, signed in")
    assert violations == [], violations
    assert outside == [], outside
    audit.assert_clean()
