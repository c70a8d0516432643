"""The upstream HTTP client: what it sends, and what every way a call can fail turns into.

The first half mocks `requests` with `responses` (precise, no sockets); the second half talks
real HTTP to the fake Token Factory, so timeouts, resets and content types are honest.
"""

from __future__ import annotations

import email.utils
import logging
import time
import traceback

import pytest
import requests
import responses

from jobs.finetuning import FineTuningJob
from jobs.tokenfactory import (
    DEFAULT_RETRY_AFTER_SECONDS,
    ApiUnavailable,
    ClientConfig,
    InvalidJobId,
    JobForbidden,
    JobNotFound,
    RateLimited,
    RequestRejected,
    TokenFactoryClient,
    TokenFactoryError,
    TokenRejected,
    TokenUnusable,
    UnreadableAnswer,
    clean_job_id,
)
from tests.support.accounts import ALICE_SECRET
from tests.support.payloads import observed_job
from tests.support.waiting import wait_for

BASE = "https://api.tokenfactory.test"
KEY = "sk-unit-test-0123456789-SECRET-key"
JOB_ID = "ftjob-c7cc1f8df48144aeb180a5bf5818dc81"
JOB_URL = f"{BASE}/v1/fine_tuning/jobs/{JOB_ID}"
LIST_URL = f"{BASE}/v1/fine_tuning/jobs"

REAL_JOB = observed_job()


def make_config(**overrides) -> ClientConfig:
    values = {
        "base_url": BASE,
        "connect_timeout": 1.0,
        "read_timeout": 1.0,
        "total_timeout": 30.0,
        "max_answer_bytes": 8 * 2**20,
        "retries": 2,
        "retry_after_cap": 300,
        "backoff_seconds": 0.01,
    }
    values.update(overrides)
    return ClientConfig(**values)


def make_client(key: str = KEY, **overrides) -> TokenFactoryClient:
    return TokenFactoryClient(key, make_config(**overrides))


def assert_plain_and_keyless(exc: BaseException, key: str = KEY) -> None:
    """What a person sees: a short sentence, no key, no HTML, no library internals."""
    assert isinstance(exc, TokenFactoryError)
    message = exc.message
    assert message and message == str(exc)
    for text in (message, str(exc), repr(exc), "".join(traceback.format_exception(exc))):
        assert key not in text
    for noise in ("<html", "Traceback", "HTTPConnectionPool", "HTTPSConnectionPool", "Max retries", "urllib3"):
        assert noise not in message
    assert len(message) < 400


@pytest.fixture
def mocked():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


# ---------------------------------------------------------------------------- the request


def test_it_sends_the_key_as_a_bearer_token_to_the_job_url(mocked):
    route = mocked.get(JOB_URL, json=REAL_JOB)

    job = make_client().get_job(JOB_ID)

    assert isinstance(job, FineTuningJob) and job.id == JOB_ID
    assert route.call_count == 1
    request = mocked.calls[0].request
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    assert request.url == JOB_URL
    assert request.headers["Accept"] == "application/json"


def test_it_puts_the_id_into_a_single_quoted_path_segment(mocked):
    job_id = "ftjob-Ab_9-x"
    mocked.get(f"{BASE}/v1/fine_tuning/jobs/{job_id}", json=dict(REAL_JOB, id=job_id))

    make_client().get_job(f"  {job_id}\n")

    path = requests.utils.urlparse(mocked.calls[0].request.url).path
    assert path == f"/v1/fine_tuning/jobs/{job_id}"
    assert path.count("/") == 4


def test_it_does_not_follow_redirects_with_the_key(mocked):
    mocked.get(JOB_URL, status=302, headers={"Location": "https://evil.example/steal"})
    mocked.get("https://evil.example/steal", json=REAL_JOB)

    with pytest.raises(UnreadableAnswer) as caught:
        make_client().get_job(JOB_ID)

    assert [call.request.url for call in mocked.calls] == [JOB_URL]
    assert_plain_and_keyless(caught.value)


