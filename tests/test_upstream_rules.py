"""One answer per upstream rule: what an error does to the token, whoever called, and what "not offered" is kept for.

Over real HTTP against the fake Token Factory, as every upstream test.
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.test import override_settings
from django.utils import timezone

from jobs import services
from jobs.models import ApiToken, AuditEvent
from jobs.sync import not_offered
from jobs.sync.not_offered import Endpoint
from tests.support.fake_tokenfactory import FakeTokenFactory

ALICE_SECRET = "sk-alice-0123456789-SECRET-wxyz"  # the key the alice_token fixture stores


@pytest.fixture
def running(fake_api, alice, alice_token):
    remote = fake_api.add_job(total_steps=100, trained_steps=10)
    return services.job_track(workspace=alice.personal_workspace, token=alice_token, job_id=remote["id"], user=alice)


def test_a_cancel_refused_for_a_revoked_key_marks_the_token_rejected(alice_client, fake_api, running, alice_token):
    fake_api.revoke_token(ALICE_SECRET)
    page = alice_client.post(f"/jobs/{running.pk}/cancel/", follow=True).content.decode()
    assert "rejected" in page
    token = ApiToken.objects.get(pk=alice_token.pk)
    assert token.last_check_ok is False
    assert "rejected this API token (HTTP 401)" in token.last_check_message
    assert fake_api.get_job(running.job_id)["status"] == "running"
    assert not AuditEvent.objects.filter(action="job.cancel").exists()


def test_a_cancel_answered_429_pauses_the_token_for_everything(alice_client, fake_api, running, alice_token):
    fake_api.fail_next("429", job_id=running.job_id)
    alice_client.post(f"/jobs/{running.pk}/cancel/")
    token = ApiToken.objects.get(pk=alice_token.pk)
    assert token.is_paused and token.paused_until == token.rate_limited_until
    assert token.last_check_ok is None  # paused, not rejected


def test_a_token_is_paused_only_until_its_pause_ends(alice_token):
    assert not alice_token.is_paused and alice_token.paused_until is None
    alice_token.rate_limited_until = timezone.now() + dt.timedelta(seconds=30)
    assert alice_token.is_paused and alice_token.paused_until == alice_token.rate_limited_until
    alice_token.rate_limited_until = timezone.now() - dt.timedelta(seconds=1)
    assert not alice_token.is_paused and alice_token.paused_until is None


def test_an_endpoint_not_offered_is_remembered_for_its_api_base_url_only(alice_client, fake_api, running, settings):
    fake_api.set_cancel(status=405)
    alice_client.post(f"/jobs/{running.pk}/cancel/")
    assert not services.cancel_offered()
    with FakeTokenFactory() as elsewhere:
        settings.FTDASH_API_BASE_URL = elsewhere.url
        assert services.cancel_offered()  # another API: asked again
    settings.FTDASH_API_BASE_URL = fake_api.url
    assert not services.cancel_offered()


def test_an_endpoint_kept_per_token_is_not_offered_to_that_token_only(fake_api, db):
    not_offered.remember_not_offered(Endpoint.EVENTS, token_id=1, reason="HTTP 404")
    assert not_offered.is_not_offered(Endpoint.EVENTS, token_id=1)
    assert not not_offered.is_not_offered(Endpoint.EVENTS, token_id=2)
    assert not not_offered.is_not_offered(Endpoint.CHECKPOINTS, token_id=1)
    assert not_offered.tokens_not_offered(Endpoint.EVENTS, [1, 2, 3]) == {1}


def test_every_endpoint_has_one_lifetime():
    assert set(not_offered.NOT_OFFERED_SECONDS) == set(Endpoint)
    assert all(seconds > 0 for seconds in not_offered.NOT_OFFERED_SECONDS.values())


UNREACHABLE_CACHE = {
    "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:9/0"}
}


def test_while_the_cache_cannot_be_reached_nothing_counts_as_not_offered_and_nothing_raises(fake_api):
    with override_settings(CACHES=UNREACHABLE_CACHE):
        not_offered.remember_not_offered(Endpoint.CANCEL, reason="HTTP 405")
        assert not not_offered.is_not_offered(Endpoint.CANCEL)
        assert not_offered.tokens_not_offered(Endpoint.JOB_LIST, [1, 2]) == set()
        assert services.cancel_offered()
