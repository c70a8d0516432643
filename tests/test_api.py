"""The JSON API at /api/v1/ (issue 21, section 1): access tokens, every endpoint and its errors,
scoping to the caller's workspaces and roles, ETag and 304, cursor pagination, the rate limit."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.test import Client
from django.utils import timezone

from jobs import services
from jobs.models import AccessToken, AuditEvent, JobAlert, Membership, TrackedJob, TrainingCheckpoint, TrainingEvent
from tests.support.access_tokens import ApiClient, access_token
from tests.support.accounts import ALICE_SECRET
from tests.support.payloads import new_job_id

JOBS = "/api/v1/jobs"


@pytest.fixture
def api(alice) -> ApiClient:
    return ApiClient(access_token(alice))


@pytest.fixture
def reader(alice) -> ApiClient:
    return ApiClient(access_token(alice, scope=AccessToken.Scope.READ))


def _labelled(make_job, label: str, **fields) -> TrackedJob:
    job = make_job(**fields)
    job.label = label
    job.save(update_fields=["label"])
    return job


def _error(response, status: int) -> str:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    return response.json()["message"]


# --- Who may call ------------------------------------------------------------------------------


def test_a_call_without_a_token_is_a_401_saying_how_to_send_one(db):
    response = ApiClient(None).get(JOBS)
    assert "Authorization: Bearer" in _error(response, 401)
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("header", ["Bearer ftd_not-a-real-token", "Bearer nonsense", "Basic YWxpY2U6cHc=", "Bearer "])
def test_a_wrong_token_is_a_401(db, header):
    response = ApiClient(None).get(JOBS, headers={"Authorization": header})
    _error(response, 401)


def test_an_expired_token_is_a_401_that_says_so(alice):
    secret = access_token(alice, days=30)
    AccessToken.objects.update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    assert "expired" in _error(ApiClient(secret).get(JOBS), 401)


def test_a_revoked_token_is_a_401_that_says_so(alice, alice_client):
    secret = access_token(alice)
    token = AccessToken.objects.get()
    assert ApiClient(secret).get(JOBS).status_code == 200
    response = alice_client.post(f"/account/access-tokens/{token.pk}/revoke/")
    assert response.status_code == 302
    assert "revoked" in _error(ApiClient(secret).get(JOBS), 401)


def test_a_session_cookie_is_not_accepted(alice_client, make_job):
    make_job()
    _error(alice_client.get(JOBS), 401)


def test_only_the_hash_of_a_secret_is_stored_and_it_has_256_random_bits(alice):
    secret = access_token(alice)
    token = AccessToken.objects.get()
    assert secret.startswith("ftd_") and len(secret) >= 4 + 43
    assert secret not in token.secret_hash and token.secret_hash == AccessToken.hash_secret(secret)


def test_a_token_notes_when_it_was_last_used(alice, api):
    assert AccessToken.objects.get().last_used_at is None
    api.get(JOBS)
    assert AccessToken.objects.get().last_used_at is not None


def test_calls_past_the_per_token_limit_get_429_with_retry_after(alice, settings):
    settings.FTDASH_API_REQUESTS_PER_MINUTE = 3
    api, other = ApiClient(access_token(alice)), ApiClient(access_token(alice, name="other"))
    assert [api.get(JOBS).status_code for _ in range(3)] == [200, 200, 200]
    response = api.get(JOBS)
    assert "at most 3 a minute" in _error(response, 429)
    assert 1 <= int(response["Retry-After"]) <= 60
    assert other.get(JOBS).status_code == 200  # per token


def test_csrf_does_not_apply_to_token_calls(alice, alice_token, fake_api):
    remote = fake_api.add_job()
    api = ApiClient(access_token(alice), enforce_csrf_checks=True)
    response = api.post(JOBS, {"job_id": remote["id"]})
    assert response.status_code == 201, response.content


# --- Listing -----------------------------------------------------------------------------------


def test_the_list_holds_the_callers_jobs_only(alice, charlie, make_job, api):
    mine = make_job()
    assert [j["job_id"] for j in api.get(JOBS).json()["results"]] == [mine.job_id]
    assert ApiClient(access_token(charlie)).get(JOBS).json()["results"] == []


def test_the_list_filters_by_workspace_status_and_search(alice, team, alice_token, make_job, api):
    personal = _labelled(make_job, "baseline", status="running")
    in_team = _labelled(make_job, "sweep-7", workspace=team, status="succeeded")
    ids = lambda response: [j["job_id"] for j in response.json()["results"]]  # noqa: E731
    assert ids(api.get(JOBS, workspace=team.pk)) == [in_team.job_id]
    assert ids(api.get(JOBS, status="running")) == [personal.job_id]
    assert ids(api.get(JOBS, search="SWEEP")) == [in_team.job_id]
    assert ids(api.get(JOBS, status="failed")) == []


def test_listing_a_workspace_the_caller_is_not_in_is_a_404(alice, charlie, api):
    assert _error(api.get(JOBS, workspace=charlie.personal_workspace.pk), 404)


def test_cursor_pagination_walks_every_job_once_newest_first(alice, make_job, api):
    made = [make_job() for _ in range(5)]
    seen, url = [], f"{JOBS}?page_size=2"
    while url:
        page = api.client.get(url, headers=api.headers).json()
        assert len(page["results"]) <= 2
        seen += [j["job_id"] for j in page["results"]]
        url = page["next"]
    assert seen == [job.job_id for job in reversed(made)]


@pytest.mark.parametrize("cursor", ["%%%", "cD1hYmM=", "bz05OTk5OTk="])
def test_a_made_up_cursor_is_a_422(alice, make_job, api, cursor):
    make_job()
    assert "cursor" in _error(api.get(JOBS, cursor=cursor), 422)


# --- One job -----------------------------------------------------------------------------------


def test_a_job_answer_has_progress_eta_cost_alerts_links_and_snapshot_age(alice, make_job, api):
    finish = timezone.now() + dt.timedelta(minutes=10)
    job = _labelled(make_job, "nightly", trained_steps=25, total_steps=100, estimated_finish=int(finish.timestamp()))
    JobAlert.objects.create(job=job, rule=JobAlert.Rule.SLOW, message="Training slowed down by 60%.")
    JobAlert.objects.create(job=job, rule=JobAlert.Rule.DIVERGED, message="old", cleared_at=timezone.now())
    # Stamped as jobs.sync.health stamps it whenever an alert opens (pages read alerts only then).
    TrackedJob.objects.filter(pk=job.pk).update(alerts_changed_at=timezone.now())
    response = api.get(f"{JOBS}/{job.job_id}")
    assert response.status_code == 200
    body = response.json()
    assert body["label"] == "nightly" and body["status"] == "running"
    assert body["progress"]["percent"] == 25 and body["progress"]["total_steps"] == 100
    assert 500 <= body["eta_seconds"] <= 600
    assert body["cost"]["currency"] == "USD" and body["cost"]["summary"]
    assert [a["rule"] for a in body["alerts"]] == ["slow"]
    assert body["links"]["page"].endswith(f"/jobs/{job.pk}/")
    assert body["links"]["events"].endswith(f"/api/v1/jobs/{job.job_id}/events?workspace={job.workspace_id}")
    assert body["workspace"] == {"id": job.workspace_id, "name": job.workspace.name}
    assert 0 <= body["snapshot"]["age_seconds"] < 60
    assert body["method"]["hyperparameters"]["batch_size"] == 32


def test_a_job_the_caller_may_not_see_is_a_404(alice, charlie, make_job):
    job = make_job()
    assert _error(ApiClient(access_token(charlie)).get(f"{JOBS}/{job.job_id}"), 404)
    assert _error(ApiClient(access_token(charlie)).delete(f"{JOBS}/{job.job_id}"), 404)


def test_a_job_tracked_in_several_of_the_callers_workspaces_needs_a_workspace(alice, team, make_job, api):
    job_id = new_job_id()
    _labelled(make_job, "personal", id=job_id)
    _labelled(make_job, "team copy", id=job_id, workspace=team)
    message = _error(api.get(f"{JOBS}/{job_id}"), 409)
    assert "workspace" in message and team.name in message
    assert api.get(f"{JOBS}/{job_id}", workspace=team.pk).json()["label"] == "team copy"
    assert _error(api.delete(f"{JOBS}/{job_id}"), 409)


def test_etag_and_304_let_a_script_wait_cheaply(alice, make_job, api):
    job = make_job(trained_steps=10, total_steps=100)
    first = api.get(f"{JOBS}/{job.job_id}")
    tag = first["ETag"]
    again = api.get(f"{JOBS}/{job.job_id}", headers={"If-None-Match": tag})
    assert again.status_code == 304 and again.content == b"" and again["ETag"] == tag
    TrackedJob.objects.filter(pk=job.pk).update(snapshot={**job.snapshot, "trained_steps": 50})
    changed = api.get(f"{JOBS}/{job.job_id}", headers={"If-None-Match": tag})
    assert changed.status_code == 200 and changed["ETag"] != tag
    assert changed.json()["progress"]["trained_steps"] == 50


def test_events_and_checkpoints_of_a_job(alice, make_job, api):
    job = make_job()
    for n in range(3):
        TrainingEvent.objects.create(job=job, upstream_id=f"ev-{n}", level="info", message=f"Step {n}")
    TrainingCheckpoint.objects.create(job=job, upstream_id="ck-2", step=20, metrics={"train_loss": 0.5})
    TrainingCheckpoint.objects.create(job=job, upstream_id="ck-1", step=10, metrics={"train_loss": 0.9})
    events = api.get(f"{JOBS}/{job.job_id}/events", page_size=2).json()
    assert [e["message"] for e in events["results"]] == ["Step 0", "Step 1"]
    rest = api.client.get(events["next"], headers=api.headers).json()
    assert [e["message"] for e in rest["results"]] == ["Step 2"]
    checkpoints = api.get(f"{JOBS}/{job.job_id}/checkpoints")
    assert [c["step"] for c in checkpoints.json()["checkpoints"]] == [10, 20]
    assert (
        api.get(f"{JOBS}/{job.job_id}/checkpoints", headers={"If-None-Match": checkpoints["ETag"]}).status_code == 304
    )


def test_a_malformed_job_id_is_a_422(alice, api):
    _error(api.get(f"{JOBS}/not-a-job"), 422)


# --- Tracking and stopping ---------------------------------------------------------------------


def test_post_tracks_a_job_as_the_form_does(alice, alice_token, fake_api, api):
    remote = fake_api.add_job(total_steps=100, trained_steps=5)
    response = api.post(JOBS, {"job_id": remote["id"], "label": "from my script"})
    assert response.status_code == 201, response.content
    assert response.json()["label"] == "from my script" and response.json()["progress"]["trained_steps"] == 5
    assert response["Location"].endswith(f"/api/v1/jobs/{remote['id']}?workspace={alice.personal_workspace.pk}")
    job = TrackedJob.objects.get(job_id=remote["id"])
    assert job.added_by == alice and job.token == alice_token
    assert AuditEvent.objects.filter(action="job.track", workspace=job.workspace).exists()
    assert "already tracked" in _error(api.post(JOBS, {"job_id": remote["id"]}), 409)


def test_post_answers_the_forms_errors_as_json(alice, alice_token, fake_api, api):
    invalid = api.post(JOBS, {"job_id": "nonsense"})
    assert "Job IDs start with “ftjob-”" in _error(invalid, 422)
    assert invalid.json()["errors"] == [{"location": "body.job_id", "message": invalid.json()["errors"][0]["message"]}]
    missing = new_job_id()
    assert missing in _error(api.post(JOBS, {"job_id": missing}), 404)  # Token Factory has no such job
    assert [e["location"] for e in api.post(JOBS, {"label": "no id"}).json()["errors"]] == ["body.job_id"]
    not_json = api.client.post(JOBS, "{not json", content_type="application/json", headers=api.headers)
    _error(not_json, 422)
    assert _error(api.post(JOBS, {"job_id": missing, "token": 999999}), 404)
    assert not TrackedJob.objects.exists()


def test_post_with_several_possible_tokens_asks_which(alice, alice_token, fake_api, api):
    services.token_create(workspace=alice.personal_workspace, user=alice, name="second", secret=ALICE_SECRET + "2")
    remote = fake_api.add_job()
    assert "say which" in _error(api.post(JOBS, {"job_id": remote["id"]}), 409)
    assert api.post(JOBS, {"job_id": remote["id"], "token": alice_token.pk}).status_code == 201


def test_a_read_only_token_cannot_write(alice, alice_token, fake_api, make_job, reader):
    remote = fake_api.add_job()
    assert "read-only" in _error(reader.post(JOBS, {"job_id": remote["id"]}), 403)
    job = make_job()
    assert "read-only" in _error(reader.delete(f"{JOBS}/{job.job_id}"), 403)
    assert not TrackedJob.objects.filter(job_id=remote["id"]).exists()
    assert TrackedJob.objects.filter(pk=job.pk).exists()


def test_a_viewer_cannot_track_or_stop_tracking(alice, charlie, team, alice_token, fake_api, make_job):
    Membership.objects.create(workspace=team, user=charlie, role=Membership.Role.VIEWER)
    viewer = ApiClient(access_token(charlie))
    job = make_job(workspace=team)
    assert viewer.get(f"{JOBS}/{job.job_id}").status_code == 200  # viewers read
    remote = fake_api.add_job()
    _error(viewer.post(JOBS, {"job_id": remote["id"], "workspace": team.pk}), 403)
    team_token = services.token_create(workspace=team, user=alice, name="team key", secret=ALICE_SECRET)
    _error(viewer.post(JOBS, {"job_id": remote["id"], "token": team_token.pk}), 403)
    _error(viewer.delete(f"{JOBS}/{job.job_id}"), 403)
    assert TrackedJob.objects.filter(pk=job.pk).exists()


def test_delete_stops_tracking(alice, make_job, api):
    job = make_job()
    response = api.delete(f"{JOBS}/{job.job_id}")
    assert response.status_code == 204 and response.content == b""
    assert not TrackedJob.objects.filter(pk=job.pk).exists()
    assert AuditEvent.objects.filter(action="job.remove").exists()
    _error(api.delete(f"{JOBS}/{job.job_id}"), 404)


# --- The schema and its docs page --------------------------------------------------------------


def test_the_openapi_schema_is_generated_and_the_docs_page_is_ours_without_a_script(db):
    client = Client()
    schema = client.get("/api/v1/openapi.json").json()
    assert schema["openapi"].startswith("3.")
    assert {
        "/api/v1/jobs",
        "/api/v1/jobs/{job_id}",
        "/api/v1/jobs/{job_id}/events",
        "/api/v1/jobs/{job_id}/checkpoints",
    } <= set(schema["paths"])
    page = client.get("/api/v1/docs")  # signed out: public, as Swagger UI was
    html = page.content.decode()
    assert page.status_code == 200 and page["Content-Type"].startswith("text/html")
    assert '<html lang="en">' in html and '<main id="main"' in html and "<h1>The ftdash JSON API</h1>" in html
    assert 'href="/api/v1/openapi.json"' in html
    assert "swagger" not in html.lower() and "cdn" not in html.lower()
    # No inline script: only the site's own script files.
    assert html.count("<script") == html.count("<script src=")
    assert "script-src 'self'" in page["Content-Security-Policy"]


# --- Unknown query parameters -------------------------------------------------------------------


def test_an_unknown_query_parameter_is_a_422_naming_what_the_endpoint_takes(api, make_job):
    make_job()
    response = api.get(JOBS, stauts="running")
    message = _error(response, 422)
    assert message == (
        "Unknown query parameter “stauts”: this endpoint takes workspace, status, search, page_size, cursor."
    )
    assert response.json()["errors"][0]["location"] == "query.stauts"
    # The ones it does take are still fine, and so is a script that sends none.
    assert api.get(JOBS, status="running").status_code == 200
    assert api.get(JOBS).status_code == 200


def test_a_nameless_query_parameter_is_refused_too(api):
    response = api.client.get(f"{JOBS}?=0", headers=api.headers)
    assert "Unknown query parameter “”" in _error(response, 422)


def test_each_endpoint_takes_its_own_query_parameters(api, make_job):
    job = make_job()
    one = f"{JOBS}/{job.job_id}"
    assert "this endpoint takes workspace." in _error(api.get(one, page_size="5"), 422)
    assert "takes workspace, page_size, cursor." in _error(api.get(f"{one}/events", status="x"), 422)
    assert api.get(f"{one}/events", page_size="5").status_code == 200
    assert "Unknown query parameters “a”, “b”" in _error(api.get(f"{one}/checkpoints", a="1", b="2"), 422)
    refused = api.client.post(
        f"{JOBS}?dry_run=1", {"job_id": new_job_id()}, content_type="application/json", headers=api.headers
    )
    assert "this endpoint takes no query parameters." in _error(refused, 422)
    assert api.client.delete(f"{one}?force=1", headers=api.headers).status_code == 422
    assert TrackedJob.objects.filter(pk=job.pk).exists()  # refused before anything happened


def test_the_token_is_checked_before_the_query(db):
    assert "Authorization: Bearer" in _error(ApiClient(None).get(JOBS, stauts="x"), 401)


# --- The Access tokens page --------------------------------------------------------------------


def test_the_access_tokens_page_shows_a_secret_once_and_audits_creation_and_revocation(alice, alice_client):
    page = alice_client.get("/account/access-tokens/")
    assert page.status_code == 200 and "Create access token" in page.content.decode()
    refused = alice_client.post("/account/access-tokens/", {"name": " ", "expiry": "30", "scope": "read"})
    assert refused.status_code == 422 and not AccessToken.objects.exists()
    made = alice_client.post("/account/access-tokens/", {"name": "ci", "expiry": "365", "scope": "write"})
    assert made.status_code == 200 and made["Cache-Control"] == "no-store"
    token = AccessToken.objects.get()
    secret = re.search(r'id="new-access-token">(ftd_[^<]+)<', made.content.decode()).group(1)
    assert token.secret_hash == AccessToken.hash_secret(secret) and token.can_write
    assert 364 <= (token.expires_at - timezone.now()).days <= 365
    assert secret not in alice_client.get("/account/access-tokens/").content.decode()
    trail = alice.personal_workspace.audit_events
    assert trail.filter(action="access_token.create", description__contains="“ci”").exists()
    alice_client.post(f"/account/access-tokens/{token.pk}/revoke/")
    assert trail.filter(action="access_token.revoke").exists()
    assert secret not in "".join(trail.values_list("description", flat=True))