@pytest.mark.parametrize(
    "raw",
    [
        "../../v1/files",
        "ftjob-../../v1/files",
        "",
        "   ",
        "\t\n",
        "ftjob-",
        "ftjob-abc/def",
        "ftjob-abc/../../v1/files",
        "ftjob-abc%2Fdef",
        "ftjob-abc%2F..%2F..%2Fv1%2Ffiles",
        "ftjob-abc?limit=100",
        "ftjob-abc#fragment",
        "ftjob-abc\ndef",
        "ftjob-abc\r\nX-Injected: 1",
        "ftjob-abc def",
        "ftjob-_abc",
        "ftjob-ａｂｃ",  # full-width letters
        "FTJOB-abc",
        "file-76807105",
        "ftjob-" + "a" * 101,
        None,
    ],
)
def test_it_refuses_a_malformed_job_id_without_a_network_call(mocked, raw):
    with pytest.raises(InvalidJobId) as caught:
        make_client().get_job(raw)

    assert len(mocked.calls) == 0
    assert caught.value.permanent
    assert "ftjob-" in caught.value.message
    assert_plain_and_keyless(caught.value)


def test_it_refuses_a_path_traversal_job_id_without_a_network_call(mocked):
    with pytest.raises(InvalidJobId):
        clean_job_id("../../v1/files")
    with pytest.raises(InvalidJobId):
        make_client().get_job("../../v1/files")
    assert len(mocked.calls) == 0


@pytest.mark.parametrize("raw", [f"  {JOB_ID}  ", f"\t{JOB_ID}\n", JOB_ID, f"\r\n {JOB_ID}\r\n"])
def test_it_accepts_a_real_job_id_with_surrounding_whitespace(raw):
    assert clean_job_id(raw) == JOB_ID


def test_check_key_lists_at_most_one_job(mocked):
    route = mocked.get(LIST_URL, json={"object": "list", "data": [], "has_more": False})

    assert make_client().check_key() is None

    assert route.call_count == 1
    request = mocked.calls[0].request
    assert request.url == f"{LIST_URL}?limit=1"
    assert request.headers["Authorization"] == f"Bearer {KEY}"


def test_check_key_raises_token_rejected_for_a_rejected_key(mocked):
    mocked.get(LIST_URL, status=401, json={"detail": "Invalid API key"})

    with pytest.raises(TokenRejected) as caught:
        make_client().check_key()

    assert_plain_and_keyless(caught.value)


# ---------------------------------------------------------------------------- HTTP errors


def test_a_rejected_key_raises_token_rejected(mocked):
    mocked.get(JOB_URL, status=401, json={"detail": f"Invalid API key {KEY}"})

    with pytest.raises(TokenRejected) as caught:
        make_client().get_job(JOB_ID)

    assert caught.value.status == 401
    assert caught.value.permanent
    assert "HTTP 401" in caught.value.message
    assert_plain_and_keyless(caught.value)
    assert len(mocked.calls) == 1  # never retried


def test_a_403_on_one_job_is_about_the_job_not_the_key(mocked):
    mocked.get(JOB_URL, status=403, json={"detail": f"not allowed to access this project {KEY}"})

    with pytest.raises(JobForbidden) as caught:
        make_client().get_job(JOB_ID)

    assert not isinstance(caught.value, TokenRejected)
    assert not caught.value.permanent  # access may be granted later: retried with backoff
    assert f"may not read job {JOB_ID}" in caught.value.message
    assert_plain_and_keyless(caught.value)


def test_a_403_on_the_job_list_rejects_the_key(mocked):
    mocked.get(f"{BASE}/v1/fine_tuning/jobs", status=403, json={"detail": "forbidden"})

    with pytest.raises(TokenRejected) as caught:
        make_client().check_key()

    assert "HTTP 403" in caught.value.message


