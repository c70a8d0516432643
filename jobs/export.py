"""Downloads: a job as JSON, its metrics as CSV, and the dashboard's current view as CSV.

Every export is a read like any other: the views reach jobs through jobs.access, so an
outsider gets a 404. Costs (`jobs.costs`) are in US dollars, written as decimal strings with six
decimal places ("0.819200"), never floats, so a sum of them is exact; null (JSON) or an empty
cell (CSV) where there is no price or no token count. CSV cells that a spreadsheet would run as a formula (text starting with
= + - @, or a tab or carriage return) are prefixed with a quote: job labels, suffixes and
checkpoint names are typed by people and by the API, not by us.
"""

from __future__ import annotations

import csv
import datetime as dt
import itertools
import re
from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import Any

from django.db.models import F
from django.utils import timezone

from jobs import costs, training_health
from jobs.finetuning import finite_number
from jobs.metrics import METRIC_KEYS
from jobs.models import TrackedJob, TrainingCheckpoint

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9._-]+")


def safe_cell(value: Any) -> Any:
    """A CSV cell a spreadsheet shows as text: numbers as they are, formulas defused."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return value if finite_number(value) is not None else ""
    if isinstance(value, dt.datetime):
        return value.isoformat()
    text = str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def filename(job: TrackedJob, extension: str, what: str = "") -> str:
    stem = _UNSAFE_FILENAME.sub("-", job.job_id)[:100]
    return f"{stem}{('-' + what) if what else ''}.{extension}"


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


MONEY_PLACES = Decimal("0.000001")


def money(amount: Decimal | None) -> str | None:
    """A sum of USD for an export: "0.819200" (six decimal places, exact), or None."""
    return None if amount is None else str(amount.quantize(MONEY_PLACES))


def cost_document(cost: costs.JobCost) -> dict[str, Any]:
    """A job's cost for the JSON export: what it cost so far, its projection while running, its
    final cost once finished, and the price it was worked out with (and where that came from)."""
    price = cost.price
    return {
        "currency": "USD",
        "so_far": money(cost.so_far),
        "projected": money(cost.projected),
        "final": money(cost.so_far) if cost.is_final else None,
        "trained_tokens": cost.tokens,
        "price_usd_per_million": str(price.usd_per_million) if price is not None else None,
        "price_source": price.source if price is not None else None,
        "price_pattern": (price.pattern or None) if price is not None else None,
        "frozen": cost.frozen,
    }


def _checkpoints(job: TrackedJob) -> list[TrainingCheckpoint]:
    """The job's checkpoints in step order, as the job page reads them (epochs count from 1)."""
    return list(job.checkpoints.order_by(F("step").asc(nulls_last=True), "created_at", "pk"))


def best_document(best: training_health.Best | None, checkpoints: list[TrainingCheckpoint]) -> dict[str, Any] | None:
    """The best checkpoint (`jobs.training_health.best_of`: the job page's rule) for the JSON
    export, or None when no checkpoint has the loss that decides."""
    if best is None:
        return None
    point = best.point
    checkpoint = checkpoints[point.epoch - 1]
    return {
        "epoch": point.epoch,
        "id": point.upstream_id,
        "step": point.step,
        "metric": best.metric,
        "value": best.value,
        "reason": best.reason,
        "fine_tuned_model_checkpoint": checkpoint.fine_tuned_model_checkpoint or None,
    }


def job_document(job: TrackedJob) -> dict[str, Any]:
    """Everything ftdash keeps about `job`, as one JSON-ready document (five queries)."""
    checkpoints = _checkpoints(job)
    _, best = training_health.best_of(checkpoints, validation_file=job.details.validation_file)
    return {
        "ftdash_export": 1,
        "exported_at": timezone.now().isoformat(),
        "job": {
            "job_id": job.job_id,
            "label": job.label,
            "workspace": job.workspace.name,
            "status": job.status,
            "tracked_at": _iso(job.created_at),
            "snapshot_fetched_at": _iso(job.fetched_at),
            "refresh_error": job.refresh_error or None,
        },
        "cost": cost_document(costs.cost_of(job)),
        "snapshot": job.snapshot,
        "timeline": [
            {"at": _iso(e.at), "kind": e.kind, "status": e.status, "message": e.message}
            for e in job.events.order_by("at", "pk")
        ],
        "events": [
            {"id": e.upstream_id, "created_at": _iso(e.created_at), "level": e.level, "message": e.message}
            for e in job.training_events.order_by("created_at", "pk")
        ],
        "checkpoints": [
            {
                "id": c.upstream_id,
                "created_at": _iso(c.created_at),
                "step": c.step,
                "metrics": c.metrics,
                "fine_tuned_model_checkpoint": c.fine_tuned_model_checkpoint,
            }
            for c in checkpoints
        ],
        "best_checkpoint": best_document(best, checkpoints),
    }


