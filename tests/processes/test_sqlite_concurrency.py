"""SQLite under concurrent writes: nobody ever sees "database is locked", and the worker keeps going.

ftdash's SQLite connections wait for the write lock (a busy timeout), let readers run beside a
writer (WAL) and take the write lock when a transaction begins (IMMEDIATE), so that no
transaction fails half-way. The first test checks each of those on a connection of a fresh data
dir, as the server and the worker open them. The second puts them under real load: gunicorn
with several workers as `make serve` runs it, `manage.py poll_jobs` storing a new snapshot of
every job each second, and 20 people tracking and labelling jobs at once for 20 s.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter

import pytest
import requests
from django.db import connection

from tests.support.fake_tokenfactory import FakeTokenFactory
from tests.support.server_process import ftdash_server, start_worker, stop_process
from tests.support.waiting import wait_for
from tests.support.web_forms import ADMIN_PASSWORD, create_admin, save_token, signed_in_session

pytestmark = pytest.mark.skipif(connection.vendor != "sqlite", reason="the SQLite leg")

SECRET = "sk-sqlite-load-0123456789-SECRET-sq17"
WRITERS = 20
LOAD_SECONDS = 20
ALIVE = {"steps_per_call": 1, "total_steps": 1_000_000}  # a new snapshot to store on every refresh

SHOW_CONNECTION = """
import json, sqlite3
from django.db import connection, transaction
with connection.cursor() as cursor:
    shown = {name: cursor.execute(f"PRAGMA {name}").fetchone()[0]
             for name in ("journal_mode", "synchronous", "busy_timeout")}
with transaction.atomic():
    # Nothing written yet: an IMMEDIATE transaction already holds the write lock.
    other = sqlite3.connect(connection.settings_dict["NAME"], timeout=0)
    try:
        other.execute("BEGIN IMMEDIATE")
        shown["write_lock_at_begin"] = False
    except sqlite3.OperationalError:
        shown["write_lock_at_begin"] = True
    finally:
        other.close()
print(json.dumps(shown))
"""


def test_every_connection_waits_for_the_lock_in_wal_mode_and_locks_at_begin(tmp_path):
    with FakeTokenFactory() as api, ftdash_server(tmp_path / "data", api_url=api.url, DATABASE_URL="") as server:
        shown = json.loads(server.manage("shell", "-v", "0", "-c", SHOW_CONNECTION).stdout.strip().splitlines()[-1])
    # journal_mode is the file's; synchronous and busy_timeout are per connection.
    assert shown == {"journal_mode": "wal", "synchronous": 1, "busy_timeout": 20_000, "write_lock_at_begin": True}


class Writer(threading.Thread):
    """One person, signed in, tracking a job with a label and then relabelling it, again and again."""

    def __init__(self, number: int, server, api, token_pk: str) -> None:
        super().__init__(name=f"writer-{number}", daemon=True)
        self.number, self.server, self.api, self.token_pk = number, server, api, token_pk
        self.session = signed_in_session(server, "admin", ADMIN_PASSWORD)
        self.until = 0.0  # set when the load starts
        self.statuses: Counter = Counter()
        self.failures: list[str] = []
        self.labels: dict[int, str] = {}  # job pk -> the label it must end with

    def run(self) -> None:
        round_number = 0
        while time.monotonic() < self.until:
            round_number += 1
            try:
                self._track_and_relabel(self.session, round_number)
            except Exception as exc:  # a writer that stops early must not pass for one with no errors
                self.failures.append(f"{type(exc).__name__}: {exc}")

    def _track_and_relabel(self, session: requests.Session, round_number: int) -> None:
        remote = self.api.add_job(suffix=f"w{self.number}-{round_number}", **ALIVE)
        tracked = self._post(
            "/jobs/track/",
            {"job_id": remote["id"], "token": self.token_pk, "label": f"writer {self.number} round {round_number}"},
            session,
        )
        if f"Now tracking {remote['id']}" not in tracked.text:
            self.failures.append(f"tracking {remote['id']} answered without saying so")
            return
        [(pk,)] = self.server.sql("SELECT id FROM jobs_trackedjob WHERE job_id = ?", (remote["id"],))
        label = f"writer {self.number} relabelled {round_number}"
        relabelled = self._post(f"/jobs/{pk}/label/", {"label": label}, session)
        if "Label saved." in relabelled.text:
            self.labels[pk] = label
        else:
            self.failures.append(f"relabelling job {pk} answered without saying so")

    def _post(self, path: str, data: dict, session: requests.Session) -> requests.Response:
        # Longer than the busy timeout: a request that waited for the lock is not a failure.
        response = session.post(
            self.server.url + path,
            data={**data, "csrfmiddlewaretoken": session.cookies["ftdash_csrftoken"]},
            headers={"Referer": self.server.url + path},
            timeout=60,
        )
        for answer in [*response.history, response]:
            self.statuses[answer.status_code] += 1
        if response.status_code != 200:
            self.failures.append(f"POST {path} answered {response.status_code}")
        return response


def test_twenty_writers_and_the_worker_for_twenty_seconds_see_no_error(tmp_path):
    settings_env = {
        "DATABASE_URL": "",  # this is about the SQLite file
        "FTDASH_WORKER_INTERVAL_SECONDS": "0.2",
        "FTDASH_REFRESH_SECONDS": "1",
    }
    with (
        FakeTokenFactory() as api,
        ftdash_server(tmp_path / "data", api_url=api.url, workers=4, **settings_env) as server,
    ):
        api.add_token(SECRET)
        create_admin(server)
        token_pk = save_token(signed_in_session(server, "admin", ADMIN_PASSWORD), server, SECRET)
        worker_log = tmp_path / "worker.log"
        worker = start_worker(server, worker_log)
        try:
            wait_for(
                lambda: server.sql("SELECT count(*) FROM jobs_workerheartbeat")[0][0],
                timeout=60,
                what="the worker's first round",
            )
            writers = [Writer(n, server, api, token_pk) for n in range(WRITERS)]
            until = time.monotonic() + LOAD_SECONDS
            for writer in writers:
                writer.until = until
                writer.start()
            for writer in writers:
                writer.join(timeout=LOAD_SECONDS + 120)
            worker_alive = worker.poll() is None
        finally:
            stop_process(worker)
        stored = dict(server.sql("SELECT id, label FROM jobs_trackedjob"))
        server_log = server.log
    log = worker_log.read_text()

    failures = [failure for writer in writers for failure in writer.failures]
    statuses = sum((writer.statuses for writer in writers), Counter())
    assert not failures, failures[:10]
    assert set(statuses) <= {200, 302}, statuses
    assert "database is locked" not in server_log + log
    assert "Traceback" not in server_log + log, (server_log + log)[-3000:]
    assert worker_alive, log[-3000:]
    # The load was real: every writer got work done, and the worker stored snapshot after
    # snapshot of the jobs they tracked (its round lines: "round: N jobs stored from …").
    labels = {pk: label for writer in writers for pk, label in writer.labels.items()}
    assert all(writer.labels for writer in writers), [len(writer.labels) for writer in writers]
    stored_by_worker = sum(int(n) for n in re.findall(r"round: (\d+) jobs stored from", log))
    assert stored_by_worker >= len(labels), (stored_by_worker, len(labels))
    # Every saved label is the one the page said it saved.
    assert {pk: stored[pk] for pk in labels} == labels