@pytest.mark.parametrize("key", ["sk-abc\u200bdef", "sk-\u00e9t\u00e9-123456", "sk-line\nbreak", "sk-abc def"])
def test_a_key_headers_cannot_carry_is_refused_before_anything_is_sent(mocked, key):
    with pytest.raises(TokenUnusable) as caught:
        make_client(key).get_job(JOB_ID)

    assert "contains characters Token Factory cannot accept" in caught.value.message
    assert caught.value.permanent
    assert key not in caught.value.message
    assert len(mocked.calls) == 0


def test_an_unknown_job_raises_job_not_found_naming_the_job(mocked):
    mocked.get(JOB_URL, status=404, json={"detail": "Fine-tuning job not found"})

    with pytest.raises(JobNotFound) as caught:
        make_client().get_job(JOB_ID)

    assert caught.value.status == 404
    assert caught.value.permanent
    assert JOB_ID in caught.value.message
    assert_plain_and_keyless(caught.value)
    assert len(mocked.calls) == 1


def test_a_validation_error_raises_request_rejected_with_the_apis_explanation(mocked):
    mocked.get(
        JOB_URL,
        status=422,
        json={"detail": [{"loc": ["path", "job_id"], "msg": "Invalid fine-tuning job id", "type": "value_error"}]},
    )

    with pytest.raises(RequestRejected) as caught:
        make_client().get_job(JOB_ID)

    assert caught.value.status == 422
    assert "Invalid fine-tuning job id" in caught.value.message
    assert "path.job_id" in caught.value.message
    assert_plain_and_keyless(caught.value)


def test_a_validation_error_with_a_string_detail_is_shown(mocked):
    mocked.get(JOB_URL, status=422, json={"detail": "ai_project_id is not valid"})

    with pytest.raises(RequestRejected) as caught:
        make_client().get_job(JOB_ID)

    assert "ai_project_id is not valid" in caught.value.message


def test_a_validation_error_without_a_body_is_still_plain(mocked):
    mocked.get(JOB_URL, status=422, body="Unprocessable", content_type="text/plain")

    with pytest.raises(RequestRejected) as caught:
        make_client().get_job(JOB_ID)

    assert caught.value.message == "Token Factory did not accept the request."


def test_a_rate_limit_uses_retry_after_in_seconds(mocked):
    mocked.get(JOB_URL, status=429, json={"detail": "Rate limit exceeded"}, headers={"Retry-After": "17"})

    with pytest.raises(RateLimited) as caught:
        make_client().get_job(JOB_ID)

    assert caught.value.retry_after == 17
    assert caught.value.status == 429
    assert not caught.value.permanent
    assert "17 s" in caught.value.message
    assert_plain_and_keyless(caught.value)
    assert len(mocked.calls) == 1  # a 429 is honoured, not retried at once


def test_a_rate_limit_uses_retry_after_as_an_http_date(mocked):
    when = email.utils.formatdate(time.time() + 120, usegmt=True)
    mocked.get(JOB_URL, status=429, json={"detail": "Rate limit exceeded"}, headers={"Retry-After": when})

    with pytest.raises(RateLimited) as caught:
        make_client().get_job(JOB_ID)

    assert 115 <= caught.value.retry_after <= 121


def test_a_rate_limit_in_the_past_still_waits_a_moment(mocked):
    when = email.utils.formatdate(time.time() - 3600, usegmt=True)
    mocked.get(JOB_URL, status=429, headers={"Retry-After": when})

    with pytest.raises(RateLimited) as caught:
        make_client().get_job(JOB_ID)

    assert caught.value.retry_after == 1


# A day ahead, as seconds or as an HTTP date. The date is made when the test runs, not at
# collection: a clock reading in a test id differs between runs and between pytest-xdist's
# workers, which then refuse to start ("Different tests were collected").
A_DAY_AHEAD = {
    "seconds": lambda: "86400",
    "http-date": lambda: email.utils.formatdate(time.time() + 86400, usegmt=True),
}