def metrics_rows(job: TrackedJob) -> Iterator[list[Any]]:
    """The job's checkpoints as CSV rows (a header first), oldest step first; `best` is true on
    the best checkpoint's row (the job page's rule), false on the others."""
    yield ["step", "created_at", "checkpoint_id", "fine_tuned_model_checkpoint", *METRIC_KEYS, "best"]
    checkpoints = _checkpoints(job)
    _, best = training_health.best_of(checkpoints, validation_file=job.details.validation_file)
    best_id = best.point.upstream_id if best is not None else None
    for c in checkpoints:
        metrics = c.metrics if isinstance(c.metrics, dict) else {}
        yield [
            safe_cell(v)
            for v in (
                c.step,
                c.created_at,
                c.upstream_id,
                c.fine_tuned_model_checkpoint,
                *(finite_number(metrics.get(k)) for k in METRIC_KEYS),
                c.upstream_id == best_id,
            )
        ]


DASHBOARD_COLUMNS = [
    "job_id",
    "label",
    "workspace",
    "status",
    "stalled",
    "model",
    "suffix",
    "trained_steps",
    "total_steps",
    "progress_percent",
    "trained_tokens",
    "created_at",
    "finished_at",
    "estimated_finish",
    "snapshot_fetched_at",
    "tracked_by",
    "cost_usd",
    "projected_cost_usd",
    "price_source",
    "best_checkpoint",
]
# Costs are worked out for this many rows at a time (one query and one cache read each).
COST_BATCH = 500


def _with_costs(jobs: Iterable[TrackedJob]) -> Iterator[TrackedJob]:
    """The jobs with their costs and best checkpoints attached, a batch at a time (two queries
    and one cache read per batch)."""
    iterator = iter(jobs)
    while batch := list(itertools.islice(iterator, COST_BATCH)):
        costs.attach(batch)
        _attach_best(batch)
        yield from batch


def _attach_best(jobs: list[TrackedJob]) -> None:
    """Each job's best checkpoint ID as `_best_checkpoint` ("" for none): one query for the jobs
    that have checkpoints, none when no job has any."""
    by_job: dict[int, list[TrainingCheckpoint]] = {job.pk: [] for job in jobs}
    with_checkpoints = [job.pk for job in jobs if job.checkpoints_synced_at is not None]
    if with_checkpoints:
        for c in (
            TrainingCheckpoint.objects.filter(job__in=with_checkpoints)
            .order_by("job", F("step").asc(nulls_last=True), "created_at", "pk")
            .only("job_id", "upstream_id", "step", "metrics")
        ):
            by_job[c.job_id].append(c)
    for job in jobs:
        _, best = training_health.best_of(by_job[job.pk], validation_file=job.details.validation_file)
        job._best_checkpoint = best.point.upstream_id if best is not None else ""


def dashboard_rows(jobs: Iterable[TrackedJob]) -> Iterator[list[Any]]:
    yield DASHBOARD_COLUMNS
    for job in _with_costs(jobs):
        d = job.details
        cost = costs.cost_of(job)
        yield [
            safe_cell(v)
            for v in (
                job.job_id,
                job.label,
                job.workspace.name,
                job.status,
                bool(job.stalled_at),
                d.model,
                d.suffix,
                d.trained_steps,
                d.total_steps,
                d.progress_percent,
                d.trained_tokens,
                d.created_at,
                d.finished_at,
                d.estimated_finish,
                job.fetched_at,
                job.added_by.get_username() if job.added_by else "",
                money(cost.so_far),
                money(cost.projected),
                cost.price.source if cost.price is not None else "",
                job._best_checkpoint,
            )
        ]


class _Echo:
    """A file-like object whose write hands the line back, for streaming csv.writer output."""

    def write(self, value: str) -> str:
        return value


def csv_lines(rows: Iterable[list[Any]]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    for row in rows:
        yield writer.writerow(row)
