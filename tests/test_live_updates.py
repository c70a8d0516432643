"""Live updates at the cost of one viewer (issue 9): one poll per page, conditional answers,
parts rendered once per job version, constant queries, big dashboards paged."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.core.cache import caches
from django.db import connection
from django.template.loader import render_to_string
from django.test.signals import template_rendered
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from jobs.live import job_version
from jobs.models import Membership, TrackedJob
from tests.support.accounts import track_remote_job
from tests.support.payloads import job_payload

pytestmark = pytest.mark.django_db
POLL = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture(autouse=True)
def empty_render_cache():
    caches["rendered"].clear()
    yield
    caches["rendered"].clear()


@pytest.fixture
def renders(monkeypatch):
    """The names of the templates and partials rendered while the test runs (partials send no
    template_rendered signal, so Django's render_to_string is counted where the polls use it)."""
    names = []

    def record(sender, template, context, **kwargs):
        names.append(getattr(template, "name", None) or str(template))

    def counting_render_to_string(template_name, *args, **kwargs):
        names.append(template_name)
        return render_to_string(template_name, *args, **kwargs)

    monkeypatch.setattr("jobs.live.render_to_string", counting_render_to_string)
    template_rendered.connect(record)
    yield names
    template_rendered.disconnect(record)


def shown(*jobs: TrackedJob, versions: dict[int, str] | None = None) -> str:
    versions = versions or {}
    return "&".join(f"v={job.pk}.{versions.get(job.pk, job_version(job))}" for job in jobs)


def poll_cards(client, *jobs, versions=None):
    return client.get(f"/live/cards/?{shown(*jobs, versions=versions)}", **POLL)


def fresh(job: TrackedJob) -> TrackedJob:
    return TrackedJob.objects.get(pk=job.pk)


# --- Conditional answers -----------------------------------------------------------------------


def test_an_unchanged_poll_renders_nothing_and_answers_204(alice_client, make_job, renders):
    jobs = [make_job(status="running") for _ in range(3)]

    response = poll_cards(alice_client, *jobs)

    assert response.status_code == 204
    assert response.content == b""
    assert renders == []


def test_a_poll_answers_only_the_cards_that_changed(alice_client, make_job):
    still, moved = make_job(status="running"), make_job(status="running")
    old_version = job_version(moved)
    TrackedJob.objects.filter(pk=moved.pk).update(snapshot=job_payload(trained_steps=60), changed_at=timezone.now())

    response = poll_cards(alice_client, still, moved, versions={moved.pk: old_version})

    assert response.status_code == 200
    html = response.content.decode()
    assert f'id="job-{moved.pk}"' in html and f'id="job-{still.pk}"' not in html
    assert f'data-live-version="{job_version(fresh(moved))}"' in html
    assert "60%" in html


def test_a_job_that_finished_gets_its_final_card_which_stops_polling(alice_client, make_job):
    job = make_job(status="running")
    version = job_version(job)
    TrackedJob.objects.filter(pk=job.pk).update(
        status="succeeded", snapshot=job_payload(status="succeeded"), changed_at=timezone.now()
    )

    html = poll_cards(alice_client, job, versions={job.pk: version}).content.decode()

    card = re.search(rf'<li [^>]*id="job-{job.pk}"[^>]*>', html).group(0)
    assert 'data-status="succeeded"' in card
    assert "data-live-active" not in card


def test_a_removed_job_is_replaced_by_a_notice_and_polled_no_more(alice_client, make_job):
    job = make_job(status="running")
    TrackedJob.objects.filter(pk=job.pk).delete()

    html = poll_cards(alice_client, job, versions={job.pk: "old"}).content.decode()

    assert f'id="job-{job.pk}"' in html and "data-live-gone" in html and "no longer tracked" in html
    assert "data-live-active" not in html


def test_an_outsider_learns_nothing_from_a_poll(client, charlie, make_job):
    job = make_job(status="running", suffix="secret-suffix")
    client.force_login(charlie)

    html = poll_cards(client, job, versions={job.pk: "stale"}).content.decode()

    assert "secret-suffix" not in html and job.job_id not in html
    assert "no longer tracked" in html


def test_junk_in_the_poll_query_is_ignored(alice_client, make_job):
    job = make_job(status="running")
    query = f"v={job.pk}.{job_version(job)}&v=abc&v=99999999999999999999999.x&v=.&v=-1.x"
    assert alice_client.get(f"/live/cards/?{query}", **POLL).status_code == 204


def test_the_job_page_asks_once_for_all_its_live_parts(alice_client, make_job):
    job = make_job(status="running")
    url = f"/jobs/{job.pk}/live/?v={job.pk}.{job_version(job)}"
    assert alice_client.get(url, **POLL).status_code == 204

    TrackedJob.objects.filter(pk=job.pk).update(refresh_error="HTTP 503", consecutive_failures=1)
    html = alice_client.get(url, **POLL).content.decode()

    assert 'id="job-live"' in html
    assert "HTTP 503" in html and "Timeline" in html and "Progress" in html


def test_a_poll_after_the_session_expired_sends_the_tab_to_sign_in(client, alice, make_job):
    job = make_job(status="running")
    response = client.get(
        f"/live/cards/?v={job.pk}.x", HTTP_HX_REQUEST="true", HTTP_HX_CURRENT_URL="http://testserver/?status=running"
    )
    assert response.status_code == 401
    assert response["HX-Redirect"] == "/accounts/login/?next=/%3Fstatus%3Drunning"


# --- Cost: queries and renders -----------------------------------------------------------------


def _queries_for_unchanged_poll(client, jobs) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert poll_cards(client, *jobs).status_code == 204
    return len(queries)


def test_an_unchanged_poll_costs_the_same_few_queries_for_one_job_or_fifty(alice_client, make_job):
    one = [make_job(status="running")]
    fifty = [make_job(status="running") for _ in range(50)]

    few = _queries_for_unchanged_poll(alice_client, one)
    many = _queries_for_unchanged_poll(alice_client, fifty)

    assert few == many
    assert many <= 3  # the session, the user, the versions of every job shown


def test_a_card_another_viewer_already_got_is_served_without_loading_its_job(client, alice, bob, team, make_job):
    job = make_job(workspace=team, status="running")
    version = job_version(job)
    TrackedJob.objects.filter(pk=job.pk).update(snapshot=job_payload(trained_steps=70), changed_at=timezone.now())
    client.force_login(alice)
    first = poll_cards(client, job, versions={job.pk: version}).content

    client.force_login(bob)
    with CaptureQueriesContext(connection) as queries:
        second = poll_cards(client, job, versions={job.pk: version}).content

    assert second == first and b'value="70"' in second
    job_reads = [q["sql"] for q in queries if "jobs_trackedjob" in q["sql"]]
    assert len(job_reads) == 1, job_reads  # the versions query; the card came from the render cache


def test_a_changed_card_is_rendered_once_for_every_viewer_of_the_same_kind(client, alice, bob, team, make_job, renders):
    job = make_job(workspace=team, status="running")
    version = job_version(job)
    TrackedJob.objects.filter(pk=job.pk).update(snapshot=job_payload(trained_steps=70), changed_at=timezone.now())

    answers = []
    for user in (alice, bob, alice):
        client.force_login(user)
        answers.append(poll_cards(client, job, versions={job.pk: version}).content)

    assert answers[0] == answers[1] == answers[2]
    assert renders.count("jobs/dashboard.html#job-card") == 1


def test_a_viewers_card_has_no_edit_links_and_is_rendered_apart(client, alice, team, make_job, django_user_model):
    viewer = django_user_model.objects.create_user("vera", password="vera-password-1")
    Membership.objects.create(workspace=team, user=viewer, role=Membership.Role.VIEWER)
    job = make_job(workspace=team, status="running")

    client.force_login(alice)
    for_owner = poll_cards(client, job, versions={job.pk: "old"}).content.decode()
    client.force_login(viewer)
    for_viewer = poll_cards(client, job, versions={job.pk: "old"}).content.decode()

    assert f"/jobs/{job.pk}/remove/" in for_owner
    assert f"/jobs/{job.pk}/remove/" not in for_viewer


def test_a_due_job_is_refreshed_by_the_poll_once(alice_client, fake_api, alice, alice_token, settings):
    settings.FTDASH_REFRESH_SECONDS = 5
    job = track_remote_job(fake_api, alice, alice_token, steps_per_call=5, total_steps=1000, trained_steps=10)
    TrackedJob.objects.filter(pk=job.pk).update(checked_at=timezone.now() - dt.timedelta(seconds=6))
    job = fresh(job)
    fake_api.reset_calls()

    first = poll_cards(alice_client, job)
    second = poll_cards(alice_client, job)

    assert first.status_code == 200 and "step 20 of 1000" in first.content.decode()
    assert len(fake_api.calls_for(job.job_id)) == 1
    assert second.status_code == 200  # still showing the old version: gets the new card too


def test_with_more_due_jobs_than_a_poll_refreshes_the_least_recently_checked_go_first(
    alice_client, fake_api, alice, alice_token, settings
):
    settings.FTDASH_REFRESH_SECONDS = 5
    jobs = [track_remote_job(fake_api, alice, alice_token, total_steps=1000) for _ in range(7)]
    now = timezone.now()
    for minutes, job in enumerate(jobs):  # the last tracked was checked longest ago
        TrackedJob.objects.filter(pk=job.pk).update(checked_at=now - dt.timedelta(minutes=1 + minutes))
    jobs = [fresh(job) for job in jobs]
    fake_api.reset_calls()

    poll_cards(alice_client, *jobs)
    asked = {job.job_id for job in jobs if fake_api.calls_for(job.job_id)}
    poll_cards(alice_client, *jobs)
    asked_next = {job.job_id for job in jobs if fake_api.calls_for(job.job_id)} - asked

    assert asked == {job.job_id for job in jobs[3:]}  # the four most overdue
    assert asked_next == {job.job_id for job in jobs[:3]}  # then the rest, not the same four again


# --- Big dashboards -------------------------------------------------------------------------


def _many_jobs(workspace, token, user, count: int, *, status: str, start: int = 0) -> None:
    now = timezone.now()
    TrackedJob.objects.bulk_create(
        TrackedJob(
            workspace=workspace,
            token=token,
            job_id=f"ftjob-{status[:4]}{i:028x}",
            added_by=user,
            snapshot=job_payload(id=f"ftjob-{status[:4]}{i:028x}", status=status),
            status=status,
            fetched_at=now,
            checked_at=now,
            created_at=now - dt.timedelta(minutes=i),
        )
        for i in range(start, start + count)
    )


def _dashboard_queries(client) -> tuple[int, str]:
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/")
    assert response.status_code == 200
    return len(queries), response.content.decode()


def test_a_dashboard_of_1000_jobs_shows_live_ones_first_with_as_many_queries_as_one_of_10(
    alice_client, alice, alice_workspace, alice_token
):
    _many_jobs(alice_workspace, alice_token, alice, 8, status="succeeded")
    _many_jobs(alice_workspace, alice_token, alice, 2, status="running")
    small, _ = _dashboard_queries(alice_client)

    _many_jobs(alice_workspace, alice_token, alice, 970, status="succeeded", start=100)
    _many_jobs(alice_workspace, alice_token, alice, 20, status="running", start=100)
    big, page = _dashboard_queries(alice_client)

    assert big == small <= 12
    cards = re.findall(r'<li [^>]*class="job-card[^"]*"[^>]*data-status="(\w+)"', page)
    assert len(cards) == 50
    assert cards[:22] == ["running"] * 22  # every live job, before any finished one
    assert "(22 running)" in page
    assert "page=2" in page  # the finished ones go on over more pages


def test_later_pages_keep_the_filters(alice_client, alice, alice_workspace, alice_token):
    _many_jobs(alice_workspace, alice_token, alice, 120, status="succeeded")

    page = alice_client.get("/?status=succeeded&page=2").content.decode()

    assert "Page 2 of 3" in page
    assert "status=succeeded&amp;page=3" in page and "status=succeeded&amp;page=1" in page


def test_an_unchanged_answer_fits_in_a_few_hundred_bytes(alice_client, make_job):
    jobs = [make_job(status="running") for _ in range(20)]

    response = poll_cards(alice_client, *jobs)

    assert response.status_code == 204
    header_bytes = sum(len(name) + len(value) + 4 for name, value in response.items())
    assert header_bytes + len(response.content) <= 250  # the status line, Date and Server aside
    assert "Content-Security-Policy" not in response  # no document to govern


def test_a_plain_reload_shows_fresh_data_without_javascript(alice_client, fake_api, alice, alice_token):
    job = track_remote_job(fake_api, alice, alice_token, total_steps=100, trained_steps=10)
    fake_api.update_job(job.job_id, trained_steps=55)
    TrackedJob.objects.filter(pk=job.pk).update(checked_at=timezone.now() - dt.timedelta(seconds=6))

    assert "55%" in alice_client.get("/").content.decode()
    TrackedJob.objects.filter(pk=job.pk).update(checked_at=timezone.now() - dt.timedelta(seconds=6))
    fake_api.update_job(job.job_id, trained_steps=80)
    assert "80%" in alice_client.get(f"/jobs/{job.pk}/").content.decode()