@pytest.mark.parametrize("form", A_DAY_AHEAD)
def test_a_rate_limit_wait_is_capped(mocked, form):
    mocked.get(JOB_URL, status=429, headers={"Retry-After": A_DAY_AHEAD[form]()})

    with pytest.raises(RateLimited) as caught:
        make_client(retry_after_cap=60).get_job(JOB_ID)

    assert caught.value.retry_after == 60
    assert "60 s" in caught.value.message


def test_a_rate_limit_without_retry_after_waits_the_default(mocked):
    mocked.get(
        JOB_URL, status=429, json={"detail": "Rate limit exceeded"}, headers={"x-ratelimit-remaining-requests": "0"}
    )

    with pytest.raises(RateLimited) as caught:
        make_client().get_job(JOB_ID)

    assert caught.value.retry_after == DEFAULT_RETRY_AFTER_SECONDS


@pytest.mark.parametrize("header", ["soon", "", "-5", "1.5", "²", "Wed, 99 Foo 2025"])
def test_a_rate_limit_with_a_garbled_retry_after_waits_the_default(mocked, header):
    mocked.get(JOB_URL, status=429, headers={"Retry-After": header})

    with pytest.raises(RateLimited) as caught:
        make_client().get_job(JOB_ID)

    assert caught.value.retry_after == DEFAULT_RETRY_AFTER_SECONDS
    assert_plain_and_keyless(caught.value)


def test_a_server_error_raises_api_unavailable_without_retrying(mocked):
    route = mocked.get(JOB_URL, status=500, json={"detail": "Internal Server Error"})

    with pytest.raises(ApiUnavailable) as caught:
        make_client().get_job(JOB_ID)

    assert route.call_count == 1
    assert caught.value.status == 500
    assert not caught.value.permanent
    assert "HTTP 500" in caught.value.message
    assert_plain_and_keyless(caught.value)


@pytest.mark.parametrize("status", [502, 503, 504])
def test_a_gateway_error_is_retried_then_raises_api_unavailable(mocked, status):
    route = mocked.get(JOB_URL, status=status, body=f"<html><h1>{status}</h1></html>", content_type="text/html")

    with pytest.raises(ApiUnavailable) as caught:
        make_client(retries=2).get_job(JOB_ID)

    assert route.call_count == 3  # the first try and 2 retries
    assert caught.value.status == status
    assert f"HTTP {status}" in caught.value.message
    assert_plain_and_keyless(caught.value)


def test_no_retries_means_one_call(mocked):
    route = mocked.get(JOB_URL, status=503)

    with pytest.raises(ApiUnavailable):
        make_client(retries=0).get_job(JOB_ID)

    assert route.call_count == 1


def test_a_gateway_error_followed_by_an_answer_succeeds(mocked):
    mocked.get(JOB_URL, status=502, body="<html>Bad Gateway</html>", content_type="text/html")
    mocked.get(JOB_URL, json=dict(REAL_JOB, trained_steps=7))

    job = make_client(retries=2).get_job(JOB_ID)

    assert job.trained_steps == 7
    assert len(mocked.calls) == 2


def test_retries_back_off(mocked):
    mocked.get(JOB_URL, status=503)

    started = time.monotonic()
    with pytest.raises(ApiUnavailable):
        make_client(retries=2, backoff_seconds=0.05).get_job(JOB_ID)

    assert time.monotonic() - started >= 0.05 + 0.1


def test_a_connection_error_is_retried_then_raises_api_unavailable(mocked):
    route = mocked.get(JOB_URL, body=requests.exceptions.ConnectionError(f"refused, Authorization: Bearer {KEY}"))

    with pytest.raises(ApiUnavailable) as caught:
        make_client(retries=2).get_job(JOB_ID)

    assert route.call_count == 3
    assert caught.value.status is None
    assert BASE in caught.value.message
    assert_plain_and_keyless(caught.value)


def test_a_connection_error_followed_by_an_answer_succeeds(mocked):
    mocked.get(JOB_URL, body=requests.exceptions.ConnectionError("reset"))
    mocked.get(JOB_URL, json=REAL_JOB)

    assert make_client(retries=1).get_job(JOB_ID).id == JOB_ID


