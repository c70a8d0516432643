"""The fake Token Factory must behave like the real API over real HTTP, or every test built on it lies."""

from __future__ import annotations

import os
import re
import socket
import threading
import time
from pathlib import Path

import pytest
import requests

from tests.support.fake_tokenfactory import DIVERGING, FAIL_KINDS, OVERFITTING, Call, FakeTokenFactory, ManualClock
from tests.support.waiting import wait_for

TOKEN = "test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
JOB_ID_RE = re.compile(r"^ftjob-[0-9a-f]{32}$")
FILE_ID_RE = re.compile(r"^file-[0-9a-f-]{36}$")


@pytest.fixture
def clock():
    return ManualClock()


@pytest.fixture
def fake(clock):
    """The fake on a hand-turned clock: time-based progress moves only when a test says so."""
    with FakeTokenFactory(clock=clock) as server:
        server.add_token(TOKEN)
        yield server


def get(fake: FakeTokenFactory, path: str, *, token: str | None = TOKEN, **kwargs) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    kwargs.setdefault("timeout", 5)
    return requests.get(fake.url + path, headers=headers, **kwargs)


def get_job(fake: FakeTokenFactory, job_id: str, **kwargs) -> requests.Response:
    return get(fake, f"/v1/fine_tuning/jobs/{job_id}", **kwargs)


# ---------------------------------------------------------------- lifecycle and job bodies


def test_url_is_loopback_ephemeral_port_and_unavailable_before_start():
    server = FakeTokenFactory()
    with pytest.raises(RuntimeError):
        _ = server.url
    with server:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", server.url)
        assert not server.url.endswith(":0")
    server.stop()  # idempotent


def test_it_serves_a_realistic_default_job(fake):
    job = fake.add_job()
    response = get_job(fake, job["id"])
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert body == job
    assert JOB_ID_RE.match(body["id"])
    assert body["object"] == "fine_tuning.job"
    assert isinstance(body["created_at"], int) and abs(body["created_at"] - time.time()) < 5
    assert body["status"] == "running"
    assert body["model"] == "Qwen/Qwen3-4B"
    assert body["error"] is None and body["finished_at"] is None and body["estimated_finish"] is None
    assert body["organization_id"] == "" and body["seed"] == 42 and body["result_files"] == []
    assert FILE_ID_RE.match(body["training_file"]) and FILE_ID_RE.match(body["validation_file"])
    assert body["hyperparameters"]["lora"] is True and body["hyperparameters"]["batch_size"] == 32
    assert body["integrations"] is None and body["method"] is None
    assert body["trained_steps"] == 0 and body["trained_tokens"] == 0 and body["total_steps"] is None


def test_it_serves_overridden_and_unknown_fields_verbatim(fake):
    method = {"type": "supervised", "supervised": {"hyperparameters": {"lora": True, "lora_r": 8}}}
    integrations = [{"type": "wandb", "wandb": {"project": "p", "entity": "e", "name": "n", "tags": []}}]
    job = fake.add_job(
        "ftjob-" + "a" * 32,
        model="meta-llama/Llama-3.1-8B-Instruct",
        suffix="my-run",
        total_steps=100,
        method=method,
        integrations=integrations,
        brand_new_field={"nested": [1, 2, None]},
    )
    body = get_job(fake, "ftjob-" + "a" * 32).json()
    assert body["id"] == "ftjob-" + "a" * 32 == job["id"]
    assert body["model"] == "meta-llama/Llama-3.1-8B-Instruct"
    assert body["suffix"] == "my-run" and body["total_steps"] == 100
    assert body["method"] == method and body["integrations"] == integrations
    assert body["brand_new_field"] == {"nested": [1, 2, None]}


def test_add_job_copies_the_fields_it_is_given(fake):
    integrations = [{"type": "hf", "hf": {"output_repo_name": "me/model"}}]
    job = fake.add_job(integrations=integrations)
    integrations[0]["hf"]["output_repo_name"] = "changed"
    assert get_job(fake, job["id"]).json()["integrations"][0]["hf"]["output_repo_name"] == "me/model"


# ---------------------------------------------------------------- progression


def test_it_advances_progress_over_time(fake, clock):
    job = fake.add_job(total_steps=1000, steps_per_second=50, tokens_per_step=100)
    assert job["trained_steps"] == 0
    clock.advance(0.1)
    body = get_job(fake, job["id"]).json()
    assert body["status"] == "running"
    assert body["trained_steps"] == 5
    assert body["trained_tokens"] == 5 * 100
    expected_finish = job["created_at"] + 0.1 + (1000 - 5) / 50
    assert abs(body["estimated_finish"] - expected_finish) <= 1
    clock.advance(0.05)
    assert get_job(fake, job["id"]).json()["trained_steps"] == 7


def test_it_advances_progress_over_real_time_by_default():
    with FakeTokenFactory() as fake:
        fake.add_token(TOKEN)
        job = fake.add_job(total_steps=1_000_000, steps_per_second=1000)
        first = get_job(fake, job["id"]).json()["trained_steps"]
        later = wait_for(lambda: get_job(fake, job["id"]).json()["trained_steps"] > first)
        assert later


