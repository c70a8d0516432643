from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from jobs import services
from jobs.models import TrackedJob
from tests.support.accounts import ALICE_SECRET


def test_it_asks_anonymous_visitors_to_sign_in(client, alice):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_it_explains_that_a_token_is_needed_first(alice_client):
    page = alice_client.get("/").content.decode()
    assert "needs a Token Factory API token" in page
    assert 'href="/tokens/"' in page
    assert "Track job" not in page


def test_it_explains_how_to_track_the_first_job(alice_client, alice_token):
    page = alice_client.get("/").content.decode()
    assert "No jobs tracked yet." in page
    assert "Track job" in page
    assert ">Job ID<" in page
    # A single token needs no choosing.
    assert '<select name="token"' not in page


def test_it_offers_a_token_choice_when_there_are_several(alice_client, alice, alice_workspace, alice_token):
    services.token_create(workspace=alice_workspace, user=alice, name="other", secret="sk-other-123456789")
    page = alice_client.get("/").content.decode()
    assert '<select name="token"' in page
    assert ">Token<" in page


def test_it_tracks_a_job_after_fetching_it(alice_client, alice_token, fake_api):
    job = fake_api.add_job(model="meta-llama/Llama-3.1-8B", suffix="support-bot", total_steps=200, trained_steps=50)
    response = alice_client.post("/jobs/track/", {"job_id": f"  {job['id']} ", "token": alice_token.pk, "label": "v2"})
    assert response.status_code == 302
    tracked = TrackedJob.objects.get(job_id=job["id"])
    assert tracked.label == "v2" and tracked.status == "running"
    page = alice_client.get("/").content.decode()
    assert f"Now tracking {job['id']}" in page
    assert "meta-llama/Llama-3.1-8B" in page and "support-bot" in page
    assert 'aria-valuenow="25"' in page
    assert re.search(r"Checked with Token Factory <time datetime=\"[^\"]+\" data-relative=\"ago\">0 s ago</time>", page)
    assert re.search(r"<time class=\"changed\" datetime=\"[^\"]+\" data-relative=\"unchanged\">no change since ", page)


@pytest.mark.parametrize("bad_id", ["../../v1/files", "ftjob-abc/../../x", "hello", "", "ftjob-%2e%2e"])
def test_it_refuses_malformed_job_ids_without_calling_the_api(alice_client, alice_token, fake_api, bad_id):
    response = alice_client.post("/jobs/track/", {"job_id": bad_id, "token": alice_token.pk})
    assert response.status_code == 422
    page = response.content.decode()
    assert "does not look like a fine-tuning job ID" in page or "This field is required" in page
    assert fake_api.calls == []
    assert not TrackedJob.objects.exists()


@pytest.mark.parametrize(
    ("failure", "message"),
    [
        ("404", "has no job"),
        ("401", "rejected this API token"),
        ("503", "unavailable right now"),
        ("timeout", "did not answer within"),
        ("html", "cannot read"),
    ],
)
def test_it_explains_why_a_job_could_not_be_tracked_and_saves_nothing(
    alice_client, alice_token, fake_api, settings, failure, message
):
    settings.FTDASH_API_READ_TIMEOUT = 0.3
    settings.FTDASH_API_RETRIES = 0
    job = fake_api.add_job()
    fake_api.fail_next(failure, delay=60)  # a "timeout" answer comes long after the 0.3 s read timeout
    response = alice_client.post("/jobs/track/", {"job_id": job["id"], "token": alice_token.pk})
    assert response.status_code == 422
    page = response.content.decode()
    assert message in page
    assert job["id"] in page  # what was typed is kept in the form
    assert not TrackedJob.objects.exists()
    assert ALICE_SECRET not in page


def test_it_refuses_to_track_the_same_job_twice(alice_client, alice_token, fake_api):
    job = fake_api.add_job()
    alice_client.post("/jobs/track/", {"job_id": job["id"], "token": alice_token.pk})
    response = alice_client.post("/jobs/track/", {"job_id": job["id"], "token": alice_token.pk})
    assert response.status_code == 422
    assert "already tracked" in response.content.decode()
    assert TrackedJob.objects.count() == 1


def test_it_refuses_another_workspaces_token(alice_client, charlie):
    from jobs.models import Workspace

    other = services.token_create(
        workspace=Workspace.objects.get(personal_for=charlie), user=charlie, name="c", secret="sk-charlie-123456"
    )
    response = alice_client.post("/jobs/track/", {"job_id": "ftjob-" + "a" * 32, "token": other.pk})
    assert response.status_code == 422
    assert not TrackedJob.objects.exists()


def test_a_running_card_polls_and_a_finished_card_does_not(alice_client, make_job):
    running = make_job(status="running")
    finished = make_job(status="succeeded", finished_at=1753345102)
    page = alice_client.get("/").content.decode()
    running_card = re.search(rf'<li class="job-card" id="job-{running.pk}"[^>]*>', page).group(0)
    finished_card = re.search(rf'<li class="job-card" id="job-{finished.pk}"[^>]*>', page).group(0)
    assert "data-live-active" in running_card and "data-live-active" not in finished_card
    assert 'data-live-url="/live/cards/" data-live-interval="5"' in page  # one poll for the page
    assert "Finished" in page


def test_it_shows_an_eta_for_running_jobs(alice_client, make_job):
    import time

    make_job(status="running", estimated_finish=int(time.time()) + 600)
    page = alice_client.get("/").content.decode()
    assert "ETA" in page
    assert "in 9 min" in page or "in 10 min" in page


def test_it_shows_only_the_users_own_jobs(client, charlie, make_job):
    make_job(suffix="alice-secret-project")
    client.force_login(charlie)
    page = client.get("/").content.decode()
    assert "alice-secret-project" not in page
    assert "No jobs tracked yet." in page


def _dashboard_queries(client) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/").status_code == 200
    return len(queries)


def test_the_dashboard_runs_a_constant_number_of_queries(alice_client, make_job):
    for _ in range(3):
        make_job()
    with_3 = _dashboard_queries(alice_client)
    for _ in range(297):
        make_job()
    with_300 = _dashboard_queries(alice_client)
    assert with_300 == with_3
    assert with_3 <= 10
