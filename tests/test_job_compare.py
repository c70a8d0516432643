"""Comparing 2 to 4 jobs side by side: facts, hyperparameters (those that differ marked), final
metrics and overlaid curves, a shareable link, boxes on the dashboard cards, and a 404 when any
job is not the viewer's."""

from __future__ import annotations

import re

import pytest
from django.utils import timezone

from jobs import services
from jobs.models import TrackedJob, TrainingCheckpoint


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
    own_token = services.token_create(
        workspace=charlie.personal_workspace, user=charlie, name="c", secret="sk-charlie-123456"
    )
    mine = TrackedJob.objects.create(
        workspace=charlie.personal_workspace,
        token=own_token,
        job_id="ftjob-charlie1",
        snapshot={"id": "ftjob-charlie1", "status": "running"},
        status="running",
        fetched_at=timezone.now(),
        checked_at=timezone.now(),
    )
    client.force_login(charlie)
    response = client.get(f"/jobs/compare/?ids={mine.pk}&ids={theirs.pk}")
    assert response.status_code == 404 and "alice-only" not in response.content.decode()
    assert client.get(f"/jobs/compare/?ids={mine.pk}&ids=abc").status_code == 404


def test_dashboard_cards_have_compare_boxes_tied_to_the_compare_form(alice_client, make_job):
    job = make_job()
    page = alice_client.get("/").content.decode()
    assert 'id="compare-form"' in page and 'action="/jobs/compare/"' in page
    assert f'id="compare-{job.pk}"' in page and 'form="compare-form"' in page and 'name="ids"' in page
