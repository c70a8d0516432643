"""Comparing 2–4 jobs side by side: key facts, hyperparameters (differences marked), final
metrics and the training curves of all of them.

`jobs_to_compare` is the access check: every job asked for must be one the viewer may see,
else the whole page is a 404, as any other page of a job they may not see.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db.models import F
from django.http import Http404

from jobs import charts, costs, training_health
from jobs.access import jobs_visible_to
from jobs.finetuning import display_value, finite_number
from jobs.metrics import METRICS
from jobs.models import TrackedJob, TrainingCheckpoint

MIN_JOBS, MAX_JOBS = 2, 4


class WrongCount(ValueError):
    """Fewer than two or more than four jobs: the message says so."""


def parse_ids(values: Iterable[str]) -> list[int]:
    """The job keys from `?ids=…` in order, each once; junk is a 404 like any unknown job."""
    ids: list[int] = []
    for value in values:
        if not (value.isascii() and value.isdigit() and len(value) <= 18):
            raise Http404("No such job.")
        if int(value) not in ids:
            ids.append(int(value))
    if not MIN_JOBS <= len(ids) <= MAX_JOBS:
        raise WrongCount(f"Pick between {MIN_JOBS} and {MAX_JOBS} jobs to compare (you picked {len(ids)}).")
    return ids


def jobs_to_compare(user, ids: list[int]) -> list[TrackedJob]:
    jobs = {job.pk: job for job in jobs_visible_to(user).filter(pk__in=ids)}
    if len(jobs) != len(ids):
        raise Http404("No such job.")
    return [jobs[pk] for pk in ids]


@dataclass(frozen=True)
class Row:
    label: str
    values: list[str]

    @property
    def differs(self) -> bool:
        return len(set(self.values)) > 1


def _date(value: dt.datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "—"


def _or_dash(value: Any) -> str:
    return "—" if value in (None, "") else display_value(value)


def key_facts(jobs: list[TrackedJob]) -> list[Row]:
    details = [job.details for job in jobs]
    costs.attach(jobs)  # one query and one cache read for the Cost row of every job
    return [
        Row("Status", [d.status_label for d in details]),
        Row("Model", [_or_dash(d.model) for d in details]),
        Row("Suffix", [_or_dash(d.suffix) for d in details]),
        Row("Workspace", [job.workspace.name for job in jobs]),
        Row("Created", [_date(d.created_at) for d in details]),
        Row("Finished", [_date(d.finished_at) for d in details]),
        Row("Steps", [f"{_or_dash(d.trained_steps)} of {_or_dash(d.total_steps)}" for d in details]),
        Row("Trained tokens", [f"{d.trained_tokens:,}" if d.trained_tokens is not None else "—" for d in details]),
        Row("Cost", [costs.cost_of(job).summary for job in jobs]),
        Row("Seed", [_or_dash(d.seed) for d in details]),
        Row("Training file", [_or_dash(d.training_file) for d in details]),
        Row("Validation file", [_or_dash(d.validation_file) for d in details]),
    ]


def hyperparameters(jobs: list[TrackedJob]) -> list[Row]:
    """Every setting any of the jobs has, in the order first met; "—" where a job has none."""
    labels: dict[str, str] = {}
    values: list[dict[str, str]] = []
    for job in jobs:
        method = job.details.method
        shown = {}
        if method is not None:
            shown["method"] = method.title
            labels.setdefault("method", "Method")
            for h in method.hyperparameters:
                labels.setdefault(h.key, h.label)
                shown[h.key] = h.display
        values.append(shown)
    return [Row(label, [v.get(key, "—") for v in values]) for key, label in labels.items()]


def checkpoints_of(jobs: list[TrackedJob]) -> dict[int, list[TrainingCheckpoint]]:
    """Each job's stored checkpoints, oldest step first (one query for all jobs)."""
    by_job: dict[int, list[TrainingCheckpoint]] = {job.pk: [] for job in jobs}
    for checkpoint in TrainingCheckpoint.objects.filter(job__in=[j.pk for j in jobs]).order_by(
        "job", F("step").asc(nulls_last=True), "created_at", "pk"
    ):
        by_job[checkpoint.job_id].append(checkpoint)
    return by_job


def final_metrics(jobs: list[TrackedJob], checkpoints: dict[int, list[TrainingCheckpoint]]) -> list[Row]:
    """Each metric's value at the job's last checkpoint that has it (missing and NaN skipped)."""
    rows = [Row("Checkpoints", [str(len(checkpoints[job.pk])) for job in jobs])]
    for metric in METRICS:
        values = []
        for job in jobs:
            found = [
                finite_number(c.metrics.get(metric.key)) for c in checkpoints[job.pk] if isinstance(c.metrics, dict)
            ]
            found = [v for v in found if v is not None]
            values.append(f"{found[-1]:.4g}" if found else "—")
        rows.append(Row(metric.label, values))
    return rows


