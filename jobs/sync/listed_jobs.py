"""Rows for jobs whose whole snapshot is already at hand (an entry of a job list): no call to the API.

Used by the worker's watched tokens (a job found as it starts) and by "Import jobs".
"""

from __future__ import annotations

import datetime as dt

from django.db import IntegrityError, transaction

from jobs import notifications
from jobs.audit import audit_record
from jobs.finetuning import FineTuningJob
from jobs.models import ApiToken, RemovedJob, TrackedJob, Workspace
from jobs.sync import costs as sync_costs
from jobs.sync import health, history


def job_track_listed(
    *,
    workspace: Workspace,
    token: ApiToken,
    details: FineTuningJob,
    user,
    now: dt.datetime,
    found_by_watch: bool = False,
) -> TrackedJob | None:
    """Track a job whose whole snapshot is at hand (a job list's entry): no call to the API.

    Returns None when the workspace already tracks it. A job found by a watch records a
    "started" event (and queues its notifications) instead of "tracking started"; with the
    unique constraint on (workspace, job), two workers finding it at once track and notify once.
    """
    try:
        with transaction.atomic():
            job = TrackedJob(
                workspace=workspace,
                token=token,
                job_id=details.id,
                added_by=user,
                snapshot=details.raw,
                status=details.status,
                fetched_at=now,
                checked_at=now,
            )
            # Tracked already ended: its final cost is frozen now, with today's price (jobs.sync.costs).
            sync_costs.freeze_if_ended(job, details, now=now)
            health.on_tracking(job, details, now=now)
            job.save(force_insert=True)
            if found_by_watch:
                notifications.queue_for_events([history.record_job_started(job, token_name=token.name, now=now)])
                audit_record(
                    workspace=workspace,
                    actor=None,
                    action="job.discover",
                    description=f"started tracking {details.id}, found by watching token “{token.name}”",
                )
            else:
                history.record_tracking_started(job, now=now)
                RemovedJob.objects.filter(workspace=workspace, job_id=details.id).delete()
            return job
    except IntegrityError:
        return None
