"""A watched token with two real worker processes side by side: a job that starts while they
run is tracked once, with one "started" event and one notification, whichever worker sees it."""

from __future__ import annotations

import signal
import textwrap
import time

from tests.support.fake_tokenfactory import FakeTokenFactory
from tests.support.server_process import ftdash_server, start_worker
from tests.support.waiting import wait_for
from tests.support.web_forms import ADMIN_PASSWORD

SECRET = "sk-watch-0123456789-SECRET-wt77"

SETUP = """
from django.contrib.auth import get_user_model
from jobs import services
from jobs.access import user_memberships
from jobs.models import NotificationChannel
user = get_user_model().objects.create_superuser("admin", password=%(password)r)
workspace = user_memberships(user)[0].workspace
token = services.token_create(workspace=workspace, user=user, name="main", secret=%(secret)r,
                              watch=True, watch_pattern="nightly-*")
NotificationChannel.objects.create(workspace=workspace, kind="email", target="team@example.com",
                                   events=["started"])
"""


def test_two_workers_track_and_notify_a_new_job_once(tmp_path):
    with (
        FakeTokenFactory() as api,
        ftdash_server(
            tmp_path / "data",
            api_url=api.url,
            workers=1,
            FTDASH_WORKER_INTERVAL_SECONDS="0.1",
            FTDASH_DISCOVERY_SECONDS="1",
            FTDASH_API_RETRIES="0",
        ) as server,
    ):
        api.add_token(SECRET)
        api.add_job(created_at=int(time.time()) - 3600, suffix="nightly-old")  # before the watch
        server.manage("shell", "-c", textwrap.dedent(SETUP % {"password": ADMIN_PASSWORD, "secret": SECRET}))
        logs = [tmp_path / "a.log", tmp_path / "b.log"]
        workers = [start_worker(server, log) for log in logs]
        try:
            wait_for(
                lambda: len([c for c in api.calls if c.path == "/v1/fine_tuning/jobs"]) >= 2,
                what="the watch to list the jobs",
            )
            new = api.add_job(suffix="nightly-42")
            api.add_job(suffix="experiment-1")  # the pattern leaves it out
            wait_for(lambda: server.sql("SELECT job_id FROM jobs_trackedjob"), what="the new job to be tracked")
            looks = len([c for c in api.calls if c.path == "/v1/fine_tuning/jobs"])
            # A few more looks by either worker: nothing is tracked or notified twice.
            wait_for(
                lambda: len([c for c in api.calls if c.path == "/v1/fine_tuning/jobs"]) >= looks + 3,
                timeout=60,
                what="more looks at the list",
            )
            wait_for(
                lambda: server.sql("SELECT state FROM jobs_delivery") == [("sent",)], what="the notification to be sent"
            )
        finally:
            for worker in workers:
                worker.send_signal(signal.SIGTERM)
                worker.wait(timeout=60)
        assert server.sql("SELECT job_id FROM jobs_trackedjob") == [(new["id"],)]
        assert server.sql("SELECT kind FROM jobs_jobevent") == [("started",)]
        assert server.sql("SELECT count(*) FROM jobs_delivery") == [(1,)]
        texts = [log.read_text() for log in logs]
        assert sum(text.count(f"{new['id']} — started") for text in texts) == 1, texts
        assert all("Traceback" not in text for text in texts), texts