def test_advance_moves_a_job_on_demand_and_finishes_it(fake):
    job = fake.add_job(total_steps=10, trained_steps=2)
    assert fake.advance(job["id"], 3)["trained_steps"] == 5
    assert get_job(fake, job["id"]).json()["trained_steps"] == 5  # no progress controls: it stays put
    body = fake.advance(job["id"], 100)
    assert body["status"] == "succeeded" and body["trained_steps"] == 10 and len(body["result_files"]) == 1
    assert fake.advance(job["id"], 1) == body  # a finished job does not move


def test_advance_adds_to_the_progress_controls(fake, clock):
    error = {"code": "oom", "message": "CUDA out of memory", "param": None}
    job = fake.add_job(total_steps=100, steps_per_second=10, fail_with=error, fail_at_step=50)
    clock.advance(1)
    assert fake.advance(job["id"], 20)["trained_steps"] == 30
    body = fake.advance(job["id"], 20)
    assert body["status"] == "failed" and body["trained_steps"] == 50 and body["error"] == error


def test_it_advances_progress_per_call(fake):
    job = fake.add_job(total_steps=100, steps_per_call=10)
    steps = [get_job(fake, job["id"]).json()["trained_steps"] for _ in range(3)]
    assert steps == [10, 20, 30]
    # Listing and events do not count as GETs of the job; get_job() doesn't either.
    get(fake, "/v1/fine_tuning/jobs")
    get(fake, f"/v1/fine_tuning/jobs/{job['id']}/events")
    assert fake.get_job(job["id"])["trained_steps"] == 30


def test_it_keeps_a_job_queued_before_running(fake, clock):
    job = fake.add_job(total_steps=1000, steps_per_second=50, queued_for_seconds=0.15)
    assert job["status"] == "queued"
    clock.advance(0.05)
    body = get_job(fake, job["id"]).json()
    assert body["status"] == "queued" and body["trained_steps"] == 0
    clock.advance(0.2)
    body = get_job(fake, job["id"]).json()
    assert body["status"] == "running" and body["trained_steps"] == 5


def test_a_queued_job_with_steps_per_call_does_not_advance_until_running(fake, clock):
    job = fake.add_job(total_steps=100, steps_per_call=5, queued_for_seconds=0.1)
    assert get_job(fake, job["id"]).json()["trained_steps"] == 0
    clock.advance(0.15)
    body = get_job(fake, job["id"]).json()
    assert body["status"] == "running" and body["trained_steps"] == 5


def test_it_succeeds_with_finished_at_and_result_files(fake, clock):
    job = fake.add_job(total_steps=5, steps_per_second=50)
    clock.advance(0.15)
    body = get_job(fake, job["id"]).json()
    assert body["status"] == "succeeded"
    assert body["trained_steps"] == 5 and body["trained_tokens"] == 5 * 4096
    assert isinstance(body["finished_at"], int) and abs(body["finished_at"] - time.time()) < 3
    assert body["estimated_finish"] is None and body["error"] is None
    assert len(body["result_files"]) == 1 and FILE_ID_RE.match(body["result_files"][0])
    # Terminal: it stays put.
    clock.advance(10)
    assert get_job(fake, job["id"]).json() == body


def test_it_succeeds_after_enough_calls(fake):
    job = fake.add_job(total_steps=25, steps_per_call=10)
    statuses = [get_job(fake, job["id"]).json()["status"] for _ in range(3)]
    assert statuses == ["running", "running", "succeeded"]
    assert fake.get_job(job["id"])["trained_steps"] == 25


def test_it_fails_with_the_given_error(fake):
    error = {"code": "oom", "message": "CUDA out of memory", "param": None}
    job = fake.add_job(total_steps=3, steps_per_call=1, fail_with=error)
    bodies = [get_job(fake, job["id"]).json() for _ in range(3)]
    assert [b["status"] for b in bodies] == ["running", "running", "failed"]
    assert bodies[-1]["error"] == error
    assert isinstance(bodies[-1]["finished_at"], int)
    assert bodies[-1]["result_files"] == []


def test_it_can_fail_midway_at_a_given_step(fake, clock):
    error = {"code": "invalid_data", "message": "bad row", "param": "training_file"}
    job = fake.add_job(total_steps=100, steps_per_second=50, fail_with=error, fail_at_step=3)
    clock.advance(0.12)
    body = get_job(fake, job["id"]).json()
    assert body["status"] == "failed" and body["trained_steps"] == 3 and body["error"] == error


def test_static_terminal_jobs_get_plausible_defaults(fake):
    succeeded = fake.add_job(status="succeeded", total_steps=10, trained_steps=10)
    assert isinstance(succeeded["finished_at"], int) and len(succeeded["result_files"]) == 1
    failed = fake.add_job(status="failed")
    assert failed["error"]["code"] and failed["error"]["message"] and isinstance(failed["finished_at"], int)
    bare = fake.add_job(status="failed", error=None, finished_at=None)
    assert bare["error"] is None and bare["finished_at"] is None


def test_update_job_sets_fields_directly(fake):
    job = fake.add_job(total_steps=100, trained_steps=10)
    error = {"code": "cancelled_by_platform", "message": "Node lost", "param": None}
    updated = fake.update_job(job["id"], status="failed", error=error, custom="x")
    body = get_job(fake, job["id"]).json()
    assert body == updated
    assert body["status"] == "failed" and body["error"] == error and body["custom"] == "x"
    assert isinstance(body["finished_at"], int)
    with pytest.raises(KeyError):
        fake.update_job("ftjob-" + "0" * 32, status="running")


