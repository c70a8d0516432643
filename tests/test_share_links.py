"""Read-only share links (issue 21, section 2): made on the job page by owners and members, shown
once, listed with who made them and revocable, audited; the page they open shows the job to
anyone without an account, never its token, the workspace's people, edit controls or the raw
JSON, and stays live through the same cheap poll as the job page."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.core.cache import caches
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from ftdash.log_redaction import redact
from jobs import services
from jobs.live import job_version
from jobs.models import AuditEvent, JobEvent, Membership, ShareLink, TrackedJob
from jobs.sync import refresh
from tests.support.accounts import ALICE_SECRET, track_remote_job
from tests.support.django_client import job_page, signed_in
from tests.support.security_headers import assert_framing_and_policy
from tests.support.tracked_jobs import age, refreshed

pytestmark = pytest.mark.django_db
SHARE_URL = re.compile(r'<code id="share-link-new">(http://testserver/share/([A-Za-z0-9_-]+)/)</code>')


@pytest.fixture(autouse=True)
def empty_render_cache():
    caches["rendered"].clear()
    yield
    caches["rendered"].clear()


def create_link(client: Client, job: TrackedJob, expiry: str = "7") -> str:
    """ "Create read-only link" on the job page; returns the link's key, read from the page."""
    response = client.post(f"/jobs/{job.pk}/share/", {"expiry": expiry})
    assert response.status_code == 200
    match = SHARE_URL.search(response.content.decode())
    assert match, "the new link is not shown"
    return match[2]


def anonymous() -> Client:
    return Client(raise_request_exception=True)


@pytest.fixture
def team_job(fake_api, alice, bob, team, alice_token) -> TrackedJob:
    """A running job of the fake (step 10 of 100, labelled) in alice's team, with bob a member."""
    remote = fake_api.add_job(total_steps=100, trained_steps=10, suffix="sharing-run")
    job = services.job_track(workspace=team, token=alice_token, job_id=remote["id"], user=alice)
    TrackedJob.objects.filter(pk=job.pk).update(label="Llama run")
    return TrackedJob.objects.get(pk=job.pk)


# --- Making, listing, revoking ----------------------------------------------------------------


def test_a_member_creates_a_link_shown_once_and_stored_hashed(bob, team_job):
    client = signed_in(bob)
    response = client.post(f"/jobs/{team_job.pk}/share/", {"expiry": "7"})

    page = response.content.decode()
    url, key = SHARE_URL.search(page).groups()
    assert "Copy it now: it is not shown again." in page
    assert 'aria-label="Copy read-only link"' in page
    assert len(key) >= 43  # secrets.token_urlsafe(32): 256 random bits
    link = ShareLink.objects.get()
    assert link.key_hash == ShareLink.hash_key(key) and key not in link.key_hash
    assert link.created_by == bob
    assert dt.timedelta(days=6, hours=23) < link.expires_at - timezone.now() <= dt.timedelta(days=7)
    # Listed with who made it; the key itself is never shown again.
    later = job_page(client, team_job)
    assert key not in later
    assert re.search(r"Made by bob on .*works until", later)
    assert "Revoke" in later
    audit = AuditEvent.objects.get(action="share.create")
    assert audit.workspace == team_job.workspace and audit.actor == bob
    assert "Llama run" in audit.description and key not in audit.description


@pytest.mark.parametrize(("expiry", "days"), [("1", 1), ("30", 30), ("never", None)])
def test_the_expiry_choices(alice_client, running_job, expiry, days):
    create_link(alice_client, running_job, expiry)
    link = ShareLink.objects.get()
    if days is None:
        assert link.expires_at is None
        assert "never expires" in job_page(alice_client, running_job)
    else:
        assert abs(link.expires_at - timezone.now() - dt.timedelta(days=days)) < dt.timedelta(minutes=1)


def test_an_unknown_expiry_is_a_clear_422(alice_client, running_job):
    response = alice_client.post(f"/jobs/{running_job.pk}/share/", {"expiry": "365"})
    assert response.status_code == 422
    assert "Select a valid choice" in response.content.decode()
    assert not ShareLink.objects.exists()


def test_viewers_cannot_share_and_outsiders_learn_nothing(team_job, charlie, django_user_model):
    viewer = django_user_model.objects.create_user(username="vera", password="vera-password-1")
    Membership.objects.create(workspace=team_job.workspace, user=viewer, role=Membership.Role.VIEWER)
    assert "Create read-only link" not in job_page(signed_in(viewer), team_job)
    assert signed_in(viewer).post(f"/jobs/{team_job.pk}/share/", {"expiry": "7"}).status_code == 403
    assert Client().post(f"/jobs/{team_job.pk}/share/", {"expiry": "7"}).status_code == 302  # to sign in
    assert signed_in(charlie).post(f"/jobs/{team_job.pk}/share/", {"expiry": "7"}).status_code == 404
    assert not ShareLink.objects.exists()


