"""Cancelling a job from its page, against the fake API over HTTP: asked first, then cancelled
upstream, refreshed at once and recorded with who did it; an API without cancel stops being
offered it; other failures show their message and lose nothing; viewers and finished jobs are
not offered it."""

from __future__ import annotations

import pytest

from jobs import services
from jobs.models import AuditEvent, Membership
from tests.support.accounts import ALICE_SECRET, track_remote_job
from tests.support.django_client import job_page, signed_in

CANCEL_NOT_OFFERED = "This Token Factory endpoint does not offer cancelling."


def test_cancel_asks_first_then_cancels_refreshes_and_records_who(alice_client, fake_api, running_job):
    assert f'href="/jobs/{running_job.pk}/cancel/"' in job_page(alice_client, running_job)
    confirm = alice_client.get(f"/jobs/{running_job.pk}/cancel/").content.decode()
    assert "Cancel job" in confirm and running_job.job_id in confirm.replace("<wbr>", "")
    assert fake_api.get_job(running_job.job_id)["status"] == "running"  # a GET changes nothing

    response = alice_client.post(f"/jobs/{running_job.pk}/cancel/", follow=True)
    page = response.content.decode()
    assert fake_api.get_job(running_job.job_id)["status"] == "cancelled"
    assert 'badge-cancelled">cancelled<' in page  # refreshed at once, no waiting for the next poll
    assert f'href="/jobs/{running_job.pk}/cancel/"' not in page
    audit = AuditEvent.objects.get(action="job.cancel")
    assert audit.actor_name == "alice" and audit.description == f"cancelled job {running_job.job_id}"
    posts = [c for c in fake_api.calls_for(running_job.job_id) if c.method == "POST"]
    assert [c.path for c in posts] == [f"/v1/fine_tuning/jobs/{running_job.job_id}/cancel"]


@pytest.mark.parametrize("status", [404, 405])
def test_an_api_without_cancel_says_so_and_stops_offering_it(alice_client, fake_api, running_job, status):
    fake_api.set_cancel(status=status)
    page = alice_client.post(f"/jobs/{running_job.pk}/cancel/", follow=True).content.decode()
    assert CANCEL_NOT_OFFERED in page
    assert fake_api.get_job(running_job.job_id)["status"] == "running"
    assert not AuditEvent.objects.filter(action="job.cancel").exists()
    assert f'href="/jobs/{running_job.pk}/cancel/"' not in job_page(alice_client, running_job)
    # Nor on another job of the same API, nor asked again.
    fake_api.reset_calls()
    other = track_remote_job(fake_api, running_job.added_by, running_job.token)
    assert f'href="/jobs/{other.pk}/cancel/"' not in job_page(alice_client, other)
    alice_client.post(f"/jobs/{other.pk}/cancel/")
    assert not [c for c in fake_api.calls if c.method == "POST"]


@pytest.mark.parametrize("kind,words", [("429", "rate-limiting"), ("500", "unavailable"), ("401", "rejected")])
def test_other_cancel_failures_show_their_message_and_lose_nothing(alice_client, fake_api, running_job, kind, words):
    fake_api.fail_next(kind, job_id=running_job.job_id)
    page = alice_client.post(f"/jobs/{running_job.pk}/cancel/", follow=True).content.decode()
    assert words in page
    assert fake_api.get_job(running_job.job_id)["status"] == "running"
    assert not AuditEvent.objects.filter(action="job.cancel").exists()
    assert CANCEL_NOT_OFFERED not in page


def test_viewers_are_not_offered_cancel(fake_api, alice, bob, team, alice_token):
    token = services.token_create(workspace=team, user=alice, name="team", secret=ALICE_SECRET)
    remote = fake_api.add_job()
    job = services.job_track(workspace=team, token=token, job_id=remote["id"], user=alice)
    Membership.objects.filter(workspace=team, user=bob).update(role=Membership.Role.VIEWER)
    assert "Cancel job" not in job_page(signed_in(bob), job)
    assert signed_in(bob).post(f"/jobs/{job.pk}/cancel/").status_code == 403
    assert fake_api.get_job(remote["id"])["status"] == "running"


def test_a_finished_job_offers_no_cancel(alice_client, fake_api, alice, alice_token):
    job = track_remote_job(fake_api, alice, alice_token, status="succeeded")
    assert "Cancel job" not in job_page(alice_client, job)
    page = alice_client.post(f"/jobs/{job.pk}/cancel/", follow=True).content.decode()
    assert "already finished" in page
    assert not [c for c in fake_api.calls if c.method == "POST"]
