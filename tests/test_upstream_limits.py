"""Limits every upstream call keeps, however the API misbehaves (issue 17, items 1 and 2).

A call ends by FTDASH_API_TOTAL_TIMEOUT, all its attempts included, whether the server dribbles
its headers or its body; an answer over FTDASH_API_MAX_ANSWER_BYTES is refused as soon as it is
passed (or before its body, when its Content-Length says so), counted decoded, and its
connection closed. All of it over real HTTP against the fake Token Factory, scripted to dribble
or to send a huge answer made as it is sent. The memory bound, in a fresh process of its own, and
the limits read at start-up are in tests/processes/test_upstream_limits.py.
"""

from __future__ import annotations

import datetime as dt
import time

import pytest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from jobs.models import TrackedJob
from jobs.sync import refresh
from jobs.tokenfactory import AnswerTooLarge, ApiUnavailable, ClientConfig, TokenFactoryClient, UnreadableAnswer
from tests.support.accounts import ALICE_SECRET, track_remote_job

#: How far past its deadline a call may end on a loaded machine (the P11 target's margin).
SLACK_SECONDS = 1.0
CAP = 64 * 1024
TOO_LARGE = "Token Factory's answer was larger than 0.0625 MB."


def client_for(
    fake_api, *, total_timeout: float = 1.0, retries: int = 2, backoff: float = 0.01, max_answer_bytes: int = CAP
) -> TokenFactoryClient:
    """A client whose per-read timeout (5 s) is far longer than the gaps of a dribble, so only
    the total timeout can end a dribbled call."""
    return TokenFactoryClient(
        ALICE_SECRET,
        ClientConfig(
            base_url=fake_api.url,
            connect_timeout=5.0,
            read_timeout=5.0,
            total_timeout=total_timeout,
            max_answer_bytes=max_answer_bytes,
            retries=retries,
            retry_after_cap=300,
            backoff_seconds=backoff,
        ),
    )


def timed(call):
    started = time.monotonic()
    try:
        call()
    except Exception as exc:
        return exc, time.monotonic() - started
    return None, time.monotonic() - started


# ---------------------------------------------------------------------------- the deadline


@pytest.mark.parametrize("kind", ["dribble_headers", "dribble_body"])
def test_a_dribbled_answer_ends_the_call_at_its_total_timeout(fake_api, kind):
    job = fake_api.add_job()
    # A byte every 0.2 s: no read waits long, but the answer (about 1 KB) would take minutes.
    # After 10 s the fake sends the rest at once, so a client without a deadline fails here.
    fake_api.fail_next(kind, delay=0.2, dribble_for=10)

    error, took = timed(lambda: client_for(fake_api).get_job(job["id"]))

    assert isinstance(error, ApiUnavailable), error
    assert error.message == "Token Factory answered too slowly (over 1 s)."
    assert took < 1.0 + SLACK_SECONDS
    assert len(fake_api.calls) == 1  # not retried: the deadline is for the call, not each try


def test_the_deadline_holds_through_an_http_proxy(fake_api, monkeypatch):
    job = fake_api.add_job()
    # The fake answers a proxy's absolute-form requests as it answers direct ones.
    for name in ("NO_PROXY", "no_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", fake_api.url)
    client = TokenFactoryClient(
        ALICE_SECRET,
        ClientConfig(
            base_url="http://api.tokenfactory.test",
            connect_timeout=5.0,
            read_timeout=5.0,
            total_timeout=1.0,
            max_answer_bytes=CAP,
            retries=0,
            retry_after_cap=300,
            backoff_seconds=0.01,
        ),
    )
    assert client.get_job(job["id"]).id == job["id"]  # through the proxy
    fake_api.fail_next("dribble_headers", delay=0.2, dribble_for=10)

    error, took = timed(lambda: client.get_job(job["id"]))

    assert isinstance(error, ApiUnavailable) and "too slowly" in error.message
    assert took < 1.0 + SLACK_SECONDS


def test_the_deadline_counts_every_attempt_and_no_retry_starts_after_it(fake_api):
    job = fake_api.add_job()
    fake_api.set_latency(0.5)
    fake_api.fail_next("503", count=3)
    client = client_for(fake_api, total_timeout=2.0, retries=2, backoff=2.0)

    # A first 503 after 0.5 s, then a backoff of 2 s: the retry could not start before the
    # 2 s deadline, so it is not made, and the call ends at once with what the API said.
    error, took = timed(lambda: client.get_job(job["id"]))

    assert isinstance(error, ApiUnavailable) and "HTTP 503" in error.message
    assert len(fake_api.calls) == 1
    assert took < 2.0


def test_a_prompt_answer_is_unaffected_and_keeps_its_connection(fake_api):
    job = fake_api.add_job(total_steps=100, trained_steps=40)
    client = client_for(fake_api)

    assert client.get_job(job["id"]).raw["trained_steps"] == 40
    assert client.get_job(job["id"]).raw["trained_steps"] == 40
    assert fake_api.connections_accepted == 1


# ---------------------------------------------------------------------------- the size cap


