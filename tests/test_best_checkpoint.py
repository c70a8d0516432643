"""The best checkpoint, one rule on every page: the lowest validation loss (full-validation where
present), the training loss for a job without a validation file, null metrics ignored, NaN
never best, the earliest on a tie. Checkpoints come from the fake Token Factory over HTTP and
are stored by the sync; the job page marks the row "Best", its progress panel says "Best so
far", the loss curve marks it and the alerts, compare and the exports carry it, and the page
says whether it is the deployed one."""

from __future__ import annotations

import csv
import html
import io
import json
import re
from types import SimpleNamespace

import pytest

from jobs import charts
from jobs.models import JobAlert, TrackedJob
from jobs.training_health import best_checkpoint, best_of, points
from tests.support.accounts import track_remote_job
from tests.support.django_client import job_page
from tests.support.tracked_jobs import age, poll


def loss(train=None, valid=None, full=None) -> dict:
    """A checkpoint's metrics with exactly these losses (None is a null the API sent)."""
    return {"train_loss": train, "valid_loss": valid, "full_valid_loss": full}


def tracked_with(
    fake_api, alice, alice_token, checkpoints: list[dict], *, deployed: dict[int, str] | None = None, **fields
) -> tuple[TrackedJob, list[dict]]:
    """A running job of alice's whose checkpoints (10 steps apart) the sync read over HTTP, with
    custom models `deployed` from some of them ({index in `checkpoints`: model name})."""
    job = track_remote_job(fake_api, alice, alice_token, total_steps=100, trained_steps=5, **fields)
    made = [fake_api.add_checkpoint(job.job_id, step_number=10 * i, metrics=m) for i, m in enumerate(checkpoints, 1)]
    for index, name in (deployed or {}).items():
        fake_api.add_model(job_id=job.job_id, checkpoint_id=made[index]["id"], name=name)
    age(job, seconds=60)
    return poll(job), made


def text_of(page: str) -> str:
    """The page's words as a reader sees them (tags and <wbr> dropped, entities decoded)."""
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page.replace("<wbr>", ""))))


def best_rows(page: str) -> list[str]:
    return re.findall(r'<tr id="checkpoint-\d+" class="checkpoint-best">(.*?)</tr>', page, re.S)


# Valid loss falls to 0.81 at epoch 3, then rises twice while the training loss keeps falling.
OVERFITTING = [
    loss(1.2, 1.0),
    loss(1.0, 0.9),
    loss(0.8, 0.81),
    loss(0.6, 0.86),
    loss(0.4, 0.93),
]


# ---------------------------------------------------------------------------- the rule itself


def _points(*metrics: dict):
    return points(SimpleNamespace(upstream_id=f"ck{i}", step=i * 10, metrics=m) for i, m in enumerate(metrics, 1))


def test_the_lowest_validation_loss_wins_with_full_validation_preferred():
    found = best_checkpoint(_points(loss(1, 0.5, 0.9), loss(1, 0.7, 0.6), loss(1, 0.4, None)), has_validation=True)
    # Epoch 3 has no full-valid loss, so its valid loss (0.4) stands in and is the lowest.
    assert (found.point.epoch, found.metric, found.value) == (3, "valid_loss", 0.4)
    found = best_checkpoint(_points(loss(1, 0.5, 0.9), loss(1, 0.7, 0.6)), has_validation=True)
    assert (found.point.epoch, found.metric) == (2, "full_valid_loss")  # 0.6 beats 0.9, whatever valid says
    assert found.reason == "lowest full-valid loss (0.6)" and found.summary == "epoch 2, full-valid loss 0.6"


def test_nulls_and_nan_are_never_best_and_the_earliest_wins_a_tie():
    found = best_checkpoint(
        _points(loss(), loss(None, "NaN"), loss(1.0, 0.8), loss(0.9, float("nan")), loss(0.5, 0.8)), has_validation=True
    )
    assert found.point.epoch == 3 and found.value == 0.8
    assert best_checkpoint(_points(loss(), loss(valid="NaN")), has_validation=True) is None
    assert best_checkpoint([], has_validation=True) is None