def test_a_read_timeout_is_not_retried(mocked):
    route = mocked.get(JOB_URL, body=requests.exceptions.ReadTimeout(f"read timed out {KEY}"))

    with pytest.raises(ApiUnavailable) as caught:
        make_client(retries=3, read_timeout=0.3).get_job(JOB_ID)

    assert route.call_count == 1
    assert "0.3 s" in caught.value.message
    assert_plain_and_keyless(caught.value)


# ---------------------------------------------------------------------------- unreadable answers


def test_a_non_json_answer_raises_unreadable_answer_naming_the_content_type(mocked):
    mocked.get(JOB_URL, body="<html><body>Please sign in</body></html>", content_type="text/html")

    with pytest.raises(UnreadableAnswer) as caught:
        make_client().get_job(JOB_ID)

    assert "text/html" in caught.value.message
    assert "Please sign in" not in caught.value.message
    assert_plain_and_keyless(caught.value)


def test_broken_json_raises_unreadable_answer(mocked):
    mocked.get(JOB_URL, body='{"id": "ftjob-', content_type="application/json")

    with pytest.raises(UnreadableAnswer) as caught:
        make_client().get_job(JOB_ID)

    assert "application/json" in caught.value.message
    assert_plain_and_keyless(caught.value)


def test_an_empty_answer_raises_unreadable_answer(mocked):
    mocked.get(JOB_URL, body="", content_type=None)

    with pytest.raises(UnreadableAnswer) as caught:
        make_client().get_job(JOB_ID)

    assert_plain_and_keyless(caught.value)


@pytest.mark.parametrize(
    "payload",
    [
        [REAL_JOB],
        [],
        "ftjob-c7cc1f8df48144aeb180a5bf5818dc81",
        42,
        None,
        {"object": "fine_tuning.job", "message": "ok"},
        {"id": JOB_ID},
        {"status": "running"},
        {"id": 12, "status": "running"},
        {"id": JOB_ID, "status": None},
        {"id": JOB_ID, "status": ["running"]},
    ],
)
def test_json_that_is_not_a_job_raises_unreadable_answer(mocked, payload):
    mocked.get(JOB_URL, json=payload)

    with pytest.raises(UnreadableAnswer) as caught:
        make_client().get_job(JOB_ID)

    assert_plain_and_keyless(caught.value)


def test_unknown_fields_and_an_unknown_status_parse_fine(mocked):
    mocked.get(
        JOB_URL,
        json=dict(REAL_JOB, status="paused_for_maintenance", brand_new_field={"nested": [1, 2]}, total_steps=10),
    )

    job = make_client().get_job(JOB_ID)

    assert job.status == "paused_for_maintenance"
    assert not job.is_known_status and not job.is_terminal
    assert job.raw["brand_new_field"] == {"nested": [1, 2]}
    assert job.progress_percent == 0


def test_an_unexpected_status_code_raises_unreadable_answer(mocked):
    mocked.get(JOB_URL, status=418, json={"detail": "teapot"})

    with pytest.raises(UnreadableAnswer) as caught:
        make_client().get_job(JOB_ID)

    assert "HTTP 418" in caught.value.message


# ---------------------------------------------------------------------------- the key stays secret


def test_the_clients_repr_never_shows_the_key():
    client = make_client()
    assert KEY not in repr(client)
    assert KEY not in str(client)
    assert BASE in repr(client)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"status": 401, "json": {"detail": KEY}},
        {"status": 403},
        {"status": 404, "json": {"detail": KEY}},
        {"status": 422, "json": {"detail": "bad"}},
        {"status": 429, "headers": {"Retry-After": "3"}},
        {"status": 500},
        {"status": 502},
        {"status": 503},
        {"status": 504},
        {"status": 200, "body": "not json"},
        {"status": 200, "json": []},
        {"body": requests.exceptions.ConnectionError(KEY)},
        {"body": requests.exceptions.ReadTimeout(KEY)},
    ],
)
def test_no_error_message_or_log_line_contains_the_key(mocked, caplog, kwargs):
    mocked.get(JOB_URL, **kwargs)

    with caplog.at_level(logging.DEBUG, logger="jobs.tokenfactory"):
        with pytest.raises(TokenFactoryError) as caught:
            make_client(retries=1).get_job(JOB_ID)

    assert_plain_and_keyless(caught.value)
    assert caplog.records
    assert KEY not in caplog.text
    for record in caplog.records:
        assert KEY not in record.getMessage()


