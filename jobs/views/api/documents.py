"""What the JSON API answers about a job, shaped from what the pages read (jobs.costs for the
cost, the open JobAlerts, the stored training log), and the ETag that says whether it changed."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone

from jobs import costs
from jobs.export import cost_document
from jobs.models import JobAlert, TrackedJob, TrainingCheckpoint, TrainingEvent

#: What changes with the clock alone, not with the job: left out of the ETag.
VOLATILE_FIELDS = {"eta_seconds"}
VOLATILE_SNAPSHOT_FIELDS = {"age_seconds"}


def _iso(value):
    return value.isoformat() if value else None


def job_document(request: HttpRequest, job: TrackedJob, alerts: list[JobAlert]) -> dict[str, Any]:
    """Everything the API says about a job: no query when `jobs.costs.attach` ran."""
    details, now = job.details, timezone.now()
    cost = costs.cost_of(job)
    query = f"?workspace={job.workspace_id}"

    def api_url(name: str) -> str:
        return request.build_absolute_uri(reverse(f"api-v1:{name}", kwargs={"job_id": job.job_id})) + query

    eta = None
    if details.estimated_finish and not details.is_terminal:
        eta = max(0, int((details.estimated_finish - now).total_seconds()))
    fine_tuned_model = job.snapshot.get("fine_tuned_model") if isinstance(job.snapshot, dict) else None
    return {
        "job_id": job.job_id,
        "workspace": {"id": job.workspace_id, "name": job.workspace.name},
        "label": job.label,
        "status": job.status,
        "status_label": details.status_label,
        "is_terminal": job.is_terminal,
        "model": details.model,
        "suffix": details.suffix,
        "fine_tuned_model": fine_tuned_model if isinstance(fine_tuned_model, str) else None,
        "created_at": details.created_at,
        "finished_at": details.finished_at,
        "estimated_finish": details.estimated_finish,
        "eta_seconds": eta,
        "tracked_at": job.created_at,
        "progress": {
            "percent": details.progress_percent,
            "trained_steps": details.trained_steps,
            "total_steps": details.total_steps,
            "trained_tokens": details.trained_tokens,
        },
        "error": (
            {"code": details.error.code, "message": details.error.message, "param": details.error.param}
            if details.error
            else None
        ),
        "method": (
            {
                "kind": details.method.kind,
                "title": details.method.title,
                "hyperparameters": {
                    h.key: (h.value if h.is_set else h.default) for h in details.method.hyperparameters
                },
            }
            if details.method
            else None
        ),
        "training_file": details.training_file,
        "validation_file": details.validation_file,
        "result_files": details.result_files,
        "seed": details.seed,
        "cost": {**cost_document(cost), "summary": cost.summary},
        "alerts": [{"rule": a.rule, "message": a.message, "raised_at": a.raised_at, "step": a.step} for a in alerts],
        "links": {
            "page": request.build_absolute_uri(reverse("job_detail", args=[job.pk])),
            "api": api_url("api_job"),
            "events": api_url("api_job_events"),
            "checkpoints": api_url("api_job_checkpoints"),
            "integrations": [{"kind": i.kind, "title": i.title, "url": i.url} for i in details.integrations],
        },
        "snapshot": {
            "fetched_at": job.fetched_at,
            "age_seconds": max(0, int((now - job.fetched_at).total_seconds())),
            "checked_at": job.checked_at,
            "refresh_error": job.refresh_error or None,
            "stalled": job.stalled_at is not None,
        },
    }


def event_document(event: TrainingEvent) -> dict[str, Any]:
    return {"id": event.upstream_id, "created_at": event.created_at, "level": event.level, "message": event.message}


def checkpoint_document(checkpoint: TrainingCheckpoint) -> dict[str, Any]:
    return {
        "id": checkpoint.upstream_id,
        "created_at": checkpoint.created_at,
        "step": checkpoint.step,
        "metrics": checkpoint.metrics if isinstance(checkpoint.metrics, dict) else {},
        "fine_tuned_model_checkpoint": checkpoint.fine_tuned_model_checkpoint,
    }


def etag(document: dict[str, Any]) -> str:
    """A weak ETag of the document, the clock's fields aside: equal while the job is unchanged."""
    stable = {key: value for key, value in document.items() if key not in VOLATILE_FIELDS}
    if isinstance(stable.get("snapshot"), dict):
        stable["snapshot"] = {k: v for k, v in stable["snapshot"].items() if k not in VOLATILE_SNAPSHOT_FIELDS}
    text = json.dumps(stable, sort_keys=True, default=str, ensure_ascii=True)
    return 'W/"' + hashlib.sha256(text.encode()).hexdigest()[:32] + '"'


def matches(if_none_match: str | None, tag: str) -> bool:
    """Whether an If-None-Match header names `tag` (weak comparison, as RFC 9110 asks for GET)."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    bare = tag.removeprefix("W/")
    return any(part.strip().removeprefix("W/") == bare for part in if_none_match.split(","))
