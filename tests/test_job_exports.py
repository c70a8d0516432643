"""Exports: a job as JSON (snapshot, timeline, events, checkpoints), its metrics and the dashboard's
current view as CSV safe from spreadsheet formulas, and none of it for outsiders."""

from __future__ import annotations

import csv
import io
import json

from django.utils import timezone

from jobs.models import TrainingCheckpoint, TrainingEvent
from tests.support.django_client import signed_in


def _store_learning(job):
    now = timezone.now()
    TrainingEvent.objects.create(
        job=job, upstream_id="ev-1", created_at=now, level="info", message="=cmd|' /C calc'!A0"
    )
    TrainingCheckpoint.objects.create(
        job=job,
        upstream_id="ckpt-1",
        created_at=now,
        step=10,
        metrics={"train_loss": 1.5, "valid_loss": "NaN"},
        fine_tuned_model_checkpoint='=HYPERLINK("http://evil")',
    )
    TrainingCheckpoint.objects.create(
        job=job,
        upstream_id="ckpt-2",
        created_at=now,
        step=20,
        metrics={"train_loss": 0.9, "valid_loss": 1.0},
        fine_tuned_model_checkpoint="m:ckpt-20",
    )


def test_a_job_exports_as_json_with_snapshot_timeline_events_and_checkpoints(alice_client, running_job):
    _store_learning(running_job)
    response = alice_client.get(f"/jobs/{running_job.pk}/export.json")
    assert response["Content-Disposition"] == f'attachment; filename="{running_job.job_id}.json"'
    document = json.loads(response.content)
    assert document["snapshot"]["id"] == running_job.job_id
    assert document["timeline"] and document["timeline"][0]["kind"]
    assert [e["id"] for e in document["events"]] == ["ev-1"]
    assert [c["step"] for c in document["checkpoints"]] == [10, 20]
    assert document["checkpoints"][0]["metrics"]["valid_loss"] == "NaN"


def test_metrics_export_as_csv_safe_from_formulas(alice_client, running_job):
    _store_learning(running_job)
    response = alice_client.get(f"/jobs/{running_job.pk}/metrics.csv")
    assert response["Content-Disposition"] == f'attachment; filename="{running_job.job_id}-metrics.csv"'
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0][:5] == ["step", "created_at", "checkpoint_id", "fine_tuned_model_checkpoint", "train_loss"]
    assert rows[1][0] == "10" and rows[1][3] == '\'=HYPERLINK("http://evil")'
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


def test_exports_are_a_404_for_outsiders(charlie, running_job):
    client = signed_in(charlie)
    for url in (f"/jobs/{running_job.pk}/export.json", f"/jobs/{running_job.pk}/metrics.csv"):
        assert client.get(url).status_code == 404
    rows = list(csv.reader(io.StringIO(client.get("/jobs/export.csv").content.decode())))
    assert rows == [rows[0]]  # the header only