def test_without_validation_the_training_loss_decides():
    checkpoints = [SimpleNamespace(upstream_id=f"ck{i}", step=i, metrics=loss(t)) for i, t in enumerate([2, 1, 3], 1)]
    made, found = best_of(checkpoints, validation_file="")
    assert len(made) == 3 and found.point.epoch == 2 and found.reason == "lowest train loss (1)"
    # A validation file with no validation loss reported yet: no best until one is.
    assert best_of(checkpoints, validation_file="file-abc")[1] is None


def test_marks_sit_on_their_step_an_alert_widens_the_axis_and_a_best_on_a_missing_value_is_left_out():
    rows = [{"step": 10, "valid_loss": 1.0}, {"step": 20, "valid_loss": 0.5}, {"step": 30, "valid_loss": None}]
    specs = (charts.SeriesSpec("valid_loss", "Valid loss", "dashed"),)
    chart = charts.line_chart(
        "Loss",
        specs,
        rows,
        marks=[
            charts.MarkSpec("best", 20, "Best: epoch 2, valid loss 0.5", key="valid_loss"),
            charts.MarkSpec("alert", 30, "Diverged: NaN"),
            charts.MarkSpec("best", 30, "on a missing value", key="valid_loss"),
            charts.MarkSpec("alert", None, "no step"),
        ],
    )
    best, alert = chart.marks  # the alert at step 30 widens the axis, though no loss there is a number
    assert chart.x_ticks[-1].label == "30"
    point = chart.series[0].markers[1]
    assert (best.kind, best.cx, best.cy, best.text) == ("best", point.cx, point.cy, "Best: epoch 2, valid loss 0.5")
    assert alert.kind == "alert" and alert.cy < alert.bottom == chart.plot[3]
    assert best.shape.startswith("M") and best.shape.endswith("Z") and alert.shape != best.shape


# ---------------------------------------------------------------------------- the job page


def test_the_checkpoints_table_marks_one_best_row_and_the_panel_says_best_so_far(
    fake_api, alice, alice_token, alice_client
):
    job, made = tracked_with(fake_api, alice, alice_token, OVERFITTING)
    page = job_page(alice_client, job)

    rows = best_rows(page)
    assert len(rows) == 1
    assert '<th scope="row">30 ' in rows[0] and 'class="badge badge-best">Best<' in rows[0]
    assert "lowest valid loss (0.81)" in rows[0] and made[2]["fine_tuned_model_checkpoint"] in rows[0]
    assert "Best so far: epoch 3, valid loss 0.81" in text_of(page)


def test_a_job_without_a_validation_file_is_judged_by_its_training_loss(fake_api, alice, alice_token, alice_client):
    job, _ = tracked_with(fake_api, alice, alice_token, [loss(1.5), loss(0.7), loss(0.9)], validation_file=None)
    page = job_page(alice_client, job)
    assert len(best_rows(page)) == 1 and "lowest train loss (0.7)" in best_rows(page)[0]
    assert "Best so far: epoch 2, train loss 0.7" in text_of(page)


def test_full_validation_is_preferred_and_null_or_nan_checkpoints_are_passed_over(
    fake_api, alice, alice_token, alice_client
):
    job, _ = tracked_with(
        fake_api,
        alice,
        alice_token,
        [
            loss(),
            loss(None, None, None),
            loss(1.0, 0.5, 0.9),
            loss(0.9, 0.6, 0.7),
            loss(0.8, float("nan"), float("nan")),
        ],
    )
    page = job_page(alice_client, job)
    assert "Best so far: epoch 4, full-valid loss 0.7" in text_of(page)
    assert len(best_rows(page)) == 1 and '<th scope="row">40 ' in best_rows(page)[0]


def test_no_best_before_a_checkpoint_reports_the_loss_that_decides(fake_api, alice, alice_token, alice_client):
    job, _ = tracked_with(fake_api, alice, alice_token, [loss(), loss()])
    page = job_page(alice_client, job)
    assert best_rows(page) == [] and "Best so far" not in page and "chart-mark" not in page
    assert not JobAlert.objects.filter(job=job).exists()  # null metrics raise nothing either