def test_update_job_progress_continues_from_the_new_steps(fake):
    job = fake.add_job(total_steps=100, steps_per_call=1)
    fake.update_job(job["id"], trained_steps=50)
    assert get_job(fake, job["id"]).json()["trained_steps"] == 51


def test_update_job_to_running_ends_the_queue(fake):
    job = fake.add_job(total_steps=100, steps_per_call=1, queued_for_seconds=60)
    assert fake.update_job(job["id"], status="running")["status"] == "running"
    assert get_job(fake, job["id"]).json()["trained_steps"] == 1


# ---------------------------------------------------------------- events


def test_events_follow_status_changes_oldest_first(fake, clock):
    job = fake.add_job(
        total_steps=2,
        steps_per_call=1,
        queued_for_seconds=0.05,
        fail_with={"code": "x", "message": "Boom", "param": None},
    )
    clock.advance(0.08)
    get_job(fake, job["id"])
    get_job(fake, job["id"])
    response = get(fake, f"/v1/fine_tuning/jobs/{job['id']}/events")
    assert response.status_code == 200
    page = response.json()
    assert page["object"] == "list" and page["has_more"] is False
    events = page["data"]
    assert [e["message"] for e in events] == [
        f"Created fine-tuning job: {job['id']}",
        "Fine-tuning job queued",
        "Fine-tuning job started",
        "Fine-tuning job failed: Boom",
    ]
    assert [e["level"] for e in events] == ["info", "info", "info", "error"]
    assert all(isinstance(e["created_at"], int) and e["id"].startswith("ftevent-") for e in events)
    assert [e["created_at"] for e in events] == sorted(e["created_at"] for e in events)


def test_events_of_a_succeeded_job_and_pagination(fake):
    job = fake.add_job(status="succeeded")
    events = get(fake, f"/v1/fine_tuning/jobs/{job['id']}/events").json()["data"]
    assert events[-1]["message"] == "Fine-tuning job successfully completed"
    first = get(fake, f"/v1/fine_tuning/jobs/{job['id']}/events", params={"limit": 2}).json()
    assert first["has_more"] is True and [e["id"] for e in first["data"]] == [e["id"] for e in events[:2]]
    rest = get(fake, f"/v1/fine_tuning/jobs/{job['id']}/events", params={"after": events[1]["id"]}).json()
    assert [e["id"] for e in rest["data"]] == [e["id"] for e in events[2:]]


def test_update_job_status_change_adds_an_event(fake):
    job = fake.add_job()
    fake.update_job(job["id"], status="cancelled")
    events = get(fake, f"/v1/fine_tuning/jobs/{job['id']}/events").json()["data"]
    assert events[-1]["message"] == "Fine-tuning job cancelled" and events[-1]["level"] == "warn"


# ---------------------------------------------------------------- list endpoint


def test_list_endpoint_honours_limit_and_after(fake):
    ids = [fake.add_job()["id"] for _ in range(5)]
    newest_first = list(reversed(ids))
    page = get(fake, "/v1/fine_tuning/jobs").json()
    assert page["object"] == "list" and page["has_more"] is False
    assert [j["id"] for j in page["data"]] == newest_first
    assert all(j["object"] == "fine_tuning.job" for j in page["data"])

    first = get(fake, "/v1/fine_tuning/jobs", params={"limit": 2}).json()
    assert [j["id"] for j in first["data"]] == newest_first[:2] and first["has_more"] is True
    second = get(fake, "/v1/fine_tuning/jobs", params={"limit": 2, "after": newest_first[1]}).json()
    assert [j["id"] for j in second["data"]] == newest_first[2:4] and second["has_more"] is True
    last = get(fake, "/v1/fine_tuning/jobs", params={"limit": 2, "after": newest_first[3]}).json()
    assert [j["id"] for j in last["data"]] == newest_first[4:] and last["has_more"] is False


