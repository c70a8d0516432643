"""Cancel, file names, deployed models, exports and compare, against the fake API over HTTP."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
from django.test import Client
from django.utils import timezone

from jobs import services
from jobs.models import AuditEvent, Membership, TrainingCheckpoint, TrainingEvent
from tests.support.accounts import ALICE_SECRET, track_remote_job

CANCEL_NOT_OFFERED = "This Token Factory endpoint does not offer cancelling."


@pytest.fixture
def running(fake_api, alice, alice_token):
    return track_remote_job(fake_api, alice, alice_token, total_steps=100, trained_steps=10)


def _page(client, job) -> str:
    response = client.get(f"/jobs/{job.pk}/")
    assert response.status_code == 200
    return response.content.decode()


def _as(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


# --- Cancel ----------------------------------------------------------------------------------


def test_cancel_asks_first_then_cancels_refreshes_and_records_who(alice_client, fake_api, running):
    assert 'href="/jobs/%d/cancel/"' % running.pk in _page(alice_client, running)
    confirm = alice_client.get(f"/jobs/{running.pk}/cancel/").content.decode()
    assert "Cancel job" in confirm and running.job_id in confirm.replace("<wbr>", "")
    assert fake_api.get_job(running.job_id)["status"] == "running"  # a GET changes nothing

    response = alice_client.post(f"/jobs/{running.pk}/cancel/", follow=True)
    page = response.content.decode()
    assert fake_api.get_job(running.job_id)["status"] == "cancelled"
    assert 'badge-cancelled">cancelled<' in page  # refreshed at once, no waiting for the next poll
    assert f'href="/jobs/{running.pk}/cancel/"' not in page
    audit = AuditEvent.objects.get(action="job.cancel")
    assert audit.actor_name == "alice" and audit.description == f"cancelled job {running.job_id}"
    posts = [c for c in fake_api.calls_for(running.job_id) if c.method == "POST"]
    assert [c.path for c in posts] == [f"/v1/fine_tuning/jobs/{running.job_id}/cancel"]


@pytest.mark.parametrize("status", [404, 405])
def test_an_api_without_cancel_says_so_and_stops_offering_it(alice_client, fake_api, running, status):
    fake_api.set_cancel(status=status)
    page = alice_client.post(f"/jobs/{running.pk}/cancel/", follow=True).content.decode()
    assert CANCEL_NOT_OFFERED in page
    assert fake_api.get_job(running.job_id)["status"] == "running"
    assert not AuditEvent.objects.filter(action="job.cancel").exists()
    assert f'href="/jobs/{running.pk}/cancel/"' not in _page(alice_client, running)
    # Nor on another job of the same API, nor asked again.
    fake_api.reset_calls()
    other = track_remote_job(fake_api, running.added_by, running.token)
    assert f'href="/jobs/{other.pk}/cancel/"' not in _page(alice_client, other)
    alice_client.post(f"/jobs/{other.pk}/cancel/")
    assert not [c for c in fake_api.calls if c.method == "POST"]


@pytest.mark.parametrize("kind,words", [("429", "rate-limiting"), ("500", "unavailable"), ("401", "rejected")])
def test_other_cancel_failures_show_their_message_and_lose_nothing(alice_client, fake_api, running, kind, words):
    fake_api.fail_next(kind, job_id=running.job_id)
    page = alice_client.post(f"/jobs/{running.pk}/cancel/", follow=True).content.decode()
    assert words in page
    assert fake_api.get_job(running.job_id)["status"] == "running"
    assert not AuditEvent.objects.filter(action="job.cancel").exists()
    assert CANCEL_NOT_OFFERED not in page


def test_viewers_are_not_offered_cancel(fake_api, alice, bob, team, alice_token):
    token = services.token_create(workspace=team, user=alice, name="team", secret=ALICE_SECRET)
    remote = fake_api.add_job()
    job = services.job_track(workspace=team, token=token, job_id=remote["id"], user=alice)
    Membership.objects.filter(workspace=team, user=bob).update(role=Membership.Role.VIEWER)
    assert "Cancel job" not in _page(_as(bob), job)
    assert _as(bob).post(f"/jobs/{job.pk}/cancel/").status_code == 403
    assert fake_api.get_job(remote["id"])["status"] == "running"


def test_a_finished_job_offers_no_cancel(alice_client, fake_api, alice, alice_token):
    job = track_remote_job(fake_api, alice, alice_token, status="succeeded")
    assert "Cancel job" not in _page(alice_client, job)
    page = alice_client.post(f"/jobs/{job.pk}/cancel/", follow=True).content.decode()
    assert "already finished" in page
    assert not [c for c in fake_api.calls if c.method == "POST"]


# --- Files -----------------------------------------------------------------------------------


def test_files_that_answer_show_name_and_size_and_the_others_their_id(alice_client, fake_api, alice, alice_token):
    fake_api.add_file("file-train-1", filename="support-<b>chats</b>.jsonl", size=2_500_000)
    job = track_remote_job(fake_api, alice, alice_token, training_file="file-train-1",
                           validation_file="file-missing-2")
    page = _page(alice_client, job)
    assert "support-&lt;b&gt;chats&lt;/b&gt;.jsonl" in page and "2.4\xa0MB" in page
    assert "file-train-1" in page.replace("<wbr>", "")  # the ID stays, with its copy button
    assert "file-missing-2" in page.replace("<wbr>", "")


def test_page_renders_never_ask_about_files(alice_client, fake_api, alice, alice_token):
    fake_api.add_file("file-train-1", filename="train.jsonl")
    job = track_remote_job(fake_api, alice, alice_token, training_file="file-train-1", validation_file="file-gone")
    fake_api.reset_calls()
    for _ in range(3):
        _page(alice_client, job)
    assert not [c for c in fake_api.calls if c.path.startswith("/v1/files/")]


def test_an_api_without_files_keeps_showing_ids_and_is_not_asked_every_refresh(alice_client, fake_api, alice, alice_token):
    fake_api.set_files(supported=False)
    job = track_remote_job(fake_api, alice, alice_token, training_file="file-train-1")
    page = _page(alice_client, job)
    assert "file-train-1" in page.replace("<wbr>", "") and "file-name" not in page
    fake_api.reset_calls()
    alice_client.post(f"/jobs/{job.pk}/refresh/")
    alice_client.post(f"/jobs/{job.pk}/refresh/")
    assert not [c for c in fake_api.calls if c.path.startswith("/v1/files/")]


def test_result_files_get_their_names_when_the_refresh_sees_them(alice_client, fake_api, running):
    fake_api.add_file("file-result-9", filename="metrics.csv", size=512)
    fake_api.update_job(running.job_id, status="succeeded", result_files=["file-result-9"])
    alice_client.post(f"/jobs/{running.pk}/refresh/")
    page = _page(alice_client, running)
    assert "metrics.csv" in page and "512\xa0bytes" in page


# --- Deployments -----------------------------------------------------------------------------


def test_models_deployed_from_a_job_are_listed_and_the_card_says_deployed(alice_client, fake_api, running):
    fake_api.add_model(job_id=running.job_id, checkpoint_id="ftckpt_abc", status="active", name="support-bot-v1")
    fake_api.add_model(job_id="ftjob-someone-else", name="not-ours")
    alice_client.post(f"/jobs/{running.pk}/refresh/")
    page = _page(alice_client, running)
    assert "Deployed models" in page and "support-bot-v1" in page and "ftckpt_abc" in page.replace("<wbr>", "")
    assert "active" in page and "not-ours" not in page
    dashboard = alice_client.get("/").content.decode()
    assert 'badge-deployed">deployed<' in dashboard


def test_models_are_asked_about_once_per_interval_per_token(alice_client, fake_api, running):
    for _ in range(3):
        alice_client.post(f"/jobs/{running.pk}/refresh/")
    assert len([c for c in fake_api.calls if c.path == "/v0/models"]) == 1


@pytest.mark.parametrize("status", [404, 405])
def test_an_api_without_models_changes_nothing_on_the_page(alice_client, fake_api, running, status):
    fake_api.set_models(status=status)
    alice_client.post(f"/jobs/{running.pk}/refresh/")
    page = _page(alice_client, running)
    assert "Deployed models" not in page and "deployed" not in alice_client.get("/").content.decode()
    assert "refresh_error" not in page and "failed" not in page.lower().split("raw json")[0]


# --- Export ----------------------------------------------------------------------------------


def _store_learning(job):
    now = timezone.now()
    TrainingEvent.objects.create(job=job, upstream_id="ev-1", created_at=now, level="info", message="=cmd|' /C calc'!A0")
    TrainingCheckpoint.objects.create(job=job, upstream_id="ckpt-1", created_at=now, step=10,
                                      metrics={"train_loss": 1.5, "valid_loss": "NaN"},
                                      fine_tuned_model_checkpoint="=HYPERLINK(\"http://evil\")")
    TrainingCheckpoint.objects.create(job=job, upstream_id="ckpt-2", created_at=now, step=20,
                                      metrics={"train_loss": 0.9, "valid_loss": 1.0}, fine_tuned_model_checkpoint="m:ckpt-20")


def test_a_job_exports_as_json_with_snapshot_timeline_events_and_checkpoints(alice_client, running):
    _store_learning(running)
    response = alice_client.get(f"/jobs/{running.pk}/export.json")
    assert response["Content-Disposition"] == f'attachment; filename="{running.job_id}.json"'
    document = json.loads(response.content)
    assert document["snapshot"]["id"] == running.job_id
    assert document["timeline"] and document["timeline"][0]["kind"]
    assert [e["id"] for e in document["events"]] == ["ev-1"]
    assert [c["step"] for c in document["checkpoints"]] == [10, 20]
    assert document["checkpoints"][0]["metrics"]["valid_loss"] == "NaN"


def test_metrics_export_as_csv_safe_from_formulas(alice_client, running):
    _store_learning(running)
    response = alice_client.get(f"/jobs/{running.pk}/metrics.csv")
    assert response["Content-Disposition"] == f'attachment; filename="{running.job_id}-metrics.csv"'
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0][:5] == ["step", "created_at", "checkpoint_id", "fine_tuned_model_checkpoint", "train_loss"]
    assert rows[1][0] == "10" and rows[1][3] == "'=HYPERLINK(\"http://evil\")"
    assert rows[1][4] == "1.5" and rows[1][5] == ""  # NaN is no number
    assert rows[2][5] == "1.0"


def test_the_dashboard_exports_its_current_view_every_page_and_formula_safe(alice_client, make_job):
    make_job(status="running", suffix="-2+3", model="Qwen/Qwen3-4B")
    make_job(status="succeeded", suffix="@SUM(A1)")
    for _ in range(55):  # more than one page of cards
        make_job(status="running")
    response = alice_client.get("/jobs/export.csv?status=running")
    assert response["Content-Disposition"] == 'attachment; filename="ftdash-jobs.csv"'
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0][0] == "job_id" and len(rows) == 1 + 56
    suffixes = {row[6] for row in rows[1:]}
    assert "'-2+3" in suffixes and "'@SUM(A1)" not in suffixes  # filtered out: succeeded


def test_exports_are_a_404_for_outsiders(charlie, running):
    client = _as(charlie)
    for url in (f"/jobs/{running.pk}/export.json", f"/jobs/{running.pk}/metrics.csv"):
        assert client.get(url).status_code == 404
    rows = list(csv.reader(io.StringIO(client.get("/jobs/export.csv").content.decode())))
    assert rows == [rows[0]]  # the header only


# --- Compare ---------------------------------------------------------------------------------


def test_compare_shows_facts_hyperparameters_and_final_metrics_side_by_side(alice_client, make_job):
    a = make_job(hyperparameters={"batch_size": 32, "n_epochs": 3}, suffix="run-a")
    b = make_job(hyperparameters={"batch_size": 64, "n_epochs": 3}, suffix="run-b")
    TrainingCheckpoint.objects.create(job=a, upstream_id="c1", step=5, metrics={"train_loss": 0.5})
    TrainingCheckpoint.objects.create(job=b, upstream_id="c2", step=5, metrics={"train_loss": 0.25})
    response = alice_client.get(f"/jobs/compare/?ids={a.pk}&ids={b.pk}")
    assert response.status_code == 200
    page = response.content.decode()
    assert "Compare 2 jobs" in page and "run-a" in page and "run-b" in page
    differing = re.findall(r'<tr class="differs">\s*<th scope="row">([^<]+?) <span', page)
    assert "Batch size" in differing and "Epochs" not in differing and "Suffix" in differing
    assert "0.5" in page and "0.25" in page
    # Both jobs' curves overlaid on one chart (only train loss was reported), each its own style.
    assert page.count('class="chart-svg"') == 1
    assert re.findall(r'class="chart-series (series-\w+)"', page) == ["series-solid", "series-dashed"]
    assert a.job_id in page.split('id="compare-train_loss"')[1]
    assert f"ids={a.pk}&amp;ids={b.pk}" in page  # the shareable link


@pytest.mark.parametrize("count", [1, 5])
def test_compare_explains_when_too_few_or_too_many_jobs_are_picked(alice_client, make_job, count):
    ids = "&".join(f"ids={make_job().pk}" for _ in range(count))
    page = alice_client.get(f"/jobs/compare/?{ids}").content.decode()
    assert f"Pick between 2 and 4 jobs to compare (you picked {count})." in page


def test_compare_is_a_404_when_any_job_is_not_the_viewers(client, charlie, make_job, alice, alice_token):
    theirs = make_job(suffix="alice-only")
    own_token = services.token_create(workspace=charlie.personal_workspace, user=charlie, name="c", secret="sk-charlie-123456")
    from jobs.models import TrackedJob
    mine = TrackedJob.objects.create(workspace=charlie.personal_workspace, token=own_token, job_id="ftjob-charlie1",
                                     snapshot={"id": "ftjob-charlie1", "status": "running"}, status="running",
                                     fetched_at=timezone.now(), checked_at=timezone.now())
    client.force_login(charlie)
    response = client.get(f"/jobs/compare/?ids={mine.pk}&ids={theirs.pk}")
    assert response.status_code == 404 and "alice-only" not in response.content.decode()
    assert client.get(f"/jobs/compare/?ids={mine.pk}&ids=abc").status_code == 404


def test_dashboard_cards_have_compare_boxes_tied_to_the_compare_form(alice_client, make_job):
    job = make_job()
    page = alice_client.get("/").content.decode()
    assert 'id="compare-form"' in page and 'action="/jobs/compare/"' in page
    assert f'id="compare-{job.pk}"' in page and 'form="compare-form"' in page and 'name="ids"' in page