def test_the_loss_curve_marks_the_best_checkpoint_and_the_alert_with_text_alternatives(
    fake_api, alice, alice_token, alice_client
):
    job, made = tracked_with(fake_api, alice, alice_token, OVERFITTING)
    alert = JobAlert.objects.get(job=job, rule="overfitting")
    assert alert.step == 50
    page = job_page(alice_client, job)
    loss_chart = page.split('id="chart-loss"')[1].split("</figure>")[0]

    best_mark = re.search(
        r'<g class="chart-mark chart-mark-best"><path d="[^"]+"></path><title>([^<]+)</title>', loss_chart
    )
    assert best_mark and best_mark.group(1) == "Best: epoch 3, valid loss 0.81"
    alert_mark = re.search(
        r'<g class="chart-mark chart-mark-alert"><line[^>]*></line><path[^>]*></path><title>([^<]+)</title>', loss_chart
    )
    assert alert_mark
    assert html.unescape(alert_mark.group(1)) == (
        "Overfitting: Validation loss has risen for 2 checkpoints (0.81 → 0.86 → 0.93); "
        f"the best checkpoint is epoch 3 ({made[2]['id']})"
    )
    # Said in the chart's description and its legend too, not only on hover.
    description = re.search(r'<desc id="chart-loss-desc">([^<]+)</desc>', loss_chart).group(1)
    assert "Best: epoch 3, valid loss 0.81." in description and "Overfitting: Validation loss has risen" in description
    assert "chart-mark" not in page.split('id="chart-accuracy"')[1].split("</figure>")[0]

    # The data table under the curves notes both at their steps.
    data = page.split('id="curves-data"')[1].split("</details>")[0]
    notes = dict(re.findall(r'<th scope="row">(\d+)</th>.*?<td class="chart-note">([^<]*)</td>', data))
    assert notes["30"] == "Best: lowest valid loss (0.81)"
    assert html.unescape(notes["50"]).startswith("Overfitting: Validation loss has risen for 2 checkpoints")
    assert notes["10"] == notes["20"] == notes["40"] == ""


def test_a_divergence_is_marked_at_its_checkpoint_and_stays_marked_once_cleared(
    fake_api, alice, alice_token, alice_client
):
    # Every loss of epoch 2 is NaN: its step is still on the axis, for the alert's mark.
    job, _ = tracked_with(fake_api, alice, alice_token, [loss(1.0, 1.1), loss(float("nan"), float("nan"))])
    assert JobAlert.objects.get(job=job, rule="diverged").step == 20
    fake_api.advance(job.job_id, 25)  # epochs end: the checkpoints are read again
    fake_api.add_checkpoint(job.job_id, step_number=30, metrics=loss(0.8, 0.9))
    age(job, seconds=120)
    job = poll(job)
    assert JobAlert.objects.get(job=job, rule="diverged").cleared_at is not None
    page = job_page(alice_client, job)
    titles = [html.unescape(t) for t in re.findall(r'chart-mark-alert">.*?<title>([^<]+)</title>', page)]
    assert titles == ["Diverged: The train loss, valid loss of epoch 2 is not a number (NaN or infinite) (cleared)"]
    assert "Best so far: epoch 3, valid loss 0.9" in text_of(page)


# ---------------------------------------------------------------------------- deployments


def test_the_page_says_the_best_checkpoint_is_the_deployed_one(fake_api, alice, alice_token, alice_client):
    job, _ = tracked_with(fake_api, alice, alice_token, OVERFITTING, deployed={2: "support-bot-v1"})
    assert "The best checkpoint (epoch 3) is deployed as support-bot-v1" in text_of(job_page(alice_client, job))


def test_the_page_says_when_another_checkpoint_is_deployed(fake_api, alice, alice_token, alice_client):
    job, _ = tracked_with(fake_api, alice, alice_token, OVERFITTING, deployed={4: "<b>bot</b>"})
    page = job_page(alice_client, job)
    assert "<b>bot</b>" not in page  # an upstream name, escaped
    assert "Deployed: <b>bot</b> from epoch 5; the best checkpoint is epoch 3" in text_of(page)


