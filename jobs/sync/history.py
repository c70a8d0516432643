"""A tracked job's history: status changes, first progress, finish and stalls, as events.

Called by the refresh service each time it stores a new snapshot, so events are recorded
once per transition however many viewers and workers there are (only one refresh of a job
runs at a time).
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings

from jobs.finetuning import QUEUED_STATUSES, FineTuningJob
from jobs.humanize import span
from jobs.models import JobEvent, TrackedJob
from jobs.training_health import RULE_LABELS


def record_tracking_started(job: TrackedJob, *, now: dt.datetime) -> None:
    job.progress_changed_at = now
    job.save(update_fields=["progress_changed_at"])
    JobEvent.objects.create(
        job=job,
        kind=JobEvent.Kind.TRACKED,
        status=job.status,
        message=f"Tracking started; the job was {job.details.status_label}.",
        at=now,
    )


def record_job_started(job: TrackedJob, *, token_name: str, now: dt.datetime) -> JobEvent:
    """The first event of a job a watched token found: it started (and ftdash noticed)."""
    job.progress_changed_at = now
    job.save(update_fields=["progress_changed_at"])
    return JobEvent.objects.create(
        job=job,
        kind=JobEvent.Kind.STARTED,
        status=job.status,
        message=f"Job started; found by watching token “{token_name}” while it was {job.details.status_label}."[:300],
        at=now,
    )


def record_changes(job: TrackedJob, *, before: FineTuningJob, after: FineTuningJob, now: dt.datetime) -> list[JobEvent]:
    """Events for what changed between two snapshots; updates the job's progress marks."""
    events = []
    if after.status != before.status:
        events.append(
            JobEvent(
                job=job,
                kind=JobEvent.Kind.STATUS,
                status=after.status,
                message=f"{before.status_label} → {after.status_label}",
                at=now,
            )
        )
        if after.is_terminal:
            message = after.status_label
            if after.error:
                message = f"{after.status_label}: {after.error.code} {after.error.message}".strip()
            events.append(
                JobEvent(job=job, kind=JobEvent.Kind.FINISHED, status=after.status, message=message[:300], at=now)
            )
    if not (before.trained_steps or 0) and (after.trained_steps or 0) > 0:
        events.append(
            JobEvent(
                job=job,
                kind=JobEvent.Kind.FIRST_PROGRESS,
                status=after.status,
                message=f"First progress: step {after.trained_steps}",
                at=now,
            )
        )
    if after.status != before.status or after.trained_steps != before.trained_steps:
        job.progress_changed_at = now
        job.stalled_at = None
    JobEvent.objects.bulk_create(events)
    stall = _stall_event(job, after, now=now)
    if stall:
        events.append(stall)
    return events


def _stall_event(job: TrackedJob, details: FineTuningJob, *, now: dt.datetime) -> JobEvent | None:
    """Mark a job stalled once (not on every refresh) when it stops moving for too long."""
    if job.stalled_at or details.is_terminal or job.progress_changed_at is None:
        return None
    still_for = now - job.progress_changed_at
    if details.status in QUEUED_STATUSES:
        limit = dt.timedelta(minutes=job.workspace.queue_stall_minutes)
        message = f"Still {details.status_label} after {span(still_for.total_seconds())}"
    elif details.status == "running":
        limit = dt.timedelta(minutes=settings.FTDASH_STALL_MINUTES)
        message = f"No progress for {span(still_for.total_seconds())} (stuck at step {details.trained_steps or 0})"
    else:
        return None
    if still_for < limit:
        return None
    job.stalled_at = now
    return JobEvent.objects.create(job=job, kind=JobEvent.Kind.STALLED, status=details.status, message=message, at=now)


# Training-health alerts and their clearing (jobs.sync.health): on the timeline, but not states.
ALERT_KINDS = frozenset(RULE_LABELS) | {JobEvent.Kind.ALERT_CLEARED}


def timeline(events: list[JobEvent], *, now: dt.datetime, is_terminal: bool) -> list[dict]:
    """Events with how long each state lasted (until the next event, or until now).

    An alert raised or cleared is no new state: its row says so (`alert`: the rule's name, for
    a raised one; `cleared`) and lasts nothing, and the state around it lasts on across it."""
    rows = []
    following = None if is_terminal else now  # when the state of the event at hand ended
    for event in reversed(events):
        row = {"event": event, "lasted": None, "alert": "", "cleared": event.kind == JobEvent.Kind.ALERT_CLEARED}
        if event.kind in ALERT_KINDS:
            row["alert"] = RULE_LABELS.get(event.kind, "")
        else:
            row["lasted"] = (following - event.at) if following else None
            following = event.at
        rows.append(row)
    return rows[::-1]