@pytest.mark.parametrize("kind", ["huge", "huge_chunked", "huge_gzip"])
def test_an_answer_over_the_cap_is_refused_and_its_connection_closed(fake_api, kind):
    job = fake_api.add_job()
    client = client_for(fake_api)
    client.get_job(job["id"])  # a pooled connection, which the refused answer will come over
    fake_api.fail_next(kind, size=16 * CAP)

    with pytest.raises(AnswerTooLarge) as refused:
        client.get_job(job["id"])

    assert refused.value.message == TOO_LARGE
    assert isinstance(refused.value, UnreadableAnswer) and not refused.value.permanent
    assert len(fake_api.calls) == 2  # refused, not retried
    # The half-read connection was closed, not pooled: the next call opens a new one, and works.
    assert client.get_job(job["id"]).id == job["id"]
    assert fake_api.connections_accepted == 2


def test_a_gzip_bomb_is_measured_by_what_it_decodes_to(fake_api):
    job = fake_api.add_job()
    # 64 MiB of JSON squeezed into about 64 KB: under the cap on the wire, far over it decoded.
    fake_api.fail_next("huge_gzip", size=1024 * CAP)

    with pytest.raises(AnswerTooLarge):
        client_for(fake_api, max_answer_bytes=4 * CAP).get_job(job["id"])


def test_an_answer_just_under_the_cap_is_read(fake_api):
    job = fake_api.add_job()
    fake_api.fail_next("huge_chunked", size=CAP)

    assert client_for(fake_api).get_job(job["id"]).id == "ftjob-huge"


@pytest.mark.parametrize(
    "endpoint",
    [
        lambda client, job_id: client.list_jobs(),
        lambda client, job_id: client.check_key(),
        lambda client, job_id: client.list_events(job_id),
        lambda client, job_id: client.list_checkpoints(job_id),
        lambda client, job_id: client.get_file("file-1"),
        lambda client, job_id: client.list_models(),
        lambda client, job_id: client.cancel_job(job_id),
    ],
    ids=["list_jobs", "check_key", "events", "checkpoints", "file", "models", "cancel"],
)
def test_every_endpoint_refuses_an_answer_over_the_cap(fake_api, endpoint):
    job = fake_api.add_job()
    fake_api.fail_next("huge_chunked", size=16 * CAP)

    with pytest.raises(AnswerTooLarge) as refused:
        endpoint(client_for(fake_api), job["id"])

    assert refused.value.message == TOO_LARGE


# ---------------------------------------------------------------------------- through a refresh


@pytest.fixture
def tracked(fake_api, alice, alice_token, settings):
    settings.FTDASH_API_RETRIES = 0
    settings.FTDASH_API_READ_TIMEOUT = 5.0
    job = track_remote_job(fake_api, alice, alice_token, total_steps=100, trained_steps=30)
    TrackedJob.objects.filter(pk=job.pk).update(checked_at=timezone.now() - dt.timedelta(seconds=60))
    fake_api.reset_calls()
    return job


def refresh_and_show(alice_client, job: TrackedJob) -> tuple[TrackedJob, str]:
    """A page's poll refreshes the due job; then the job's page, as its viewer sees it."""
    refresh.refresh_if_due(TrackedJob.objects.get(pk=job.pk))
    page = alice_client.get(reverse("job_detail", args=[job.pk]))
    assert page.status_code == 200
    return TrackedJob.objects.get(pk=job.pk), page.content.decode()


def assert_kept_and_backing_off(fake_api, stored: TrackedJob, job: TrackedJob) -> None:
    assert stored.snapshot == job.snapshot and stored.fetched_at == job.fetched_at
    assert stored.consecutive_failures == 1
    calls = len(fake_api.calls)
    refresh.refresh_if_due(stored)  # within the backed-off interval: not asked again
    assert len(fake_api.calls) == calls


def test_a_refresh_that_runs_out_of_time_keeps_the_snapshot_says_so_and_backs_off(
    fake_api, tracked, alice_client, settings
):
    settings.FTDASH_API_TOTAL_TIMEOUT = 1.0
    fake_api.fail_next("dribble_body", job_id=tracked.job_id, delay=0.2, dribble_for=10)

    started = time.monotonic()
    stored, page = refresh_and_show(alice_client, tracked)

    assert time.monotonic() - started < 1.0 + SLACK_SECONDS + 2  # the page itself, on a loaded machine
    assert stored.refresh_error == "Token Factory answered too slowly (over 1 s)."
    assert escape(stored.refresh_error) in page
    assert_kept_and_backing_off(fake_api, stored, tracked)


def test_a_refresh_given_a_huge_answer_stores_nothing_of_it_and_says_so(fake_api, tracked, alice_client, settings):
    settings.FTDASH_API_MAX_ANSWER_BYTES = CAP
    fake_api.fail_next("huge_gzip", job_id=tracked.job_id, size=1024 * CAP)

    stored, page = refresh_and_show(alice_client, tracked)

    assert stored.refresh_error == TOO_LARGE
    assert escape(TOO_LARGE) in page and "ftjob-huge" not in page
    assert_kept_and_backing_off(fake_api, stored, tracked)


def test_the_refresh_lock_lasts_as_long_as_a_call_can(settings):
    settings.FTDASH_API_TOTAL_TIMEOUT = 42.5

    assert refresh.lock_seconds() == 43 + 5