def test_list_endpoint_rejects_a_bad_limit_with_422(fake):
    response = get(fake, "/v1/fine_tuning/jobs", params={"limit": "lots"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "limit"]


def test_list_shows_only_the_jobs_a_token_can_see(fake):
    fake.add_token("other")
    shared = fake.add_job()["id"]
    mine = fake.add_job(token=TOKEN)["id"]
    theirs = fake.add_job(token="other")["id"]
    assert {j["id"] for j in get(fake, "/v1/fine_tuning/jobs").json()["data"]} == {shared, mine}
    assert {j["id"] for j in get(fake, "/v1/fine_tuning/jobs", token="other").json()["data"]} == {shared, theirs}
    assert get_job(fake, theirs).status_code == 404
    assert get_job(fake, theirs, token="other").status_code == 200


# ---------------------------------------------------------------- auth and routing


def test_it_rejects_missing_unknown_and_revoked_tokens(fake):
    job = fake.add_job()
    assert get_job(fake, job["id"], token=None).status_code == 401
    unknown = get_job(fake, job["id"], token="nope")
    assert unknown.status_code == 401 and isinstance(unknown.json()["detail"], str)
    fake.add_token("temp")
    assert get_job(fake, job["id"], token="temp").status_code == 200
    fake.revoke_token("temp")
    revoked = get_job(fake, job["id"], token="temp")
    assert revoked.status_code == 401 and revoked.headers["Content-Type"] == "application/json"
    assert get_job(fake, job["id"]).status_code == 200


@pytest.mark.parametrize(
    "job_id",
    ["ftjob-" + "0" * 32, "not-a-job", "ftjob-abc%2F..%2Fevents", "%2F", "%E2%9C%93", "%ZZ", "ftjob-x%00y"],
)
def test_unknown_or_malformed_job_id_is_404(fake, job_id):
    response = get_job(fake, job_id)
    assert response.status_code == 404
    assert response.json() == {"detail": "Fine-tuning job not found"}


def test_encoded_path_characters_are_decoded(fake):
    fake.add_job("ftjob-a/b")
    response = get(fake, "/v1/fine_tuning/jobs/ftjob-a%2Fb")
    assert response.status_code == 200 and response.json()["id"] == "ftjob-a/b"
    assert fake.calls[-1].job_id == "ftjob-a/b" and fake.calls[-1].path == "/v1/fine_tuning/jobs/ftjob-a%2Fb"


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/v1/models",
        "/v1/fine_tuning",
        "/v1/fine_tuning/jobs/{id}/checkpoints/x",
        "/v1/fine_tuning/jobs/{id}/events/x",
    ],
)
def test_unknown_paths_are_404_json(fake, path):
    job = fake.add_job()
    response = get(fake, path.format(id=job["id"]))
    assert response.status_code == 404
    assert response.headers["Content-Type"] == "application/json"
    assert "detail" in response.json()


def test_other_methods_are_404_json(fake):
    job = fake.add_job()
    response = requests.post(f"{fake.url}/v1/fine_tuning/jobs/{job['id']}/pause", headers=AUTH, json={}, timeout=5)
    assert response.status_code == 404 and "detail" in response.json()


# ---------------------------------------------------------------- scripted failures


@pytest.mark.parametrize(
    ("kind", "status", "detail_type"),
    [
        ("401", 401, str),
        ("403", 403, str),
        ("404", 404, str),
        ("422", 422, list),
        ("429", 429, str),
        ("500", 500, str),
        ("503", 503, str),
    ],
)
def test_fail_next_json_error_kinds(fake, kind, status, detail_type):
    job = fake.add_job()
    fake.fail_next(kind)
    response = get_job(fake, job["id"])
    assert response.status_code == status
    assert response.headers["Content-Type"] == "application/json"
    assert isinstance(response.json()["detail"], detail_type)
    assert "Retry-After" not in response.headers
    assert get_job(fake, job["id"]).status_code == 200  # only the next request fails


def test_fail_next_422_is_an_http_validation_error(fake):
    fake.fail_next("422")
    detail = get_job(fake, "whatever").json()["detail"]
    assert detail == [{"loc": ["path", "job_id"], "msg": detail[0]["msg"], "type": "value_error"}]


@pytest.mark.parametrize("kind", ["502", "504"])
def test_fail_next_gateway_kinds_answer_an_html_page(fake, kind):
    fake.fail_next(kind)
    response = get(fake, "/v1/fine_tuning/jobs")
    assert response.status_code == int(kind)
    assert response.headers["Content-Type"].startswith("text/html")
    assert "<html>" in response.text and "nginx" in response.text


def test_rate_limit_carries_retry_after_when_given(fake):
    fake.fail_next("429", retry_after=7)
    response = get(fake, "/v1/fine_tuning/jobs")
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"
    assert response.json() == {"detail": "Rate limit exceeded"}


def test_fail_next_timeout_delays_the_normal_answer(fake):
    job = fake.add_job()
    # The answer is held back far longer than the client waits (however slow the machine) ...
    fake.fail_next("timeout", delay=5)
    with pytest.raises(requests.exceptions.ReadTimeout):
        get_job(fake, job["id"], timeout=0.2)
    # ... and a client that waits long enough gets the normal answer, no sooner than the delay.
    fake.fail_next("timeout", delay=0.2)
    started = time.monotonic()
    response = get_job(fake, job["id"], timeout=30)
    assert response.status_code == 200 and response.json()["id"] == job["id"]
    assert time.monotonic() - started >= 0.2


def test_fail_next_html_is_a_200_html_page(fake):
    fake.fail_next("html")
    response = get(fake, "/v1/fine_tuning/jobs")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    assert "<html>" in response.text and "gateway" in response.text.lower()


def test_fail_next_not_json_is_invalid_json_labelled_json(fake):
    fake.fail_next("not_json")
    response = get(fake, "/v1/fine_tuning/jobs")
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/json"
    with pytest.raises(ValueError):
        response.json()


def test_fail_next_wrong_shape_and_missing_fields_are_valid_json(fake):
    job = fake.add_job()
    fake.fail_next("wrong_shape")
    assert isinstance(get_job(fake, job["id"]).json(), list)
    fake.fail_next("missing_fields")
    body = get_job(fake, job["id"]).json()
    assert isinstance(body, dict) and "id" not in body and "status" not in body


def test_fail_next_reset_closes_the_connection_without_an_answer(fake):
    job = fake.add_job()
    fake.fail_next("reset")
    with pytest.raises(requests.exceptions.ConnectionError):
        get_job(fake, job["id"])
    assert fake.calls[-1].status == 0
    assert get_job(fake, job["id"]).status_code == 200


