"""End to end, real processes: a server, a background worker and nobody looking.

Set up through the web UI (first admin, token, a webhook and an email channel), jobs then
finish, fail, stall or live through an API outage upstream while no page is open: the worker
records their timeline and sends exactly one notification per event and channel.
"""

from __future__ import annotations

import json
import re
import signal
import time

import pytest
import requests

from tests.fake_tokenfactory import FakeTokenFactory
from tests.server_process import ftdash_server, post_form, start_worker, wait_for
from tests.test_notifications import Receiver

SECRET = "sk-e2e-worker-0123456789-SECRET-e2e9"
PASSWORD = "a-long-Passphrase-for-e2e"
ERROR = {"code": "invalid_training_file", "message": "Line 17 has no messages list", "param": "training_file"}


class Site:
    def __init__(self, api, server, session, receiver, worker, worker_log):
        self.api, self.server, self.session = api, server, session
        self.receiver, self.worker, self.worker_log = receiver, worker, worker_log
        self.token_pk = None

    def get(self, path: str) -> str:
        response = self.session.get(self.server.url + path, timeout=10)
        assert response.status_code == 200, (path, response.status_code)
        return response.text

    def track(self, **fields) -> tuple[dict, int]:
        """Add a job upstream and track it through the dashboard's form; (remote job, pk)."""
        remote = self.api.add_job(**fields)
        response = post_form(self.session, self.server, "/jobs/track/",
                             {"job_id": remote["id"], "token": self.token_pk})
        assert response.status_code == 200 and f"Now tracking {remote['id']}" in response.text
        pk = int(re.search(rf'<a class="job-id" href="/jobs/(\d+)/">{remote["id"]}</a>', response.text).group(1))
        return remote, pk

    def posts_for(self, job_id: str) -> list[dict]:
        return [body for body in self.receiver.json() if body.get("job_id") == job_id]

    def emails(self) -> list[str]:
        """Every message the worker wrote (two sent in the same second may share a file)."""
        folder = self.server.data_dir / "sent-email"
        if not folder.exists():
            return []
        messages = []
        for path in sorted(folder.iterdir()):
            messages += [m for m in path.read_text(errors="replace").split("-" * 79 + "\n") if m.strip()]
        return messages

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
        "FTDASH_EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
        "FTDASH_WORKER_INTERVAL_SECONDS": "0.2",
        "FTDASH_REFRESH_SECONDS": "1",
        "FTDASH_STALL_MINUTES": "0.05",  # 3 s
        "FTDASH_MAX_BACKOFF_SECONDS": "2",
        "FTDASH_API_RETRIES": "0",
    }
    with FakeTokenFactory() as api, Receiver() as receiver, \
            ftdash_server(tmp / "data", api_url=api.url, workers=1, **settings_env) as server:
        api.add_token(SECRET)
        session = requests.Session()
        session.get(server.url + "/setup/")
        response = post_form(session, server, "/setup/",
                             {"username": "admin", "password1": PASSWORD, "password2": PASSWORD})
        assert response.status_code == 200 and "/tokens/" in response.url
        response = post_form(session, server, "/tokens/", {"name": "main", "secret": SECRET})
        token_pk = int(re.search(r"/tokens/(\d+)/test/", response.text).group(1))
        page = session.get(server.url + "/notifications/").text
        workspace_pk = re.search(r"/notifications/workspaces/(\d+)/channels/", page).group(1)
        for data in ({"kind": "webhook", "url": receiver.url},
                     {"kind": "email", "email": "ml-team@example.com"}):
            data["events"] = ["succeeded", "failed", "cancelled", "stalled"]
            response = post_form(session, server, f"/notifications/workspaces/{workspace_pk}/channels/", data)
            assert response.status_code == 200 and "Added" in response.text, response.text[-2000:]

        worker_log = tmp / "worker.log"
        # FTDASH_SITE_URL: so notifications link to the job page.
        worker = start_worker(server, worker_log, FTDASH_SITE_URL=server.url)
        site = Site(api, server, session, receiver, worker, worker_log)
        site.token_pk = token_pk
        try:
            wait_for(lambda: "Background worker active" in site.get("/"), what="the worker's heartbeat")
            # The three scenarios run side by side upstream; each test checks one.
            site.jobs = {
                "success": site.track(steps_per_second=4, total_steps=12, model="Qwen/Qwen3-4B", suffix="e2e-ok"),
                "failure": site.track(steps_per_second=4, total_steps=100, fail_with=ERROR, fail_at_step=8,
                                      suffix="e2e-broken"),
                "stall": site.track(total_steps=100, trained_steps=5, suffix="e2e-stuck"),
            }
            yield site
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait(timeout=10)