def test_revoking_a_link_closes_it_and_is_audited(alice, bob, team_job):
    key = create_link(signed_in(alice), team_job)
    assert anonymous().get(f"/share/{key}/").status_code == 200
    link = ShareLink.objects.get()

    response = signed_in(bob).post(f"/jobs/{team_job.pk}/share/{link.pk}/revoke/", follow=True)

    assert "Revoked the read-only link alice made on" in response.content.decode()
    assert anonymous().get(f"/share/{key}/").status_code == 404
    assert anonymous().get(f"/share/{key}/live/?v={team_job.pk}.x").status_code == 404
    assert "No read-only links to this job." in job_page(signed_in(alice), team_job)
    audit = AuditEvent.objects.get(action="share.revoke")
    assert audit.actor == bob and "made by alice" in audit.description
    # Once revoked, it cannot be revoked again (nor by anyone outside the job's editors).
    assert signed_in(bob).post(f"/jobs/{team_job.pk}/share/{link.pk}/revoke/").status_code == 404


def test_a_link_of_another_job_cannot_be_revoked_through_this_one(alice_client, make_job, running_job):
    create_link(alice_client, running_job)
    other = make_job()
    link = ShareLink.objects.get()
    assert alice_client.post(f"/jobs/{other.pk}/share/{link.pk}/revoke/").status_code == 404
    assert ShareLink.objects.get().revoked_at is None


def test_an_expired_link_is_a_404(alice_client, running_job):
    key = create_link(alice_client, running_job, "1")
    ShareLink.objects.update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    assert anonymous().get(f"/share/{key}/").status_code == 404
    assert anonymous().get(f"/share/{key}/live/").status_code == 404
    assert "No read-only links to this job." in job_page(alice_client, running_job)


@pytest.mark.parametrize("key", ["x", "A" * 43, "../../etc", "A" * 65, "é" * 43])
def test_unknown_and_malformed_keys_are_404s(key, running_job):
    assert anonymous().get(f"/share/{key}/").status_code == 404


def test_a_job_no_longer_tracked_takes_its_links_with_it(alice_client, running_job):
    key = create_link(alice_client, running_job)
    alice_client.post(f"/jobs/{running_job.pk}/remove/")
    assert anonymous().get(f"/share/{key}/").status_code == 404


# --- What the shared page shows, and never shows ----------------------------------------------


def test_the_shared_page_shows_the_job_to_anyone(alice_client, fake_api, alice, alice_token):
    job = track_remote_job(
        fake_api,
        alice,
        alice_token,
        total_steps=100,
        trained_steps=40,
        trained_tokens=2_048_000,
        estimated_finish=int(timezone.now().timestamp()) + 3600,
        integrations=[{"type": "wandb", "wandb": {"project": "shared-project"}}],
    )
    fake_api.add_checkpoint(job.job_id, step_number=20, metrics={"train_loss": 1.25})
    fake_api.add_event(job.job_id, "Epoch 1 done")
    refresh.sync_training_log(TrackedJob.objects.get(pk=job.pk))
    key = create_link(alice_client, job)
    age(job, seconds=3600)  # the shared page refreshes a due job, as the job page does

    response = anonymous().get(f"/share/{key}/")

    page = response.content.decode()
    assert response.status_code == 200
    for shown in ("Progress", "ETA", "Cost", "Training curves", "Checkpoints", "Events", "Method", "Integrations"):
        assert f">{shown}" in page, shown
    assert 'aria-valuenow="40"' in page
    assert "shared-project" in page
    assert "Epoch 1 done" in page
    assert "A read-only view of a fine-tuning job" in page
    assert f'data-live-url="/share/{key}/live/"' in page


def test_the_shared_page_never_names_the_token_or_the_people_nor_offers_controls(alice, bob, team_job):
    # A watched token's find names the token in the job's history.
    JobEvent.objects.create(
        job=team_job,
        kind=JobEvent.Kind.STARTED,
        status="running",
        message="Job started; found by watching token “research”",
    )
    JobEvent.objects.create(
        job=team_job, kind=JobEvent.Kind.BUDGET_80, status="running", message="This month's spend, $812.00, passed 80%"
    )
    members_page = job_page(signed_in(alice), team_job)
    assert "research" in members_page and "…wxyz" in members_page  # what must not leak is there to leak
    key = create_link(signed_in(alice), team_job)

    page = anonymous().get(f"/share/{key}/").content.decode()

    assert "research" not in page and ALICE_SECRET[-4:] not in page  # the token's name, any part of it
    assert "alice" not in page and "bob" not in page  # the workspace's people
    assert "Research team" not in page and "$812.00" not in page  # nor the workspace's name and spend
    assert "Found by a watched token" in page  # the event is there, by its kind
    for control in ("Edit", "Save label", "Refresh now", "Cancel job", "Remove", "Create read-only link", "Revoke"):
        assert f">{control}<" not in page, control
    assert "<form" not in page.split('<main id="main"', 1)[1]
    assert "Raw JSON" not in page and 'id="raw-json"' not in page
    assert f"/jobs/{team_job.pk}/" not in page