@pytest.mark.parametrize("kind", ["dribble_headers", "dribble_body"])
def test_fail_next_dribble_sends_the_normal_answer_a_byte_at_a_time(fake, kind):
    job = fake.add_job()
    # A byte every 0.1 s: each read waits a little, far less than the client's read timeout ...
    fake.fail_next(kind, delay=0.1, dribble_for=0.5)
    started = time.monotonic()
    response = get_job(fake, job["id"], timeout=5)
    # ... and after dribble_for the rest comes at once: the whole normal answer, late.
    assert response.status_code == 200 and response.json()["id"] == job["id"]
    assert time.monotonic() - started >= 0.5


def test_fail_next_dribble_headers_or_body_is_dribbled_from_there_on(fake):
    job = fake.add_job()
    request = (
        f"GET /v1/fine_tuning/jobs/{job['id']} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
    ).encode()
    status_line = b"HTTP/1.1 200 OK\r\n"
    host, port = fake.url.removeprefix("http://").split(":")
    for kind in ("dribble_headers", "dribble_body"):
        fake.fail_next(kind, delay=0.3, dribble_for=60)
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(request)
            received = sock.recv(65536)
            if kind == "dribble_headers":
                assert status_line.startswith(received) and len(received) < len(status_line)
            else:  # the status line and headers at once, then the body a byte at a time
                while b"\r\n\r\n" not in received:
                    received += sock.recv(65536)
                assert received.startswith(status_line)
                body = received.split(b"\r\n\r\n", 1)[1] or sock.recv(65536)
                assert len(body) < 20


@pytest.mark.parametrize("kind, length", [("huge", True), ("huge_chunked", False), ("huge_gzip", False)])
def test_fail_next_huge_sends_a_json_job_of_the_given_size(fake, kind, length):
    fake.fail_next(kind, size=300_000)
    response = get(fake, "/v1/fine_tuning/jobs/ftjob-any")
    assert response.status_code == 200
    assert ("Content-Length" in response.headers) is length
    assert len(response.content) == 300_000  # decoded, for the gzipped one
    assert response.json()["id"] == "ftjob-huge"
    if kind == "huge_gzip":
        assert response.headers["Content-Encoding"] == "gzip"
        assert response.raw.tell() < 300_000 // 100  # small on the wire


def test_fail_next_for_a_job_id_only_affects_that_job_and_honours_count(fake):
    target = fake.add_job()["id"]
    bystander = fake.add_job()["id"]
    fake.fail_next("500", job_id=target, count=2)
    assert get_job(fake, bystander).status_code == 200
    assert get(fake, "/v1/fine_tuning/jobs").status_code == 200
    assert [get_job(fake, target).status_code for _ in range(3)] == [500, 500, 200]


def test_fail_next_rules_apply_in_order(fake):
    fake.fail_next("503")
    fake.fail_next("429", retry_after=1)
    assert [get(fake, "/v1/fine_tuning/jobs").status_code for _ in range(3)] == [503, 429, 200]


def test_every_fail_kind_is_accepted_and_unknown_kinds_are_rejected(fake):
    for kind in FAIL_KINDS:
        fake.fail_next(kind, job_id="never-requested")
    with pytest.raises(ValueError):
        fake.fail_next("418")


def test_set_down_answers_503_html_until_back_up(fake):
    job = fake.add_job()
    fake.set_down(True)
    response = get_job(fake, job["id"])
    assert response.status_code == 503 and response.headers["Content-Type"].startswith("text/html")
    assert get_job(fake, job["id"], token="nope").status_code == 503
    fake.set_down(False)
    assert get_job(fake, job["id"]).status_code == 200


# ---------------------------------------------------------------- call log


def test_calls_are_recorded_in_order(fake):
    job = fake.add_job()
    before = time.monotonic()
    get_job(fake, job["id"])
    get(fake, "/v1/fine_tuning/jobs", params={"limit": 3, "ai_project_id": "proj"})
    get_job(fake, job["id"], token="bad")
    get(fake, f"/v1/fine_tuning/jobs/{job['id']}/events")
    calls = fake.calls
    assert all(isinstance(c, Call) for c in calls)
    assert [(c.path, c.status) for c in calls] == [
        (f"/v1/fine_tuning/jobs/{job['id']}", 200),
        ("/v1/fine_tuning/jobs", 200),
        (f"/v1/fine_tuning/jobs/{job['id']}", 401),
        (f"/v1/fine_tuning/jobs/{job['id']}/events", 200),
    ]
    assert calls[0].method == "GET" and calls[0].token == TOKEN and calls[0].query == {}
    assert calls[1].query == {"limit": "3", "ai_project_id": "proj"} and calls[1].job_id is None
    assert calls[2].token == "bad"
    assert before <= calls[0].at <= calls[1].at <= calls[2].at <= calls[3].at <= time.monotonic()
    assert fake.calls_for(job["id"]) == [calls[0], calls[2]]  # a refresh's own calls…
    assert fake.calls_for(job["id"], training_log=True) == [calls[0], calls[2], calls[3]]  # …and its log
    with pytest.raises(AttributeError):
        calls[0].status = 500  # frozen
    fake.reset_calls()
    assert fake.calls == [] and fake.calls_for(job["id"]) == []


