"""The dashboard's filters and sort order: a GET form, so a filtered view is a shareable URL."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.core.cache import caches
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from jobs import services
from jobs.models import TrackedJob


def shown(client, query: str = "") -> list[str]:
    """The job IDs of the cards on the dashboard, in order."""
    response = client.get("/" + query)
    assert response.status_code == 200
    return re.findall(r'<a class="job-id" href="/jobs/\d+/">([^<]+)</a>', response.content.decode())


def tracked_ago(job, days: float) -> None:
    TrackedJob.objects.filter(pk=job.pk).update(created_at=timezone.now() - dt.timedelta(days=days))


@pytest.fixture
def jobs(make_job, team, alice):
    """A mix of statuses, models, workspaces and ages."""
    team_token = services.token_create(workspace=team, user=alice, name="team", secret="sk-team-0123456789")
    jobs = {
        "running": make_job(status="running", model="Qwen/Qwen3-4B"),
        "queued": make_job(status="queued", model="meta-llama/Llama-3.1-8B-Instruct", trained_steps=0),
        "succeeded": make_job(status="succeeded", model="Qwen/Qwen3-32B", finished_at=1753345102),
        "failed": make_job(
            status="failed",
            model="openai/gpt-oss-20b",
            finished_at=1753345102,
            error={"code": "oom", "message": "out of memory", "param": None},
        ),
        "team_running": make_job(workspace=team, token=team_token, status="running", model="Qwen/Qwen3-4B"),
    }
    TrackedJob.objects.filter(pk=jobs["running"].pk).update(stalled_at=timezone.now())
    # Tracked 2 hours, 3 days, 10 days, 40 days and 1 minute ago.
    for name, days in (
        ("running", 2 / 24),
        ("queued", 3),
        ("succeeded", 10),
        ("failed", 40),
        ("team_running", 1 / 1440),
    ):
        tracked_ago(jobs[name], days)
    return {name: job.job_id for name, job in jobs.items()}


def test_without_filters_every_job_shows_newest_first(alice_client, jobs):
    assert shown(alice_client) == [jobs[n] for n in ("team_running", "running", "queued", "succeeded", "failed")]


@pytest.mark.parametrize(
    "status,expected",
    [
        ("running", {"running", "team_running"}),
        ("queued", {"queued"}),
        ("succeeded", {"succeeded"}),
        ("failed", {"failed"}),
        ("cancelled", set()),
        ("stalled", {"running"}),
    ],
)
def test_filter_by_status(alice_client, jobs, status, expected):
    assert set(shown(alice_client, f"?status={status}")) == {jobs[n] for n in expected}


def test_filter_by_workspace(alice_client, alice, team, jobs):
    page = alice_client.get(f"/?workspace={team.pk}").content.decode()
    assert "Tracked jobs in Research team" in page
    assert shown(alice_client, f"?workspace={team.pk}") == [jobs["team_running"]]
    personal = alice.personal_workspace.pk
    assert jobs["team_running"] not in shown(alice_client, f"?workspace={personal}")
    assert len(shown(alice_client, f"?workspace={personal}")) == 4


def test_filter_by_model_is_a_case_insensitive_substring(alice_client, jobs):
    assert set(shown(alice_client, "?model=qwen3")) == {jobs["running"], jobs["team_running"], jobs["succeeded"]}
    assert shown(alice_client, "?model=LLAMA-3.1") == [jobs["queued"]]
    assert shown(alice_client, "?model=%20gpt-oss%20") == [jobs["failed"]]


@pytest.mark.parametrize(
    "period,expected",
    [
        ("day", {"team_running", "running"}),
        ("week", {"team_running", "running", "queued"}),
        ("month", {"team_running", "running", "queued", "succeeded"}),
    ],
)
def test_filter_by_when_the_job_was_tracked(alice_client, jobs, period, expected):
    assert set(shown(alice_client, f"?period={period}")) == {jobs[n] for n in expected}


def test_filters_combine(alice_client, team, jobs):
    assert shown(alice_client, f"?status=running&model=qwen&workspace={team.pk}&period=day") == [jobs["team_running"]]
    assert shown(alice_client, "?status=running&period=day&model=llama") == []


def test_sort_orders(alice_client, jobs):
    order = lambda *names: [jobs[n] for n in names]  # noqa: E731
    assert shown(alice_client, "?sort=newest") == order("team_running", "running", "queued", "succeeded", "failed")
    assert shown(alice_client, "?sort=oldest") == order("failed", "succeeded", "queued", "running", "team_running")
    # Status: alphabetical, newest first within a status.
    assert shown(alice_client, "?sort=status") == order("failed", "queued", "team_running", "running", "succeeded")
    # Recently updated: by the last successful refresh.
    for index, name in enumerate(("queued", "failed", "running", "succeeded", "team_running")):
        TrackedJob.objects.filter(job_id=jobs[name]).update(fetched_at=timezone.now() - dt.timedelta(minutes=index))
    assert shown(alice_client, "?sort=updated") == order("queued", "failed", "running", "succeeded", "team_running")


@pytest.mark.parametrize(
    "query",
    [
        "?status=bogus",
        "?workspace=abc",
        "?workspace=987654",
        "?period=year",
        "?sort=random",
        "?sort=",
        "?model=" + "x" * 500,
        "?status=running&status=%00",
        "?workspace=-1&period=%ff",
    ],
)
def test_bad_values_in_the_url_are_ignored(alice_client, jobs, query):
    response = alice_client.get("/" + query)
    assert response.status_code == 200
    assert len(shown(alice_client, query)) == 5


def test_another_users_workspace_cannot_be_peeked_at_through_the_filter(client, charlie, jobs, team):
    client.force_login(charlie)
    assert shown(client, f"?workspace={team.pk}") == []
    assert shown(client, "?status=running") == []


def test_a_bad_value_does_not_throw_away_the_good_filters(alice_client, jobs):
    """?status=failed with a sort order from an old bookmark still shows only failed jobs."""
    assert shown(alice_client, "?status=failed&sort=random") == [jobs["failed"]]
    assert shown(alice_client, "?model=llama&period=fortnight") == [jobs["queued"]]


def test_no_match_says_so_and_offers_to_show_everything(alice_client, jobs):
    page = alice_client.get("/?status=cancelled").content.decode()
    assert "No job matches these filters." in page
    assert '<a href="/">Show all jobs</a>' in page
    assert "No jobs tracked yet." not in page
    # Unfiltered, there is no such link.
    assert "Show all jobs" not in alice_client.get("/").content.decode()


def test_the_chosen_filters_stay_selected(alice_client, team, jobs):
    page = alice_client.get(f"/?status=stalled&model=qwen&period=week&sort=oldest&workspace={team.pk}").content.decode()
    assert re.search(r'<option value="stalled" selected>', page)
    assert re.search(r'<option value="week" selected>', page)
    assert re.search(r'<option value="oldest" selected>', page)
    assert re.search(rf'<option value="{team.pk}" selected>', page)
    assert 'value="qwen"' in page


def _queries(client, url) -> int:
    # Every card rendered afresh (not taken from the rendered-parts cache): the worst case, the
    # same whatever earlier requests happened to render.
    caches["rendered"].clear()
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


def test_filtered_views_run_a_constant_number_of_queries(alice_client, make_job, team, alice):
    team_token = services.token_create(workspace=team, user=alice, name="team", secret="sk-team-0123456789")
    urls = [
        "/?status=running&model=qwen&period=week&sort=updated",
        f"/?workspace={team.pk}&sort=status",
        "/?status=stalled&sort=oldest",
    ]

    def add(count):
        for i in range(count):
            job = make_job(
                workspace=team if i % 2 else None,
                token=team_token if i % 2 else None,
                status="running",
                model="Qwen/Qwen3-4B",
            )
            if i % 3 == 0:
                TrackedJob.objects.filter(pk=job.pk).update(stalled_at=timezone.now())

    add(3)
    with_3 = [_queries(alice_client, url) for url in urls]
    add(297)
    with_300 = [_queries(alice_client, url) for url in urls]
    assert with_3 == with_300
    # Session, user, tokens, memberships, the counters, the jobs, deployments, workspaces (2),
    # tokens (2), the worker, and for the cards' costs the price tables and Token Factory's prices.
    assert max(with_3) <= 14
    assert len(shown(alice_client, urls[0])) == 50  # a page's worth; the rest on later pages
    assert "Page 1 of 6" in alice_client.get(urls[0]).content.decode()
