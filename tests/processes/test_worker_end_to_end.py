"""End to end, real processes: a server, a background worker and nobody looking.

Set up through the web UI (first admin, token, a webhook and an email channel), jobs then
finish, fail, stall or live through an API outage upstream while no page is open: the worker
records their timeline and sends exactly one notification per event and channel. No SMTP server
is configured, so email goes where the README says it then goes: into the worker's log.

Each test tracks its own jobs and moves them itself (``api.advance``): nothing depends on how
fast the machine is, or on which tests ran before. Jobs that must look alive advance one step
per refresh (``steps_per_call``), so the short stall limit never catches them by accident.
"""

from __future__ import annotations

import json
import re
import signal

import pytest
import requests

from tests.support.fake_tokenfactory import ALIVE, FakeTokenFactory
from tests.support.server_process import ftdash_server, start_worker
from tests.support.waiting import wait_for
from tests.support.web_forms import add_channel, first_run, save_token, track_job
from tests.support.webhooks import Receiver

SECRET = "sk-e2e-worker-0123456789-SECRET-e2e9"
EMAIL_RE = re.compile(r"^Content-Type: text/plain.*?^-{79}$", re.S | re.M)
PASSWORD = "a-long-Passphrase-for-e2e"
ERROR = {"code": "invalid_training_file", "message": "Line 17 has no messages list", "param": "training_file"}


class Site:
    def __init__(self, api, server, session, receiver, tmp):
        self.api, self.server, self.session, self.receiver, self.tmp = api, server, session, receiver, tmp
        self.token_pk = None
        self.worker = None
        self.worker_logs = []

    @property
    def worker_log(self):
        return self.worker_logs[-1]

    def ensure_worker(self) -> None:
        """A running worker (a test may have stopped the last one)."""
        if self.worker is not None and self.worker.poll() is None:
            return
        log = self.tmp / f"worker-{len(self.worker_logs) + 1}.log"
        self.worker_logs.append(log)
        # FTDASH_SITE_URL: so notifications link to the job page.
        self.worker = start_worker(self.server, log, FTDASH_SITE_URL=self.server.url)
        wait_for(lambda: "Background worker active" in self.get("/"), what="the worker's heartbeat")

    def refreshes(self, job_id: str, more: int = 3) -> None:
        """Wait until the worker has asked the API about the job `more` more times."""
        seen = len(self.api.calls_for(job_id))
        wait_for(lambda: len(self.api.calls_for(job_id)) >= seen + more, what=f"{more} more refreshes")

    def get(self, path: str) -> str:
        response = self.session.get(self.server.url + path, timeout=10)
        assert response.status_code == 200, (path, response.status_code)
        return response.text

    def track(self, **fields) -> tuple[dict, int]:
        """Add a job upstream and track it through the dashboard's form; (remote job, pk)."""
        remote = self.api.add_job(**fields)
        return remote, track_job(self.session, self.server, remote["id"], self.token_pk)

    def posts_for(self, job_id: str) -> list[dict]:
        return [body for body in self.receiver.json() if body.get("job_id") == job_id]

    def emails(self) -> list[str]:
        """Every message the workers wrote to their logs (Django's console email backend)."""
        return [
            m for log in self.worker_logs if log.exists() for m in EMAIL_RE.findall(log.read_text(errors="replace"))
        ]

    def emails_for(self, job_id: str) -> list[str]:
        return [message for message in self.emails() if job_id in message]

    def timeline(self, pk: int) -> str:
        page = self.get(f"/jobs/{pk}/")
        return re.search(r'<h2 id="timeline-heading">.*?</ol>', page, re.S).group(0)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e")
    settings_env = {
        "FTDASH_ALLOW_PRIVATE_WEBHOOKS": "true",  # the receiver is on loopback
        # No FTDASH_SMTP_HOST and no FTDASH_EMAIL_BACKEND: email goes to the worker's log.
        "FTDASH_WORKER_INTERVAL_SECONDS": "0.2",
        "FTDASH_REFRESH_SECONDS": "1",
        "FTDASH_STALL_MINUTES": "0.05",  # 3 s
        "FTDASH_MAX_BACKOFF_SECONDS": "2",
        "FTDASH_API_RETRIES": "0",
        # One GET per job: `refreshes` counts them (list reads: test_worker_lists.py).
        "FTDASH_WORKER_LIST_READS": "false",
    }
    with (
        FakeTokenFactory() as api,
        Receiver() as receiver,
        ftdash_server(tmp / "data", api_url=api.url, workers=1, **settings_env) as server,
    ):
        api.add_token(SECRET)
        session = requests.Session()
        first_run(session, server, "admin", PASSWORD)
        token_pk = save_token(session, server, SECRET)
        for data in ({"kind": "webhook", "url": receiver.url}, {"kind": "email", "email": "ml-team@example.com"}):
            data["events"] = ["succeeded", "failed", "cancelled", "stalled"]
            add_channel(session, server, data)

        site = Site(api, server, session, receiver, tmp)
        site.token_pk = token_pk
        try:
            yield site
        finally:
            if site.worker is not None and site.worker.poll() is None:
                site.worker.kill()
                site.worker.wait(timeout=10)


@pytest.fixture(autouse=True)
def worker_running(site):
    site.ensure_worker()