def test_it_handles_concurrent_requests(fake):
    job = fake.add_job(total_steps=1000, steps_per_call=1)
    statuses: list[int] = []

    def worker():
        for _ in range(5):
            statuses.append(get_job(fake, job["id"]).status_code)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200] * 40
    assert fake.get_job(job["id"])["trained_steps"] == 40
    assert len(fake.calls_for(job["id"])) == 40


# ---------------------------------------------------------------- checkpoints


def test_checkpoints_are_listed_newest_first_with_their_ends_and_pagination(fake):
    job = fake.add_job(total_steps=300, trained_steps=100)
    first = fake.add_checkpoint(job["id"])
    fake.advance(job["id"], 100)
    second = fake.add_checkpoint(job["id"], metrics={"train_loss": 0.5})
    third = fake.add_checkpoint(job["id"], step_number=300)
    assert (first["step_number"], second["step_number"], third["step_number"]) == (100, 200, 300)
    assert second["metrics"]["train_loss"] == 0.5 and second["metrics"]["step"] == 200

    page = get(fake, f"/v1/fine_tuning/jobs/{job['id']}/checkpoints").json()
    assert [c["id"] for c in page["data"]] == [third["id"], second["id"], first["id"]]
    assert (page["first_id"], page["last_id"], page["has_more"]) == (third["id"], first["id"], False)
    head = get(fake, f"/v1/fine_tuning/jobs/{job['id']}/checkpoints", params={"limit": 2}).json()
    assert [c["id"] for c in head["data"]] == [third["id"], second["id"]] and head["has_more"] is True
    tail = get(fake, f"/v1/fine_tuning/jobs/{job['id']}/checkpoints", params={"after": second["id"]}).json()
    assert [c["id"] for c in tail["data"]] == [first["id"]] and tail["has_more"] is False
    empty = get(fake, f"/v1/fine_tuning/jobs/{fake.add_job()['id']}/checkpoints").json()
    assert empty == {"object": "list", "data": [], "first_id": None, "last_id": None, "has_more": False}


def test_a_series_of_checkpoints_is_written_an_epoch_apart_with_exactly_the_metrics_given(fake):
    job = fake.add_job(total_steps=1000, trained_steps=0)  # 10 epochs of 100 steps
    made = fake.add_checkpoints(job["id"], [OVERFITTING[0], {"train_loss": None}, DIVERGING[2]])
    assert [c["step_number"] for c in made] == [100, 200, 300]
    assert fake.get_job(job["id"])["trained_steps"] == 300
    assert made[1]["metrics"] == {"step": 200, "train_loss": None}  # no defaults mixed in
    served = get(fake, f"/v1/fine_tuning/jobs/{job['id']}/checkpoints").json()["data"]
    assert [c["id"] for c in served] == [c["id"] for c in reversed(made)]
    assert served[0]["metrics"]["train_loss"] != served[0]["metrics"]["train_loss"]  # NaN on the wire
    assert served[2]["metrics"] == {"step": 100, **OVERFITTING[0]}
    assert [c["step_number"] for c in fake.add_checkpoints(job["id"], [{}], steps_apart=5)] == [305]


def test_a_new_pace_moves_the_job_and_its_estimated_finish_from_where_it_is(fake, clock):
    job = fake.add_job(total_steps=10_000, steps_per_second=10)
    clock.advance(60)
    assert fake.get_job(job["id"])["trained_steps"] == 600
    before = fake.get_job(job["id"])["estimated_finish"]
    fake.set_pace(job["id"], 2)
    clock.advance(60)
    moved = fake.get_job(job["id"])
    assert moved["trained_steps"] == 720
    assert moved["estimated_finish"] > before + 60 * 60  # 9,280 steps at 2 a second
    fake.set_pace(job["id"], 0)  # stalled: no progress, the estimate stays where it was
    clock.advance(600)
    assert fake.get_job(job["id"])["trained_steps"] == 720
    assert fake.get_job(job["id"])["estimated_finish"] == moved["estimated_finish"]


def test_the_estimated_finish_is_set_from_the_fakes_own_now(clock):
    with FakeTokenFactory(clock=clock, epoch=1_800_000_000) as fake:
        job = fake.add_job(total_steps=100)
        assert fake.get_job(job["id"])["created_at"] == 1_800_000_000
        clock.advance(300)
        assert fake.set_estimated_finish(job["id"], in_seconds=3600)["estimated_finish"] == 1_800_000_000 + 300 + 3600


# ---------------------------------------------------------------- held to the schema
# The job body against the published OpenAPI schema; the list, events and checkpoints shapes
# against small JSON schemas written from the notes in /work/shared/api/README.md.


def _api_notes() -> Path:
    """The shared API notes: $FTDASH_API_NOTES, else the nearest ``shared/api`` beside a parent of
    this checkout (``../shared/api`` from the repository, also from a git worktree elsewhere)."""
    if os.environ.get("FTDASH_API_NOTES"):
        return Path(os.environ["FTDASH_API_NOTES"])
    here = Path(__file__).resolve()
    candidates = [parent / "shared" / "api" for parent in here.parents] + [Path("/work/shared/api")]
    return next((path for path in candidates if path.is_dir()), candidates[1])


OPENAPI = _api_notes() / "get-fine-tuning-job.openapi.yaml"

UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def _list_of(item: dict, **extra_properties: dict) -> dict:
    return {
        "type": "object",
        "required": ["object", "data", "has_more", *extra_properties],
        "properties": {
            "object": {"const": "list"},
            "data": {"type": "array", "items": item},
            "has_more": {"type": "boolean"},
            **extra_properties,
        },
    }


EVENT_SCHEMA = {
    "type": "object",
    "required": ["id", "created_at", "level", "message"],
    "properties": {
        "id": {"type": "string", "minLength": 1},
        "created_at": {"type": "integer"},
        "level": {"enum": ["info", "warn", "error"]},
        "message": {"type": "string"},
    },
}
METRIC_NAMES = [
    "step",
    "train_loss",
    "train_mean_token_accuracy",
    "valid_loss",
    "valid_mean_token_accuracy",
    "full_valid_loss",
    "full_valid_mean_token_accuracy",
]
CHECKPOINT_SCHEMA = {
    "type": "object",
    "required": [
        "id",
        "created_at",
        "step_number",
        "fine_tuned_model_checkpoint",
        "fine_tuning_job_id",
        "result_files",
        "metrics",
    ],
    "properties": {
        "id": {"type": "string", "pattern": f"^ftckpt_{UUID}$"},
        "created_at": {"type": "integer"},
        "step_number": {"type": "integer", "minimum": 0},
        "fine_tuned_model_checkpoint": {"type": "string"},
        "fine_tuning_job_id": {"type": "string", "pattern": "^ftjob-"},
        "result_files": {"type": "array", "items": {"type": "string", "pattern": f"^file-{UUID}$"}},
        "metrics": {
            "type": "object",
            "required": METRIC_NAMES,
            "properties": {name: {"type": ["number", "null"]} for name in METRIC_NAMES},
        },
    },
}
NULLABLE_ID = {"type": ["string", "null"]}


@pytest.fixture(scope="module")
def schemas():
    import jsonschema
    import yaml

    document = yaml.safe_load(OPENAPI.read_text())
    # OpenAPI 3.1 schemas are JSON Schema 2020-12: point a validator at FineTuningJob inside the
    # whole document, so its "#/components/schemas/..." references resolve.
    job_schema = {**document, "$ref": "#/components/schemas/FineTuningJob"}
    job_list_schema = {**document, **_list_of({"$ref": "#/components/schemas/FineTuningJob"})}
    validator = jsonschema.Draft202012Validator
    for schema in (job_schema, job_list_schema, EVENT_SCHEMA, CHECKPOINT_SCHEMA):
        validator.check_schema(schema)
    return {
        "job": validator(job_schema),
        "jobs": validator(job_list_schema),
        "events": validator(_list_of(EVENT_SCHEMA)),
        "checkpoints": validator(_list_of(CHECKPOINT_SCHEMA, first_id=NULLABLE_ID, last_id=NULLABLE_ID)),
    }


def _errors(validator, instance) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(instance)]


def test_the_schema_validator_is_not_vacuous(schemas):
    """A check that passes everything proves nothing: broken bodies must be caught."""
    good = FakeTokenFactory().add_job(total_steps=10)
    assert _errors(schemas["job"], good) == []
    for broken in (
        {**good, "status": "paused"},
        {**good, "created_at": "yesterday"},
        {k: v for k, v in good.items() if k != "training_file"},
        {**good, "method": {"type": "supervised"}},
        [good],
    ):
        assert _errors(schemas["job"], broken), broken
    assert _errors(schemas["events"], {"object": "list", "data": [{"id": "e"}], "has_more": False})
    assert _errors(schemas["checkpoints"], {"object": "list", "data": [], "has_more": False})  # no first_id


def test_every_job_body_the_fake_serves_matches_the_openapi_schema(fake, clock, schemas):
    from tests.support.fake_tokenfactory import seed_demo_jobs
    from tests.support.payloads import observed_job

    seeded = seed_demo_jobs(fake, token=TOKEN)
    error = {"code": "oom", "message": "CUDA out of memory", "param": None}
    made = [
        fake.add_job(),
        fake.add_job(**{k: v for k, v in observed_job().items() if k != "id"}),
        fake.add_job(total_steps=4, steps_per_call=2),
        fake.add_job(total_steps=4, steps_per_call=2, fail_with=error),
        fake.add_job(status="validating_files"),
        fake.add_job(status="failed"),
        fake.add_job(status="cancelled"),
        fake.add_job(queued_for_seconds=10, steps_per_second=1, total_steps=20),
    ]
    ids = list(seeded.values()) + [job["id"] for job in made]
    bodies = []
    for _ in range(3):  # as the jobs move: running, then finished
        bodies += [get_job(fake, job_id).json() for job_id in ids]
        clock.advance(600)
    fake.update_job(made[0]["id"], status="cancelled")
    bodies.append(get_job(fake, made[0]["id"]).json())
    assert {body["status"] for body in bodies} >= {
        "queued",
        "running",
        "succeeded",
        "failed",
        "cancelled",
        "validating_files",
    }
    for body in bodies:
        assert _errors(schemas["job"], body) == [], body