# ---------------------------------------------------------------------------- logging


def test_it_logs_one_info_line_per_call_with_job_status_and_duration(mocked, caplog):
    mocked.get(JOB_URL, json=REAL_JOB)

    with caplog.at_level(logging.INFO, logger="jobs.tokenfactory"):
        make_client().get_job(JOB_ID)

    records = [r for r in caplog.records if r.name == "jobs.tokenfactory"]
    assert len(records) == 1
    record = records[0]
    assert record.levelno == logging.INFO
    line = record.getMessage()
    assert JOB_ID in line
    assert "status=200" in line
    assert "duration_ms=" in line
    assert KEY not in line


def test_it_logs_every_retried_call(mocked, caplog):
    mocked.get(JOB_URL, status=503)

    with caplog.at_level(logging.INFO, logger="jobs.tokenfactory"):
        with pytest.raises(ApiUnavailable):
            make_client(retries=2).get_job(JOB_ID)

    lines = [r.getMessage() for r in caplog.records if r.name == "jobs.tokenfactory"]
    assert len(lines) == 3
    assert all("status=503" in line and JOB_ID in line for line in lines)


def test_check_key_logs_without_a_job(mocked, caplog):
    mocked.get(LIST_URL, json={"object": "list", "data": [], "has_more": False})

    with caplog.at_level(logging.INFO, logger="jobs.tokenfactory"):
        make_client().check_key()

    lines = [r.getMessage() for r in caplog.records if r.name == "jobs.tokenfactory"]
    assert len(lines) == 1
    assert "job=-" in lines[0] and "status=200" in lines[0]


# ============================================================================ over real HTTP


def fake_client(fake_api, *, read_timeout: float = 10.0, retries: int = 1) -> TokenFactoryClient:
    """A client for the fake API with near-instant backoff. The read timeout is generous, so a
    call that should succeed does even on a loaded machine; timeout tests pass a short one."""
    config = ClientConfig(
        base_url=fake_api.url,
        connect_timeout=5.0,
        read_timeout=read_timeout,
        total_timeout=30.0,
        max_answer_bytes=8 * 2**20,
        retries=retries,
        retry_after_cap=300,
        backoff_seconds=0.01,
    )
    return TokenFactoryClient(ALICE_SECRET, config)


@pytest.fixture
def http_client(fake_api):
    return fake_client(fake_api)


# A scripted slow answer takes this long: far longer than any short read timeout below, however
# busy the machine, so "timed out" never depends on scheduling luck.
SLOW_ANSWER_SECONDS = 60


@pytest.mark.parametrize(
    "kind, error, calls",
    [
        ("401", TokenRejected, 1),
        ("403", JobForbidden, 1),
        ("404", JobNotFound, 1),
        ("422", RequestRejected, 1),
        ("500", ApiUnavailable, 1),
        ("502", ApiUnavailable, 2),
        ("503", ApiUnavailable, 2),
        ("504", ApiUnavailable, 2),
        ("timeout", ApiUnavailable, 1),
        ("html", UnreadableAnswer, 1),
        ("not_json", UnreadableAnswer, 1),
        ("wrong_shape", UnreadableAnswer, 1),
        ("missing_fields", UnreadableAnswer, 1),
        ("reset", ApiUnavailable, 2),
    ],
)
def test_every_upstream_failure_becomes_the_right_error(fake_api, http_client, kind, error, calls):
    job = fake_api.add_job(total_steps=100)
    fake_api.fail_next(kind, job_id=job["id"], count=5, delay=SLOW_ANSWER_SECONDS)
    client = fake_client(fake_api, read_timeout=0.5) if kind == "timeout" else http_client

    with pytest.raises(error) as caught:
        client.get_job(job["id"])

    assert type(caught.value) is error
    assert len(fake_api.calls_for(job["id"])) == calls
    assert_plain_and_keyless(caught.value, key=ALICE_SECRET)