def test_a_job_that_succeeds_with_no_page_open_is_recorded_and_notified(site):
    remote, pk = site.jobs["success"]
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


def test_a_job_that_fails_sends_its_error_code_and_message(site):
    remote, pk = site.jobs["failure"]
    [body] = wait_for(lambda: site.posts_for(remote["id"]), what="the failure webhook")
    assert body["event"] == "failed"
    assert body["error"]["code"] == ERROR["code"] and body["error"]["message"] == ERROR["message"]
    timeline = site.timeline(pk)
    assert "running → failed" in timeline and "invalid_training_file" in timeline
    [email] = wait_for(lambda: site.emails_for(remote["id"]), what="the failure email")
    assert ERROR["code"] in email and ERROR["message"] in email


def test_a_job_that_stops_moving_sends_one_stalled_notification(site):
    remote, pk = site.jobs["stall"]
    [body] = wait_for(lambda: site.posts_for(remote["id"]), what="the stall webhook")
    assert body["event"] == "stalled" and body["status"] == "running"
    assert "stuck at step 5" in body["message"]
    time.sleep(2)  # several more refreshes of the still stuck job
    assert len(site.posts_for(remote["id"])) == 1
    assert len(site.emails_for(remote["id"])) == 1
    page = site.get("/?status=stalled")
    assert remote["id"] in page and 'class="badge badge-stalled"' in page
    assert "No progress for" in site.timeline(pk)


def test_the_worker_keeps_going_through_an_api_outage_and_catches_up(site):
    remote, pk = site.track(steps_per_second=4, total_steps=12, suffix="e2e-outage")  # done in 3 s
    site.api.set_down(True)
    try:
        wait_for(lambda: any(c.status == 503 for c in site.api.calls_for(remote["id"])),
                 what="a refresh during the outage")
        time.sleep(3.5)  # the job finishes upstream while the API is down
        assert site.worker.poll() is None, site.worker_log.read_text()
        assert "Token Factory is unavailable right now (HTTP 503)" in site.get(f"/jobs/{pk}/")
        assert site.posts_for(remote["id"]) == []
    finally:
        site.api.set_down(False)

    [body] = wait_for(lambda: site.posts_for(remote["id"]), timeout=10, what="the catch-up webhook")
    assert body["event"] == "succeeded" and body["suffix"] == "e2e-outage"
    page = site.get(f"/jobs/{pk}/")
    assert "unavailable" not in page and "failed refreshes in a row" not in page
    assert "running → succeeded" in site.timeline(pk)
    wait_for(lambda: site.emails_for(remote["id"]), what="the catch-up email")


def test_the_worker_stops_cleanly_and_nothing_was_sent_twice(site):
    time.sleep(1)  # a few more rounds, in which nothing new may go out
    site.worker.send_signal(signal.SIGTERM)
    assert site.worker.wait(timeout=15) == 0
    log = site.worker_log.read_text()
    assert re.search(r"worker \S+ stopped", log) and "Traceback" not in log, log
    sent = [(body["job_id"], body["event"]) for body in site.receiver.json()]
    assert len(sent) == len(set(sent)) == 4, sent
    assert len(site.emails()) == 4
    assert "No background worker seen" in site.get("/")