# ---------------------------------------------------------------------------- compare and exports


def test_compare_shows_each_jobs_best_checkpoint_and_its_losses(fake_api, alice, alice_token, alice_client):
    a, made_a = tracked_with(fake_api, alice, alice_token, OVERFITTING)
    b, made_b = tracked_with(fake_api, alice, alice_token, [loss(2.0), loss(1.0)], validation_file=None)
    c, _ = tracked_with(fake_api, alice, alice_token, [loss()])
    page = alice_client.get(f"/jobs/compare/?ids={a.pk}&ids={b.pk}&ids={c.pk}").content.decode()
    table = page.split('id="compare-best-heading"')[1].split("</section>")[0]
    rows = {
        th.split(" <span")[0]: [html.unescape(td).replace("<wbr>", "") for td in tds]
        for th, tds in (
            (m.group(1), re.findall(r"<td>(.*?)</td>", m.group(2)))
            for m in re.finditer(r'<th scope="row">(.*?)</th>(.*?)</tr>', table, re.S)
        )
    }
    assert rows["Best checkpoint"] == [
        f"epoch 3, step 30 ({made_a[2]['id']})",
        f"epoch 2, step 20 ({made_b[1]['id']})",
        "—",
    ]
    assert rows["Chosen by"] == ["lowest valid loss (0.81)", "lowest train loss (1)", "—"]
    assert rows["Train loss at the best"] == ["0.8", "1", "—"]
    assert rows["Valid loss at the best"] == ["0.81", "—", "—"]
    assert rows["Full-valid loss at the best"] == ["—", "—", "—"]


def test_the_json_export_names_the_best_checkpoint_or_null(fake_api, alice, alice_token, alice_client):
    job, made = tracked_with(fake_api, alice, alice_token, OVERFITTING)
    document = json.loads(alice_client.get(f"/jobs/{job.pk}/export.json").content)
    assert document["best_checkpoint"] == {
        "epoch": 3,
        "id": made[2]["id"],
        "step": 30,
        "metric": "valid_loss",
        "value": 0.81,
        "reason": "lowest valid loss (0.81)",
        "fine_tuned_model_checkpoint": made[2]["fine_tuned_model_checkpoint"],
    }
    empty, _ = tracked_with(fake_api, alice, alice_token, [loss()])
    assert json.loads(alice_client.get(f"/jobs/{empty.pk}/export.json").content)["best_checkpoint"] is None


def test_the_metrics_csv_flags_the_best_row_and_the_dashboard_csv_names_it(fake_api, alice, alice_token, alice_client):
    job, made = tracked_with(fake_api, alice, alice_token, OVERFITTING)
    other, _ = tracked_with(fake_api, alice, alice_token, [loss()])
    rows = list(csv.reader(io.StringIO(alice_client.get(f"/jobs/{job.pk}/metrics.csv").content.decode())))
    assert rows[0][-1] == "best"
    assert [row[-1] for row in rows[1:]] == ["false", "false", "true", "false", "false"]
    assert rows[3][2] == made[2]["id"]

    rows = list(csv.DictReader(io.StringIO(alice_client.get("/jobs/export.csv").content.decode())))
    best = {row["job_id"]: row["best_checkpoint"] for row in rows}
    assert best == {job.job_id: made[2]["id"], other.job_id: ""}


@pytest.mark.parametrize("jobs", [1, 12])
def test_the_dashboard_csv_reads_the_checkpoints_in_one_query_however_many_jobs(
    fake_api, alice, alice_token, alice_client, jobs, django_assert_max_num_queries
):
    for _ in range(jobs):
        tracked_with(fake_api, alice, alice_token, [loss(1.0, 0.9), loss(0.8, 0.7)])
    with django_assert_max_num_queries(12) as captured:
        rows = list(csv.DictReader(io.StringIO(alice_client.get("/jobs/export.csv").content.decode())))
    assert len(rows) == jobs and all(row["best_checkpoint"].startswith("ftckpt_") for row in rows)
    assert sum("jobs_trainingcheckpoint" in q["sql"] for q in captured.captured_queries) == 1
