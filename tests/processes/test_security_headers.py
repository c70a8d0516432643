"""Security headers and the strict CSP on a real ftdash server: a real browser shows that htmx
works under the CSP with zero violations, and gunicorn's answers made before any view still
carry the headers. Every page and fragment is checked in-process in tests/test_security_headers.py.
"""

from __future__ import annotations

import re
import secrets

import pytest

from tests.support.security_headers import assert_framing_and_policy
from tests.support.web_forms import ADMIN_PASSWORD, create_admin

REPORT_CSP = """
document.addEventListener("securitypolicyviolation", (event) => {
  window.__reportCsp([event.violatedDirective, event.blockedURI, event.sourceFile, event.lineNumber].join(" "));
});
"""


@pytest.mark.browser
def test_in_a_browser_htmx_works_under_the_csp_with_zero_violations(browser, tmp_path):
    from playwright.sync_api import expect

    from tests.support.browser_pages import save_token, sign_in, track_job
    from tests.support.fake_tokenfactory import FakeTokenFactory
    from tests.support.server_process import ftdash_server

    secret = "sk-csp-" + secrets.token_hex(12)

    class Account:
        username, password = "admin", ADMIN_PASSWORD

    with FakeTokenFactory() as api, ftdash_server(tmp_path / "data", api_url=api.url, workers=2) as server:
        create_admin(server)
        api.add_token(secret)
        job = api.add_job(token=secret, total_steps=10_000, steps_per_second=150)

        context = browser.new_context(base_url=server.url, viewport={"width": 1280, "height": 900})
        context.set_default_timeout(10_000)
        violations: list[str] = []
        console: list[str] = []
        context.expose_function("__reportCsp", lambda line: violations.append(line))
        context.add_init_script(REPORT_CSP)
        try:
            page = context.new_page()
            page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
            page.on("pageerror", lambda error: console.append(f"pageerror: {error}"))

            sign_in(page, Account)
            save_token(page, "research", secret)  # the tokens page
            page.goto("/")
            card = track_job(page, job["id"])

            # The dashboard card polls and updates.
            card_text = card.locator(".progress-text")
            first = card_text.inner_text()
            expect(card_text).not_to_have_text(first, timeout=8_000)

            # The job page polls and its progress bar moves.
            card.get_by_role("link", name=job["id"], exact=True).click()
            expect(page).to_have_url(re.compile(r"/jobs/\d+/$"))
            bar = page.locator("#job-live progress")
            expect(bar).to_have_attribute("value", re.compile(r"^\d+$"))
            before = bar.get_attribute("value")
            page.wait_for_function(
                "before => { const bar = document.querySelector('#job-live progress');"
                " return bar && bar.getAttribute('value') !== before; }",
                arg=before,
                timeout=8_000,
            )
            assert page.evaluate("typeof window.htmx") == "object"
            assert page.evaluate("htmx.config.allowEval") is False
            assert page.evaluate("htmx.config.includeIndicatorStyles") is False

            page.goto("/tokens/")
            expect(page.get_by_role("heading", level=1)).to_be_visible()
            page.wait_for_timeout(300)  # let any late report arrive

            assert violations == [], violations
            refused = [line for line in console if "Content Security Policy" in line or "Refused to" in line]
            assert refused == [], refused
            assert [line for line in console if line.startswith(("error", "pageerror"))] == [], console

            # The listener does catch a violation: an injected inline script is refused and reported.
            page.evaluate(
                "() => { const s = document.createElement('script');"
                " s.textContent = 'window.__injected = 1'; document.body.appendChild(s); }"
            )
            page.wait_for_timeout(300)
            assert page.evaluate("window.__injected") is None
            assert any("script-src" in line for line in violations), violations
        finally:
            context.close()


def test_a_real_server_sends_the_headers_on_a_bad_host_and_a_missing_page(tmp_path):
    import requests

    from tests.support.server_process import ftdash_server

    with ftdash_server(tmp_path / "data", api_url="http://127.0.0.1:9", workers=1) as server:
        session = requests.Session()
        session.trust_env = False
        bad_host = session.get(server.url + "/accounts/login/", headers={"Host": "attacker.example"}, timeout=10)
        assert bad_host.status_code == 400
        assert bad_host.headers["Content-Type"].startswith("text/html")
        assert_framing_and_policy(bad_host)

        missing = session.get(server.url + "/no-such-page/", timeout=10)
        assert missing.status_code == 404
        assert_framing_and_policy(missing)