def test_a_rate_limit_over_http_carries_the_servers_retry_after(fake_api, http_client):
    job = fake_api.add_job()
    fake_api.fail_next("429", job_id=job["id"], retry_after=7)

    with pytest.raises(RateLimited) as caught:
        http_client.get_job(job["id"])

    assert caught.value.retry_after == 7
    assert len(fake_api.calls_for(job["id"])) == 1
    assert_plain_and_keyless(caught.value, key=ALICE_SECRET)


def test_a_rate_limit_over_http_without_retry_after_waits_the_default(fake_api, http_client):
    job = fake_api.add_job()
    fake_api.fail_next("429", job_id=job["id"])

    with pytest.raises(RateLimited) as caught:
        http_client.get_job(job["id"])

    assert caught.value.retry_after == DEFAULT_RETRY_AFTER_SECONDS


def test_a_single_reset_or_gateway_error_is_recovered_by_a_retry(fake_api, http_client):
    job = fake_api.add_job(total_steps=100, trained_steps=12)

    fake_api.fail_next("reset", job_id=job["id"])
    assert http_client.get_job(job["id"]).trained_steps == 12
    assert [c.status for c in fake_api.calls_for(job["id"])] == [0, 200]

    fake_api.fail_next("502", job_id=job["id"])
    assert http_client.get_job(job["id"]).trained_steps == 12
    assert [c.status for c in fake_api.calls_for(job["id"])] == [0, 200, 502, 200]


def test_a_slow_answer_times_out_quickly_and_is_not_retried(fake_api, caplog):
    job = fake_api.add_job()
    fake_api.fail_next("timeout", job_id=job["id"], count=3, delay=SLOW_ANSWER_SECONDS)
    client = fake_client(fake_api, read_timeout=0.5, retries=2)

    started = time.monotonic()
    with caplog.at_level(logging.INFO, logger="jobs.tokenfactory"), pytest.raises(ApiUnavailable) as caught:
        client.get_job(job["id"])

    # It gave up long before the answer came (and did not wait it out once per retry).
    assert time.monotonic() - started < SLOW_ANSWER_SECONDS / 2
    assert "0.5 s" in caught.value.message
    # One attempt: the client logs every attempt it makes. The fake sees that one, though on a
    # loaded machine perhaps only after the client has given up on it.
    attempts = [record.getMessage() for record in caplog.records if record.getMessage().startswith("upstream ")]
    assert len(attempts) == 1 and "status=timeout" in attempts[0], attempts
    wait_for(lambda: fake_api.calls_for(job["id"]), timeout=10, what="the fake to read the request")


def test_an_api_that_is_down_raises_api_unavailable(fake_api, http_client):
    job = fake_api.add_job()
    fake_api.set_down(True)

    with pytest.raises(ApiUnavailable) as caught:
        http_client.get_job(job["id"])

    assert caught.value.status == 503
    assert len(fake_api.calls) == 2
    assert_plain_and_keyless(caught.value, key=ALICE_SECRET)

    fake_api.set_down(False)
    assert http_client.get_job(job["id"]).id == job["id"]


def test_a_refused_connection_raises_api_unavailable(fake_api):
    url = fake_api.url
    fake_api.stop()  # nothing listens on the port any more
    client = TokenFactoryClient(
        ALICE_SECRET,
        ClientConfig(
            base_url=url,
            connect_timeout=0.5,
            read_timeout=0.5,
            total_timeout=30.0,
            max_answer_bytes=8 * 2**20,
            retries=1,
            retry_after_cap=300,
            backoff_seconds=0.01,
        ),
    )

    with pytest.raises(ApiUnavailable) as caught:
        client.get_job(JOB_ID)

    assert url in caught.value.message
    assert_plain_and_keyless(caught.value, key=ALICE_SECRET)