def test_a_job_that_succeeds_with_no_page_open_is_recorded_and_notified(site):
    remote, pk = site.track(model="Qwen/Qwen3-4B", suffix="e2e-ok", **ALIVE)
    site.refreshes(remote["id"])  # seen running by the worker first
    site.api.advance(remote["id"], ALIVE["total_steps"])
    [body] = wait_for(lambda: site.posts_for(remote["id"]), what="the success webhook")
    assert body["event"] == "succeeded" and body["status"] == "succeeded"
    assert (body["model"], body["suffix"]) == ("Qwen/Qwen3-4B", "e2e-ok")
    assert body["url"] == f"{site.server.url}/jobs/{pk}/"
    assert body["finished_at"] and "error" not in body
    assert SECRET not in json.dumps(body)

    timeline = site.timeline(pk)
    assert "Tracking started; the job was running." in timeline
    assert "running → succeeded" in timeline and "badge-succeeded" in timeline
    [email] = wait_for(lambda: site.emails_for(remote["id"]), what="the success email")
    assert "ml-team@example.com" in email and "succeeded" in email and SECRET not in email


def test_without_smtp_email_goes_to_the_worker_log(site):
    remote, _ = site.track(suffix="e2e-mail", **ALIVE)
    site.refreshes(remote["id"], more=1)
    site.api.advance(remote["id"], ALIVE["total_steps"])
    [email] = wait_for(lambda: site.emails_for(remote["id"]), what="the email in the worker's log")
    assert "To: ml-team@example.com" in email and "From: ftdash <ftdash@localhost>" in email
    assert f"ftdash: {remote['id']} — succeeded" in email  # the body, readable as it is
    assert f"{site.server.url}/jobs/" in email
    assert not (site.server.data_dir / "sent-email").exists()  # not quietly written somewhere else


def test_a_job_that_fails_sends_its_error_code_and_message(site):
    remote, pk = site.track(fail_with=ERROR, fail_at_step=8, suffix="e2e-broken", **ALIVE)
    site.refreshes(remote["id"])
    site.api.advance(remote["id"], 8)
    [body] = wait_for(lambda: site.posts_for(remote["id"]), what="the failure webhook")
    assert body["event"] == "failed"
    assert body["error"]["code"] == ERROR["code"] and body["error"]["message"] == ERROR["message"]
    timeline = site.timeline(pk)
    assert "running → failed" in timeline and "invalid_training_file" in timeline
    [email] = wait_for(lambda: site.emails_for(remote["id"]), what="the failure email")
    assert ERROR["code"] in email and ERROR["message"] in email


def test_a_job_that_stops_moving_sends_one_stalled_notification(site):
    remote, pk = site.track(total_steps=100, trained_steps=5, suffix="e2e-stuck")
    [body] = wait_for(lambda: site.posts_for(remote["id"]), what="the stall webhook")
    assert body["event"] == "stalled" and body["status"] == "running"
    assert "stuck at step 5" in body["message"]
    site.refreshes(remote["id"])  # several more refreshes of the still stuck job
    wait_for(lambda: site.emails_for(remote["id"]), what="the stall email")
    assert len(site.posts_for(remote["id"])) == 1
    assert len(site.emails_for(remote["id"])) == 1
    page = site.get("/?status=stalled")
    assert remote["id"] in page and 'class="badge badge-stalled"' in page
    assert "No progress for" in site.timeline(pk)


def test_the_worker_keeps_going_through_an_api_outage_and_catches_up(site):
    remote, pk = site.track(suffix="e2e-outage", **ALIVE)
    site.refreshes(remote["id"], more=1)
    site.api.set_down(True)
    try:
        outage_calls = lambda: [c for c in site.api.calls_for(remote["id"]) if c.status == 503]  # noqa: E731
        wait_for(outage_calls, what="a refresh during the outage")
        site.api.advance(remote["id"], ALIVE["total_steps"])  # the job finishes upstream while the API is down
        wait_for(lambda: len(outage_calls()) >= 2, what="the worker to keep trying through the outage")
        assert site.worker.poll() is None, site.worker_log.read_text()
        assert "Token Factory is unavailable right now (HTTP 503)" in site.get(f"/jobs/{pk}/")
        assert site.posts_for(remote["id"]) == []
    finally:
        site.api.set_down(False)

    [body] = wait_for(lambda: site.posts_for(remote["id"]), what="the catch-up webhook")
    assert body["event"] == "succeeded" and body["suffix"] == "e2e-outage"
    page = site.get(f"/jobs/{pk}/")
    assert "unavailable" not in page and "failed refreshes in a row" not in page
    assert "running → succeeded" in site.timeline(pk)
    wait_for(lambda: site.emails_for(remote["id"]), what="the catch-up email")


def test_the_worker_stops_cleanly_and_nothing_was_sent_twice(site):
    done, _ = site.track(suffix="e2e-once", **ALIVE)
    watched, _ = site.track(suffix="e2e-still-running", **ALIVE)
    site.refreshes(done["id"], more=1)
    site.api.advance(done["id"], ALIVE["total_steps"])
    wait_for(lambda: site.posts_for(done["id"]) and site.emails_for(done["id"]), what="the notifications")
    site.refreshes(watched["id"])  # a few more rounds, in which nothing new may go out
    site.worker.send_signal(signal.SIGTERM)
    assert site.worker.wait(timeout=60) == 0
    log = site.worker_log.read_text()
    assert re.search(r"worker \S+ stopped", log) and "Traceback" not in log, log
    assert [body["event"] for body in site.posts_for(done["id"])] == ["succeeded"]
    assert len(site.emails_for(done["id"])) == 1
    assert site.posts_for(watched["id"]) == [] and site.emails_for(watched["id"]) == []
    # Over everything this module's workers did: never twice the same event for a job.
    sent = [(body["job_id"], body["event"]) for body in site.receiver.json()]
    assert len(sent) == len(set(sent)), sent
    assert "No background worker seen" in site.get("/")
