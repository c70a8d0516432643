"""Quiet jobs are free to watch (issue 17, item 9).

A check that finds the same answer as last time changes no live version, so a tab of
unchanging running jobs gets 204s; every answer still says how fresh the page is
(`X-Ftdash-Checked-At`), and each card says when its job last changed. A change, or a refresh
that fails, still comes back at once. Over real HTTP against the fake Token Factory, with the
polls' own refreshes and the worker's real rounds (`poll_jobs --once`).
"""

from __future__ import annotations

import datetime as dt
import io
import re

import pytest
from django.core.cache import caches
from django.core.management import call_command
from django.utils import timezone

from jobs.models import TrackedJob
from tests.support.accounts import track_remote_job

pytestmark = pytest.mark.django_db
POLL = {"HTTP_HX_REQUEST": "true"}
CHECKED = "X-Ftdash-Checked-At"


@pytest.fixture(autouse=True)
def quick_settings(settings):
    settings.FTDASH_API_RETRIES = 0
    settings.FTDASH_REFRESH_SECONDS = 5


@pytest.fixture(autouse=True)
def empty_render_cache():
    caches["rendered"].clear()
    yield
    caches["rendered"].clear()


def tab_versions(client) -> dict[str, str]:
    """What an open dashboard tab holds: {job pk: version} of its cards, as live.js sends them."""
    page = client.get("/").content.decode()
    return dict(re.findall(r'data-live-key="(\d+)" data-live-version="([0-9a-f]+)"', page))


def settled_tab(client, *jobs: TrackedJob) -> dict[str, str]:
    """A tab opened once the jobs had their first check, which also reads their training log
    (new events, a change), so that what follows is the steady state."""
    make_due(*jobs)
    return tab_versions(client)  # the page load checks the due jobs


def poll(client, versions: dict[str, str]):
    return client.get("/live/cards/?" + "&".join(f"v={pk}.{v}" for pk, v in versions.items()), **POLL)


def make_due(*jobs: TrackedJob) -> None:
    TrackedJob.objects.filter(pk__in=[job.pk for job in jobs]).update(
        checked_at=timezone.now() - dt.timedelta(hours=1)  # due, whatever its backoff
    )


def checked_at(response) -> dt.datetime:
    return dt.datetime.fromisoformat(response[CHECKED].replace("Z", "+00:00"))


def whole_seconds(at: dt.datetime) -> dt.datetime:
    return at.replace(microsecond=0)


def test_a_check_that_finds_nothing_new_answers_204_and_says_how_fresh_it_is(
    alice_client, fake_api, alice, alice_token
):
    jobs = [track_remote_job(fake_api, alice, alice_token, total_steps=1000, trained_steps=10) for _ in range(3)]
    versions = settled_tab(alice_client, *jobs)
    make_due(*jobs)
    fake_api.reset_calls()
    before = whole_seconds(timezone.now())

    response = poll(alice_client, versions)

    assert len(fake_api.job_calls) >= 3  # the poll did check every job with the API...
    assert response.status_code == 204 and response.content == b""  # ...and found nothing to send
    assert checked_at(response) >= before
    assert tab_versions(alice_client) == versions


@pytest.mark.django_db(transaction=True)  # the worker's refresh threads use their own connections
def test_the_workers_list_reads_of_quiet_jobs_change_no_card(alice_client, fake_api, alice, alice_token):
    jobs = [track_remote_job(fake_api, alice, alice_token, total_steps=1000, trained_steps=10) for _ in range(3)]
    versions = settled_tab(alice_client, *jobs)
    make_due(*jobs)
    fake_api.reset_calls()
    before = whole_seconds(timezone.now())

    call_command(
        "poll_jobs", "--once", "--concurrency", "1", "--list-reads", stdout=io.StringIO(), stderr=io.StringIO()
    )
    assert [call.path for call in fake_api.job_calls] == ["/v1/fine_tuning/jobs"]  # one list read for all
    fake_api.reset_calls()
    response = poll(alice_client, versions)

    assert response.status_code == 204
    assert checked_at(response) >= before
    assert fake_api.job_calls == []  # the worker's check counts: nothing was due for the poll


def test_a_job_in_progress_comes_back_with_its_new_card(alice_client, fake_api, alice, alice_token):
    still = track_remote_job(fake_api, alice, alice_token, total_steps=1000, trained_steps=10)
    moving = track_remote_job(fake_api, alice, alice_token, total_steps=1000, trained_steps=10)
    versions = settled_tab(alice_client, still, moving)
    fake_api.advance(moving.job_id, 10)
    make_due(still, moving)
    before = whole_seconds(timezone.now())

    response = poll(alice_client, versions)

    assert response.status_code == 200
    html = response.content.decode()
    assert f'id="job-{moving.pk}"' in html and "step 20 of 1000" in html
    assert f'id="job-{still.pk}"' not in html
    assert checked_at(response) >= before


def test_a_refresh_error_changes_the_card_at_once(alice_client, fake_api, alice, alice_token):
    job = track_remote_job(fake_api, alice, alice_token, total_steps=1000, trained_steps=10)
    versions = settled_tab(alice_client, job)
    fake_api.fail_next("503", job_id=job.job_id)
    make_due(job)

    failed = poll(alice_client, versions)

    assert failed.status_code == 200
    assert "Showing the snapshot from" in failed.content.decode()
    assert CHECKED not in failed  # its only job's check did not work: the card says so itself

    versions = tab_versions(alice_client)
    make_due(job)
    recovered = poll(alice_client, versions)  # the same answer as before the failure

    assert recovered.status_code == 200 and "Showing the snapshot from" not in recovered.content.decode()
    versions = tab_versions(alice_client)
    make_due(job)
    assert poll(alice_client, versions).status_code == 204


def test_a_stuck_job_says_how_long_it_has_not_changed(alice_client, fake_api, alice, alice_token):
    job = track_remote_job(fake_api, alice, alice_token, total_steps=1000, trained_steps=10)
    last_change = timezone.now() - dt.timedelta(minutes=40)
    settled_tab(alice_client, job)
    TrackedJob.objects.filter(pk=job.pk).update(changed_at=last_change)  # as if tracked 40 min ago
    versions = tab_versions(alice_client)
    make_due(job)

    assert poll(alice_client, versions).status_code == 204  # checked again: still the same

    card = alice_client.get("/").content.decode()
    since = re.search(r'<time class="changed" datetime="([^"]+)" data-relative="unchanged">no change since ', card)
    assert since and abs(dt.datetime.fromisoformat(since.group(1)) - last_change) < dt.timedelta(seconds=1)
    page = alice_client.get(f"/jobs/{job.pk}/").content.decode()
    assert re.search(r'<dt>Last change</dt><dd><time [^>]*data-relative="ago">40 min ago</time>', page)
