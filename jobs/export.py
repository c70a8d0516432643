"""Downloads: a job as JSON, its metrics as CSV, and the dashboard's current view as CSV.

Every export is a read like any other: the views reach jobs through jobs.access, so an
outsider gets a 404. CSV cells that a spreadsheet would run as a formula (text starting with
= + - @, or a tab or carriage return) are prefixed with a quote: job labels, suffixes and
checkpoint names are typed by people and by the API, not by us.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from collections.abc import Iterable, Iterator
from typing import Any

from django.utils import timezone

from jobs.finetuning import finite_number
from jobs.metrics import METRIC_KEYS
from jobs.models import TrackedJob

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


def job_document(job: TrackedJob) -> dict[str, Any]:
    """Everything ftdash keeps about `job`, as one JSON-ready document (four queries)."""
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
            for c in job.checkpoints.order_by("step", "created_at", "pk")
        ],
    }


def metrics_rows(job: TrackedJob) -> Iterator[list[Any]]:
    """The job's checkpoints as CSV rows (a header first), oldest step first."""
    yield ["step", "created_at", "checkpoint_id", "fine_tuned_model_checkpoint", *METRIC_KEYS]
    for c in job.checkpoints.order_by("step", "created_at", "pk"):
        metrics = c.metrics if isinstance(c.metrics, dict) else {}
        yield [
            safe_cell(v)
            for v in (
                c.step,
                c.created_at,
                c.upstream_id,
                c.fine_tuned_model_checkpoint,
                *(finite_number(metrics.get(k)) for k in METRIC_KEYS),
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
]


def dashboard_rows(jobs: Iterable[TrackedJob]) -> Iterator[list[Any]]:
    yield DASHBOARD_COLUMNS
    for job in jobs:
        d = job.details
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