def test_list_events_and_checkpoints_pages_match_the_documented_shapes(fake, schemas):
    from tests.support.fake_tokenfactory import seed_demo_jobs

    seed_demo_jobs(fake)
    job = fake.add_job(total_steps=20, steps_per_call=10)
    fake.add_checkpoint(job["id"])
    get_job(fake, job["id"])
    fake.add_checkpoint(job["id"])
    for params in ({}, {"limit": 2}):
        jobs = get(fake, "/v1/fine_tuning/jobs", params=params).json()
        assert _errors(schemas["jobs"], jobs) == [], jobs
        events = get(fake, f"/v1/fine_tuning/jobs/{job['id']}/events", params=params).json()
        assert _errors(schemas["events"], events) == [], events
        checkpoints = get(fake, f"/v1/fine_tuning/jobs/{job['id']}/checkpoints", params=params).json()
        assert _errors(schemas["checkpoints"], checkpoints) == [], checkpoints
    assert len(checkpoints["data"]) == 2 and len(jobs["data"]) == 2 and jobs["has_more"] is True


# ---------------------------------------------------------------- keep-alive


def test_it_keeps_connections_alive_and_counts_them(fake):
    job = fake.add_job()
    with requests.Session() as session:
        responses = [
            session.get(f"{fake.url}/v1/fine_tuning/jobs/{job['id']}", headers=AUTH, timeout=10) for _ in range(4)
        ]
    assert all(r.status_code == 200 and r.raw.version == 11 for r in responses)
    assert "close" not in responses[-1].headers.get("Connection", "")
    assert fake.connections_accepted == 1
    requests.get(f"{fake.url}/v1/fine_tuning/jobs/{job['id']}", headers=AUTH, timeout=10)  # no session: a new one
    assert fake.connections_accepted == 2


def test_it_can_close_idle_kept_alive_connections(fake):
    job = fake.add_job()
    with requests.Session() as session:
        assert session.get(f"{fake.url}/v1/fine_tuning/jobs/{job['id']}", headers=AUTH, timeout=10).ok
        assert wait_for(lambda: fake.close_idle_connections() == 1, what="the idle connection to be closed")
        assert session.get(f"{fake.url}/v1/fine_tuning/jobs/{job['id']}", headers=AUTH, timeout=10).ok
    assert fake.connections_accepted == 2


def test_a_stopped_fake_answers_nothing_even_on_a_kept_alive_connection():
    fake = FakeTokenFactory().start()
    fake.add_token(TOKEN)
    with requests.Session() as session:
        assert session.get(f"{fake.url}/v1/fine_tuning/jobs", headers=AUTH, timeout=10).ok
        url = fake.url
        fake.stop()
        with pytest.raises(requests.exceptions.ConnectionError):
            session.get(f"{url}/v1/fine_tuning/jobs", headers=AUTH, timeout=10)


# ---------------------------------------------------------------- explicit control of in-flight calls


def test_hold_next_keeps_a_call_in_flight_until_released(fake):
    job = fake.add_job(total_steps=100, steps_per_call=1)
    release = fake.hold_next(job_id=job["id"])
    answers = []
    caller = threading.Thread(target=lambda: answers.append(get_job(fake, job["id"], timeout=60)))
    caller.start()
    wait_for(lambda: fake.calls_for(job["id"]), what="the held call to arrive")
    assert get_job(fake, fake.add_job()["id"]).status_code == 200  # other calls are answered meanwhile
    assert answers == [] and caller.is_alive()
    release.set()
    caller.join(timeout=30)
    assert [a.json()["trained_steps"] for a in answers] == [1]
    assert fake.max_in_flight == 2


def test_max_in_flight_counts_concurrent_requests(fake):
    release, second = fake.hold_next(), fake.hold_next()
    callers = [
        threading.Thread(target=get, args=(fake, "/v1/fine_tuning/jobs"), kwargs={"timeout": 60}) for _ in range(2)
    ]
    for caller in callers:
        caller.start()
    wait_for(lambda: fake.max_in_flight == 2, what="both calls in flight")
    release.set()
    # Once the released call has ended, only the other (still held) one is in flight.
    wait_for(lambda: (fake.reset_calls(), fake.max_in_flight)[1] == 1, what="the released call to end")
    second.set()
    for caller in callers:
        caller.join(timeout=30)


# ---------------------------------------------------------------- creating jobs (the OpenAI SDK's create)


def test_post_creates_a_job_that_only_its_key_sees_and_progresses_as_set(fake):
    fake.set_create_options(steps_per_call=50)
    fake.add_token("other-key")
    headers = {"Authorization": f"Bearer {TOKEN}"}
    body = {
        "model": "Qwen/Qwen3-4B",
        "training_file": "file-abc",
        "suffix": "nightly",
        "hyperparameters": {"n_epochs": 2},
    }
    created = requests.post(fake.url + "/v1/fine_tuning/jobs", json=body, headers=headers, timeout=5)
    assert created.status_code == 200
    job = created.json()
    assert JOB_ID_RE.match(job["id"]) and job["suffix"] == "nightly" and job["training_file"] == "file-abc"
    assert job["status"] == "running" and job["total_steps"] == 100
    assert get_job(fake, job["id"]).json()["trained_steps"] == 50
    assert get_job(fake, job["id"]).json()["status"] == "succeeded"
    assert get_job(fake, job["id"], token="other-key").status_code == 404
    missing = requests.post(fake.url + "/v1/fine_tuning/jobs", json={"model": "m"}, headers=headers, timeout=5)
    assert missing.status_code == 422 and missing.json()["detail"][0]["loc"] == ["body", "training_file"]