def best_checkpoints(jobs: list[TrackedJob], checkpoints: dict[int, list[TrainingCheckpoint]]) -> list[Row]:
    """Each job's best checkpoint (`jobs.training_health.best_of`: the job page's rule), why it
    is the best, and its losses there; "—" for a job without one."""
    best = {
        job.pk: training_health.best_of(checkpoints[job.pk], validation_file=job.details.validation_file)[1]
        for job in jobs
    }
    by_id = {c.upstream_id: c for cs in checkpoints.values() for c in cs}
    rows = [
        Row("Best checkpoint", [_best_name(best[job.pk]) for job in jobs]),
        Row("Chosen by", [best[job.pk].reason if best[job.pk] else "—" for job in jobs]),
    ]
    for metric in METRICS:
        if metric.panel != "loss":
            continue
        values = []
        for job in jobs:
            found = best[job.pk]
            metrics = by_id[found.point.upstream_id].metrics if found else None
            values.append(charts.format_number(metrics.get(metric.key)) if isinstance(metrics, dict) else "—")
        rows.append(Row(f"{metric.label} at the best", values))
    return rows


def _best_name(best: training_health.Best | None) -> str:
    if best is None:
        return "—"
    step = f", step {best.point.step}" if best.point.step is not None else ""
    return f"epoch {best.point.epoch}{step} ({best.point.upstream_id})"


def series(
    jobs: list[TrackedJob], checkpoints: dict[int, list[TrainingCheckpoint]], key: str
) -> list[tuple[TrackedJob, list[tuple[int, float]]]]:
    """For one metric, each job's (step, value) points where both are known."""
    out = []
    for job in jobs:
        points = []
        for c in checkpoints[job.pk]:
            value = finite_number(c.metrics.get(key)) if isinstance(c.metrics, dict) else None
            if c.step is not None and value is not None:
                points.append((c.step, value))
        out.append((job, points))
    return out


#: One line style per job: colour and dash pattern both differ (readable without colour).
JOB_STYLES = ("solid", "dashed", "dotted", "dashdot")


@dataclass(frozen=True)
class MetricCurves:
    key: str
    label: str
    series: list[tuple[TrackedJob, list[tuple[int, float]]]]
    chart: charts.Chart

    @property
    def has_points(self) -> bool:
        return any(points for _, points in self.series)


def overlay_chart(title: str, lines: list[tuple[charts.SeriesSpec, list[tuple[int, float]]]]) -> charts.Chart:
    """One chart with a line per job on shared scales, from jobs.charts' geometry.

    (charts.line_chart takes rows with every series' value at each x; jobs are checkpointed at
    different steps, so each job's own points are scaled and drawn here instead.)"""
    width, height = 640, 260
    left, top = charts.MARGIN_LEFT, charts.MARGIN_TOP
    right, bottom = width - charts.MARGIN_RIGHT, height - charts.MARGIN_BOTTOM
    chart = charts.Chart(title=title, width=width, height=height, plot=(left, top, right, bottom))
    runs_by_spec = [(spec, charts.segments(sorted(points))) for spec, points in lines]
    every = [point for _, runs in runs_by_spec for run in runs for point in run]
    chart.missing = [spec for spec, runs in runs_by_spec if not runs]
    if not every:
        return chart
    xs, ys = [x for x, _ in every], [y for _, y in every]
    x_ticks = charts.nice_ticks(min(xs), max(xs)) if min(xs) != max(xs) else charts._around(xs[0])
    y_ticks = charts.nice_ticks(min(ys), max(ys))
    sx = charts.linear_scale((x_ticks[0], x_ticks[-1]), (left, right))
    sy = charts.linear_scale((y_ticks[0], y_ticks[-1]), (bottom, top))
    chart.x_ticks = [charts.Tick(sx(t), charts.format_tick(t, x_ticks)) for t in x_ticks]
    chart.y_ticks = [charts.Tick(sy(t), charts.format_tick(t, y_ticks)) for t in y_ticks]
    for spec, runs in runs_by_spec:
        if runs:
            chart.series.append(
                charts.DrawnSeries(
                    spec=spec,
                    paths=[charts.path_data(run, sx, sy) for run in runs if len(run) > 1],
                    markers=[
                        charts.Marker(
                            round(sx(x), 1),
                            round(sy(y), 1),
                            f"{spec.label} at step {x:g}: {charts.format_number(y, 6)}",
                        )
                        for run in runs
                        for x, y in run
                    ],
                    lone=all(len(run) == 1 for run in runs),
                )
            )
    return chart


def curves(jobs: list[TrackedJob], checkpoints: dict[int, list[TrainingCheckpoint]]) -> list[MetricCurves]:
    """One chart per metric that any of the jobs reported, every job's curve on it."""
    out = []
    for metric in METRICS:
        per_job = series(jobs, checkpoints, metric.key)
        if not any(points for _, points in per_job):
            continue
        lines = [
            (charts.SeriesSpec(f"job{i}", job.display_name, JOB_STYLES[i]), points)
            for i, (job, points) in enumerate(per_job)
        ]
        out.append(MetricCurves(metric.key, metric.label, per_job, overlay_chart(metric.label, lines)))
    return out
