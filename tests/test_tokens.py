from __future__ import annotations

import logging

from jobs.models import ApiToken, TrackedJob
from tests.support.accounts import ALICE_SECRET


def test_the_token_form_has_the_documented_fields(alice_client):
    page = alice_client.get("/tokens/").content.decode()
    assert ">Token name<" in page and ">API token<" in page and "Save token" in page
    assert 'type="password"' in page
    assert "No tokens yet." in page


def test_a_saved_token_is_encrypted_and_shown_only_by_its_last_four(alice_client, caplog):
    caplog.set_level(logging.DEBUG)
    response = alice_client.post("/tokens/", {"name": "research", "secret": ALICE_SECRET}, follow=True)
    page = response.content.decode()
    token = ApiToken.objects.get()
    assert token.secret_encrypted and ALICE_SECRET not in token.secret_encrypted
    assert "…wxyz" in page and "research" in page
    assert ALICE_SECRET not in page
    assert ALICE_SECRET not in caplog.text


def test_a_token_that_is_obviously_not_one_is_refused(alice_client):
    response = alice_client.post("/tokens/", {"name": "x", "secret": "two words"})
    assert response.status_code == 422
    assert "does not look like an API token" in response.content.decode()
    assert "two words" not in response.content.decode()  # the secret is not echoed back
    assert not ApiToken.objects.exists()


def test_token_names_are_unique_per_workspace(alice_client, alice_token):
    response = alice_client.post("/tokens/", {"name": "research", "secret": "sk-another-1234567"})
    assert response.status_code == 422
    assert "already a token named" in response.content.decode()


def test_the_test_button_says_whether_the_token_works(alice_client, alice_token, fake_api):
    page = alice_client.post(f"/tokens/{alice_token.pk}/test/", follow=True).content.decode()
    assert "Token Factory accepts this token." in page
    assert fake_api.calls[-1].path == "/v1/fine_tuning/jobs"
    fake_api.revoke_token(ALICE_SECRET)
    page = alice_client.post(f"/tokens/{alice_token.pk}/test/", follow=True).content.decode()
    assert "rejected this API token" in page
    assert "rejected" in page
    assert ALICE_SECRET not in page


def test_the_test_button_reports_an_api_outage(alice_client, alice_token, fake_api, settings):
    settings.FTDASH_API_RETRIES = 0
    fake_api.set_down(True)
    page = alice_client.post(f"/tokens/{alice_token.pk}/test/", follow=True).content.decode()
    assert "unavailable right now" in page


def test_a_token_can_be_renamed_keeping_its_secret(alice_client, alice_token):
    page = alice_client.get(f"/tokens/{alice_token.pk}/edit/").content.decode()
    assert ALICE_SECRET not in page and alice_token.secret_encrypted not in page
    response = alice_client.post(f"/tokens/{alice_token.pk}/edit/", {"name": "renamed", "secret": ""})
    assert response.status_code == 302
    alice_token.refresh_from_db()
    assert alice_token.name == "renamed" and alice_token.last4 == "wxyz"


def test_a_token_secret_can_be_replaced(alice_client, alice_token):
    alice_client.post(f"/tokens/{alice_token.pk}/edit/", {"name": "research", "secret": "sk-new-secret-9876"})
    alice_token.refresh_from_db()
    assert alice_token.last4 == "9876"


def test_deleting_a_token_asks_first_and_says_which_jobs_it_affects(alice_client, alice_token, make_job):
    job = make_job()
    page = alice_client.get(f"/tokens/{alice_token.pk}/delete/").content.decode()
    assert "1 tracked job uses this token" in page and "Delete token" in page
    assert ApiToken.objects.exists()
    alice_client.post(f"/tokens/{alice_token.pk}/delete/")
    assert not ApiToken.objects.exists()
    job.refresh_from_db()
    assert job.token is None  # the job stays, with its snapshot


def test_outsiders_cannot_see_or_touch_a_token(client, charlie, alice_token):
    client.force_login(charlie)
    assert "…wxyz" not in client.get("/tokens/").content.decode()
    assert client.get(f"/tokens/{alice_token.pk}/edit/").status_code == 404
    assert client.get(f"/tokens/{alice_token.pk}/delete/").status_code == 404
    assert client.post(f"/tokens/{alice_token.pk}/delete/").status_code == 404
    assert client.post(f"/tokens/{alice_token.pk}/test/").status_code == 404
    assert ApiToken.objects.filter(pk=alice_token.pk, name="research").exists()


def test_team_members_use_but_do_not_manage_the_teams_tokens(client, alice, bob, team, fake_api):
    from jobs import services

    token = services.token_create(workspace=team, user=alice, name="team-key", secret=ALICE_SECRET)
    client.force_login(bob)
    assert "team-key" not in client.get("/tokens/").content.decode()
    assert client.post(f"/tokens/{token.pk}/delete/").status_code == 403
    # …but bob can track a job with it (the secret never reaches him).
    job = fake_api.add_job()
    page = client.get("/").content.decode()
    assert "team-key" in page and ALICE_SECRET not in page
    response = client.post("/jobs/track/", {"job_id": job["id"], "token": token.pk})
    assert response.status_code == 302
    assert TrackedJob.objects.get(job_id=job["id"]).workspace == team