def test_a_revoked_key_over_http_raises_token_rejected(fake_api, http_client):
    job = fake_api.add_job()
    fake_api.revoke_token(ALICE_SECRET)

    with pytest.raises(TokenRejected) as caught:
        http_client.get_job(job["id"])

    assert caught.value.status == 401
    assert fake_api.calls[-1].token == ALICE_SECRET


def test_another_projects_job_over_http_raises_job_not_found(fake_api, http_client):
    job = fake_api.add_job(token="sk-someone-else")

    with pytest.raises(JobNotFound):
        http_client.get_job(job["id"])


def test_the_fake_receives_the_bearer_key_and_the_exact_path(fake_api, http_client):
    job = fake_api.add_job()

    http_client.get_job(f"  {job['id']} ")

    (call,) = fake_api.calls
    assert call.token == ALICE_SECRET
    assert call.path == f"/v1/fine_tuning/jobs/{job['id']}"
    assert call.job_id == job["id"]


def test_calls_share_one_kept_alive_connection(fake_api, http_client):
    """The process-wide session keeps the connection to the API open between calls: no new TCP
    (and, for the real API, TLS) handshake per refresh."""
    job = fake_api.add_job(total_steps=100, steps_per_call=1)

    steps = [http_client.get_job(job["id"]).trained_steps for _ in range(4)]
    http_client.check_key()
    # A second client (another token) shares the session, and so the connection, too.
    fake_api.add_token("sk-other-0123456789-SECRET")
    TokenFactoryClient("sk-other-0123456789-SECRET", http_client.config).get_job(job["id"])

    assert steps == [1, 2, 3, 4]
    assert [c.status for c in fake_api.calls] == [200] * 6
    assert fake_api.connections_accepted == 1


def test_a_pooled_connection_the_server_closed_is_replaced_without_an_error(fake_api):
    """Servers close idle kept-alive connections (nginx after 75 s); the next call must not fail
    on the dead connection, even with no retries allowed."""
    client = fake_client(fake_api, retries=0)
    job = fake_api.add_job(total_steps=100, steps_per_call=1)
    assert client.get_job(job["id"]).trained_steps == 1
    wait_for(lambda: fake_api.close_idle_connections() == 1, what="the server to close the idle connection")

    assert client.get_job(job["id"]).trained_steps == 2
    assert [c.status for c in fake_api.calls_for(job["id"])] == [200, 200]
    assert fake_api.connections_accepted == 2


def test_check_key_over_http(fake_api, http_client):
    http_client.check_key()

    (call,) = fake_api.calls
    assert call.path == "/v1/fine_tuning/jobs"
    assert call.query == {"limit": "1"}
    assert call.status == 200


def test_the_client_built_from_settings_talks_to_the_configured_api(fake_api):
    job = fake_api.add_job(total_steps=10, trained_steps=3)

    assert TokenFactoryClient(ALICE_SECRET).get_job(job["id"]).trained_steps == 3


def test_a_job_that_progresses_reads_more_trained_steps_later(fake_api, http_client):
    job = fake_api.add_job(total_steps=10_000, steps_per_second=200)

    first = http_client.get_job(job["id"])
    second = wait_for(
        lambda: (later := http_client.get_job(job["id"])).trained_steps > first.trained_steps and later,
        what="the job to move on",
    )

    assert second.trained_steps > first.trained_steps
    assert second.progress_percent >= first.progress_percent
    assert second.status == "running"


def test_a_job_that_progresses_per_call_reads_more_trained_steps(fake_api, http_client):
    job = fake_api.add_job(total_steps=100, steps_per_call=10)

    assert http_client.get_job(job["id"]).trained_steps == 10
    assert http_client.get_job(job["id"]).trained_steps == 20