def test_the_shared_page_headers(alice_client, running_job):
    key = create_link(alice_client, running_job)
    response = anonymous().get(f"/share/{key}/")
    assert response.headers["X-Robots-Tag"].startswith("noindex")
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert "no-store" in response.headers["Cache-Control"]
    assert_framing_and_policy(response)  # the site's CSP and framing rules hold


def test_a_signed_in_visitor_sees_the_same_read_only_page(alice_client, running_job, charlie):
    key = create_link(alice_client, running_job)
    page = signed_in(charlie).get(f"/share/{key}/").content.decode()
    assert "Raw JSON" not in page and "Create read-only link" not in page and "research" not in page


# --- Live through the same cheap poll ---------------------------------------------------------


def test_the_shared_poll_answers_204_when_nothing_changed_with_one_query(alice_client, running_job):
    key = create_link(alice_client, running_job)
    client = anonymous()
    version = job_version(TrackedJob.objects.get(pk=running_job.pk))

    with CaptureQueriesContext(connection) as queries:
        response = client.get(f"/share/{key}/live/?v={running_job.pk}.{version}", HTTP_HX_REQUEST="true")

    assert response.status_code == 204 and response.content == b""
    # One query for the version (and the cache's read of whether the log is behind, which is
    # Redis's in production, as for a signed-in poll).
    database = [q["sql"] for q in queries.captured_queries if "ftdash_cache" not in q["sql"]]
    assert len(database) == 1, database
    assert response.headers["X-Ftdash-Checked-At"]
    assert response.headers["Referrer-Policy"] == "no-referrer"


def test_the_shared_poll_answers_the_changed_part_when_the_job_moved_on(alice_client, fake_api, running_job):
    key = create_link(alice_client, running_job)
    old = job_version(TrackedJob.objects.get(pk=running_job.pk))
    fake_api.advance(running_job.job_id, 30)
    age(running_job, seconds=3600)  # due: the poll refreshes it, single-flight

    response = anonymous().get(f"/share/{key}/live/?v={running_job.pk}.{old}", HTTP_HX_REQUEST="true")

    part = response.content.decode()
    assert response.status_code == 200
    assert part.lstrip().startswith('<div id="job-live"')
    assert 'aria-valuenow="40"' in part
    assert f'data-live-url="/share/{key}/live/"' in part
    assert f'data-live-version="{job_version(TrackedJob.objects.get(pk=running_job.pk))}"' in part
    assert "Raw JSON" not in part and "research" not in part
    assert response.headers["X-Robots-Tag"].startswith("noindex")


def test_the_shared_variant_is_cached_apart_from_the_signed_in_ones(alice_client, alice, fake_api, running_job):
    key = create_link(alice_client, running_job)
    other_key = create_link(alice_client, running_job)
    old = job_version(TrackedJob.objects.get(pk=running_job.pk))
    fake_api.advance(running_job.job_id, 5)
    refreshed(running_job)

    owner = alice_client.get(f"/jobs/{running_job.pk}/live/?v={running_job.pk}.{old}").content.decode()
    shared = anonymous().get(f"/share/{key}/live/?v={running_job.pk}.{old}").content.decode()
    other = anonymous().get(f"/share/{other_key}/live/?v={running_job.pk}.{old}").content.decode()
    owner_again = alice_client.get(f"/jobs/{running_job.pk}/live/?v={running_job.pk}.{old}").content.decode()

    assert "Raw JSON" in owner and owner == owner_again
    assert "Raw JSON" not in shared and f"/jobs/{running_job.pk}/live/" not in shared
    # Each link's viewers poll their own link: no key reaches the holder of another.
    assert f"/share/{key}/live/" in shared and other_key not in shared
    assert f"/share/{other_key}/live/" in other and key not in other
    # Nor is any key kept in the render cache.
    stored = _stored_values(caches["rendered"])
    assert stored and not any(key.encode() in value or other_key.encode() in value for value in stored)


def _stored_values(cache) -> list[bytes]:
    """Every value in the render cache, as stored: in memory (SQLite leg) or in Redis."""
    if hasattr(cache._cache, "values"):
        return list(cache._cache.values())
    client = cache._cache.get_client(None)
    return [value for value in (client.get(key) for key in client.scan_iter()) if value is not None]


def test_share_keys_are_redacted_in_request_logs():
    line = 'GET /share/abcDEF_123-xyz/live/?v=3.ab HTTP/1.1" 200 "https://h/share/abcDEF_123-xyz/"'
    assert redact(line) == 'GET /share/[redacted]/live/?v=3.ab HTTP/1.1" 200 "https://h/share/[redacted]/"'
