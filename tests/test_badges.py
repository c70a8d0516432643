"""Status badges (issue 21, section 3): per job and per workspace, as SVG, JSON and shields.io's
endpoint format; keys unguessable but stable (an HMAC), shown with copy buttons, rotated by
owners; badges reveal nothing else, are not cached, and cost one query and no upstream call."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from jobs import badges
from jobs.models import AuditEvent, Membership, TrackedJob, Workspace
from tests.support.django_client import job_page, signed_in
from tests.support.tracked_jobs import age

pytestmark = pytest.mark.django_db
SVG = "{http://www.w3.org/2000/svg}"


def get(key: str, fmt: str):
    return Client(raise_request_exception=True).get(f"/badge/{key}.{fmt}")


def svg_texts(response) -> list[str]:
    root = ET.fromstring(response.content)  # well-formed XML, whatever the label holds
    return [text.text for text in root.iter(f"{SVG}text")]


# --- What a job's badge says --------------------------------------------------------------------


def test_a_job_badge_in_its_three_formats(make_job):
    job = make_job(status="running", trained_steps=42, total_steps=100, suffix="my-run")
    key = badges.job_key(job)

    as_json = get(key, "json")
    assert as_json.json() == {"status": "running", "progress": 42, "label": "my-run"}
    shields = get(key, "shields")
    assert shields.json() == {"schemaVersion": 1, "label": "my-run", "message": "running 42%", "color": "blue"}
    svg = get(key, "svg")
    assert svg.headers["Content-Type"].startswith("image/svg+xml")
    assert set(svg_texts(svg)) == {"my-run", "running 42%"}
    for response in (as_json, shields, svg):
        assert response.status_code == 200
        assert response.headers["Cache-Control"] == "no-cache"


@pytest.mark.parametrize(
    ("fields", "message", "colour"),
    [
        ({"status": "succeeded"}, "succeeded", "brightgreen"),
        ({"status": "failed"}, "failed", "red"),
        ({"status": "queued", "trained_steps": 0, "total_steps": None}, "queued", "yellow"),
        ({"status": "validating_files", "trained_steps": 0, "total_steps": None}, "validating files", "yellow"),
        ({"status": "cancelled"}, "cancelled", "lightgrey"),
        ({"status": "running", "trained_steps": 0, "total_steps": None}, "running", "blue"),
        ({"status": "paused_by_upstream"}, "paused by upstream 25%", "lightgrey"),
    ],
)
def test_job_badge_messages_and_colours(make_job, fields, message, colour):
    shields = get(badges.job_key(make_job(**fields)), "shields").json()
    assert (shields["message"], shields["color"]) == (message, colour)


def test_the_label_is_the_jobs_label_else_its_suffix(make_job):
    labelled = make_job(suffix="the-suffix")
    TrackedJob.objects.filter(pk=labelled.pk).update(label="Llama 3 SFT")
    assert get(badges.job_key(labelled), "json").json()["label"] == "Llama 3 SFT"
    assert get(badges.job_key(make_job(suffix="the-suffix")), "json").json()["label"] == "the-suffix"
    assert get(badges.job_key(make_job(suffix="")), "json").json()["label"] == "fine-tuning"


def test_label_text_is_escaped_in_the_svg(make_job):
    job = make_job(suffix='<script>alert("x")</script>&amp;')
    svg = get(badges.job_key(job), "svg")
    assert b"<script>" not in svg.content
    assert '<script>alert("x")</script>&amp;' in svg_texts(svg)


def test_a_long_label_is_shortened_in_the_svg_only(make_job):
    job = make_job(suffix="x" * 90)
    assert get(badges.job_key(job), "json").json()["label"] == "x" * 90
    assert "x" * 59 + "…" in svg_texts(get(badges.job_key(job), "svg"))


def test_a_badge_reveals_nothing_else(make_job):
    job = make_job(status="running", suffix="run")
    key = badges.job_key(job)
    for fmt in badges.FORMATS:
        body = get(key, fmt).content.decode()
        assert job.job_id not in body and "research" not in body and "alice" not in body and "$" not in body


def test_a_badge_costs_one_query_and_no_upstream_call(fake_api, running_job, alice_workspace):
    age(running_job, seconds=3600)  # due: a page would refresh it; a badge does not
    fake_api.reset_calls()
    for key in (badges.job_key(running_job), badges.workspace_key(alice_workspace)):
        for fmt in badges.FORMATS:
            with CaptureQueriesContext(connection) as queries:
                assert get(key, fmt).status_code == 200
            assert len(queries) == 1, (key, fmt, [q["sql"] for q in queries.captured_queries])
    assert fake_api.calls == []


# --- A workspace's badge ------------------------------------------------------------------------


def test_a_workspace_badge_counts_running_and_failed_jobs(make_job, team, alice_workspace):
    for status in ("running", "running", "failed", "succeeded"):
        make_job(workspace=team, status=status)
    make_job(status="running")  # another workspace's job
    TrackedJob.objects.update(label="")
    key = badges.workspace_key(team)

    assert get(key, "json").json() == {
        "status": "failed",
        "progress": None,
        "label": "Research team",
        "running": 2,
        "failed": 1,
    }
    assert get(key, "shields").json() == {
        "schemaVersion": 1,
        "label": "Research team",
        "message": "2 running, 1 failed",
        "color": "red",
    }
    assert svg_texts(get(key, "svg")) == ["Research team"] * 2 + ["2 running, 1 failed"] * 2
    assert get(badges.workspace_key(alice_workspace), "shields").json()["color"] == "blue"
    empty = Workspace.objects.create(name="Empty")
    assert get(badges.workspace_key(empty), "shields").json() == {
        "schemaVersion": 1,
        "label": "Empty",
        "message": "0 running, 0 failed",
        "color": "brightgreen",
    }


# --- Keys: unguessable, stable, rotated ---------------------------------------------------------


def test_keys_are_stable_and_unguessable(make_job, team):
    job = make_job()
    key = badges.job_key(job)
    assert key == badges.job_key(TrackedJob.objects.get(pk=job.pk))  # stable: nothing stored
    assert re.fullmatch(rf"j{job.pk}-[0-9a-f]{{32}}", key)  # 128 bits of HMAC-SHA256
    other = make_job()
    forged = f"j{other.pk}-{key.split('-')[1]}"  # one job's MAC on another's ID
    assert get(forged, "json").status_code == 404
    assert get(f"w{job.pk}-{key.split('-')[1]}", "json").status_code == 404  # nor on a workspace's
    for junk in ("j1", f"j{job.pk}-" + "0" * 32, f"j{job.pk}-{key.split('-')[1].upper()}", "j99999999-" + "a" * 32):
        assert get(junk, "svg").status_code == 404, junk


def test_keys_keep_working_through_a_secret_key_rotation_with_a_fallback(make_job, settings):
    job = make_job()
    key = badges.job_key(job)
    old = settings.SECRET_KEY
    settings.SECRET_KEY = "a-new-secret-key-" + "x" * 40
    assert get(key, "json").status_code == 404
    settings.SECRET_KEY_FALLBACKS = [old]
    assert get(key, "json").status_code == 200


def test_an_owner_rotates_a_job_badge_and_the_old_key_stops_working(alice, bob, team, make_job):
    job = make_job(workspace=team)
    old = badges.job_key(job)
    assert signed_in(bob).post(f"/jobs/{job.pk}/badge/rotate/").status_code == 403  # owners only

    response = signed_in(alice).post(f"/jobs/{job.pk}/badge/rotate/", follow=True)

    assert "old badge URLs no longer answer" in response.content.decode()
    new = badges.job_key(TrackedJob.objects.get(pk=job.pk))
    assert new != old
    assert get(old, "svg").status_code == 404 and get(new, "svg").status_code == 200
    assert new in job_page(signed_in(alice), job) and old not in job_page(signed_in(alice), job)
    assert AuditEvent.objects.filter(workspace=team, action="badge.rotate", actor=alice).exists()


def test_an_owner_rotates_a_workspace_badge(alice, bob, team):
    old = badges.workspace_key(team)
    assert signed_in(bob).post(f"/workspaces/{team.pk}/badge/rotate/").status_code == 403
    response = signed_in(alice).post(f"/workspaces/{team.pk}/badge/rotate/")
    assert response.status_code == 302 and response.url == f"/teams/{team.pk}/#workspace-badge"
    assert get(old, "json").status_code == 404
    assert get(badges.workspace_key(Workspace.objects.get(pk=team.pk)), "json").status_code == 200
    personal = signed_in(alice).post(f"/workspaces/{alice.personal_workspace.pk}/badge/rotate/")
    assert personal.url == "/settings/#workspace-badge"


# --- Where people find them ---------------------------------------------------------------------


def test_the_job_page_shows_the_badge_urls_with_copy_buttons(alice, bob, team, make_job, django_user_model):
    job = make_job(workspace=team)
    key = badges.job_key(job)
    page = job_page(signed_in(alice), job)
    for fmt in badges.FORMATS:
        assert f"http://testserver/badge/{key}.{fmt}</code>" in page
    assert f"![status](http://testserver/badge/{key}.svg)" in page
    for what in ("badge image URL", "badge JSON URL", "shields.io endpoint URL", "badge Markdown"):
        assert f'aria-label="Copy {what}"' in page
    assert f'<img class="status-badge" src="/badge/{key}.svg"' in page
    assert "Rotate badge key" in page
    # Members and viewers see the badge; only owners rotate it.
    viewer = django_user_model.objects.create_user(username="vera", password="vera-password-1")
    Membership.objects.create(workspace=team, user=viewer, role=Membership.Role.VIEWER)
    for person in (bob, viewer):
        other = job_page(signed_in(person), job)
        assert key in other and "Rotate badge key" not in other


def test_the_team_page_and_personal_settings_show_the_workspace_badge(alice, bob, team):
    key = badges.workspace_key(team)
    owner = signed_in(alice).get(f"/teams/{team.pk}/").content.decode()
    assert f"http://testserver/badge/{key}.shields</code>" in owner and "Rotate badge key" in owner
    member = signed_in(bob).get(f"/teams/{team.pk}/").content.decode()
    assert f"http://testserver/badge/{key}.svg</code>" in member and "Rotate badge key" not in member
    settings_page = signed_in(alice).get("/settings/").content.decode()
    assert f"/badge/{badges.workspace_key(alice.personal_workspace)}.json</code>" in settings_page
