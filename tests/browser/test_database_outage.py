"""An open dashboard while ftdash's PostgreSQL restarts (issue 17, item 4), in Chromium.

ftdash runs under gunicorn against a PostgreSQL cluster this module creates on its own port
(not the session's SQLite app server), so the test can stop and start the database under an
open tab. While polls answer 503 the page asks far less often (it honours Retry-After), keeps
its cards and its focus, and says politely that it is retrying; the first good answer brings
the usual rhythm back. Requests are counted over windows, the only fixed waits here.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from types import SimpleNamespace

import pytest

from tests.support.browser_pages import expect, live_interval_seconds, sign_in
from tests.support.chromium import TIMEOUT_MS
from tests.support.fake_tokenfactory import ALIVE, FakeTokenFactory
from tests.support.postgres_cluster import postgres_cluster
from tests.support.server_process import ftdash_server
from tests.support.web_forms import ADMIN_PASSWORD, create_admin, save_token, signed_in_session, track_job

pytestmark = pytest.mark.browser

SECRET = "sk-outage-browser-0123456789-SECRET"


@pytest.fixture(scope="module")
def site(browser, tmp_path_factory):
    """(the server, its PostgreSQL cluster), with one running job tracked."""
    tmp = tmp_path_factory.mktemp("outage-browser")
    with (
        postgres_cluster() as cluster,
        FakeTokenFactory() as api,
        ftdash_server(
            tmp / "data", api_url=api.url, workers=1, DATABASE_URL=cluster.create_database("ftdash")
        ) as server,
    ):
        api.add_token(SECRET)
        create_admin(server)
        session = signed_in_session(server, "admin", ADMIN_PASSWORD)
        token_pk = save_token(session, server, SECRET)
        remote = api.add_job(**ALIVE)  # runs for as long as the test
        track_job(session, server, remote["id"], token_pk)
        yield server, cluster
        with contextlib.suppress(subprocess.CalledProcessError):  # it was running already
            cluster.start()


class Polls:
    """Every poll of the page: when it was sent, and the status it got (None until then)."""

    def __init__(self, page):
        self.page = page
        self.sent: list[float] = []
        self.statuses: list[int] = []
        page.on("request", lambda request: self.sent.append(time.monotonic()) if "/live/" in request.url else None)
        page.on(
            "response", lambda response: self.statuses.append(response.status) if "/live/" in response.url else None
        )

    def wait_for_status(self, wanted: set[int], timeout_s: float) -> None:
        """Let the page run until a poll gets one of `wanted` (from now on)."""
        start = len(self.statuses)
        deadline = time.monotonic() + timeout_s
        while not set(self.statuses[start:]) & wanted:
            assert time.monotonic() < deadline, f"no poll answered {wanted} in {timeout_s} s: {self.statuses}"
            self.page.wait_for_timeout(100)

    def sent_during(self, window_s: float) -> int:
        before = len(self.sent)
        self.page.wait_for_timeout(window_s * 1000)
        return len(self.sent) - before


def test_while_the_database_restarts_the_dashboard_backs_off_then_resumes(browser, site):
    server, cluster = site
    context = browser.new_context(base_url=server.url)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    try:
        sign_in(page, SimpleNamespace(username="admin", password=ADMIN_PASSWORD))
        page.goto("/")
        card = page.locator("li.job-card[data-live-active]")
        expect(card).to_have_count(1)
        interval = live_interval_seconds(page)
        polls = Polls(page)
        polls.wait_for_status({200, 204}, timeout_s=30)
        field = page.get_by_label("Job ID")
        field.focus()

        cluster.stop()
        polls.wait_for_status({503}, timeout_s=30)
        # At the usual rhythm a 12 s window holds about 12 polls; backing off (Retry-After: 10)
        # it holds one or two.
        window = 12.0
        during = polls.sent_during(window)
        assert during <= 2, f"{during} polls in {window} s of outage at a {interval} s interval"
        expect(card).to_have_count(1)  # the cards stay; the 503 page is never swapped in
        assert "cannot reach its database" not in page.locator("main").inner_text()
        expect(page.locator("#live-announcer")).to_contain_text("Can't reach the server; retrying…")
        expect(field).to_be_focused()

        cluster.start()
        polls.wait_for_status({200, 204}, timeout_s=70)
        after = polls.sent_during(4 * interval)
        assert after >= 2, f"only {after} polls in {4 * interval} s after the database came back"
        expect(page.locator("#live-announcer")).to_contain_text("Connected to the server again.")
        expect(field).to_be_focused()
    finally:
        context.close()
