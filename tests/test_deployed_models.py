"""Models deployed from a job, against the fake API over HTTP: listed on its page, its card says
deployed, asked about once per interval per token, and an API without models changes nothing."""

from __future__ import annotations

import pytest

from tests.support.django_client import job_page


def test_models_deployed_from_a_job_are_listed_and_the_card_says_deployed(alice_client, fake_api, running_job):
    fake_api.add_model(job_id=running_job.job_id, checkpoint_id="ftckpt_abc", status="active", name="support-bot-v1")
    fake_api.add_model(job_id="ftjob-someone-else", name="not-ours")
    alice_client.post(f"/jobs/{running_job.pk}/refresh/")
    page = job_page(alice_client, running_job)
    assert "Deployed models" in page and "support-bot-v1" in page and "ftckpt_abc" in page.replace("<wbr>", "")
    assert "active" in page and "not-ours" not in page
    dashboard = alice_client.get("/").content.decode()
    assert 'badge-deployed">deployed<' in dashboard


def test_models_are_asked_about_once_per_interval_per_token(alice_client, fake_api, running_job):
    for _ in range(3):
        alice_client.post(f"/jobs/{running_job.pk}/refresh/")
    assert len([c for c in fake_api.calls if c.path == "/v0/models"]) == 1


@pytest.mark.parametrize("status", [404, 405])
def test_an_api_without_models_changes_nothing_on_the_page(alice_client, fake_api, running_job, status):
    fake_api.set_models(status=status)
    alice_client.post(f"/jobs/{running_job.pk}/refresh/")
    page = job_page(alice_client, running_job)
    assert "Deployed models" not in page and "deployed" not in alice_client.get("/").content.decode()
    assert "refresh_error" not in page and "failed" not in page.lower().split("raw json")[0]
