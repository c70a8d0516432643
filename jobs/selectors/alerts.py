"""The training-health alerts a card or a job page shows (jobs.sync.health raises and clears
them): each job's open alerts, and who muted a muted job's, read for every job rendered at
once, only when a card or a live part is rendered (never by an unchanged poll)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from django.contrib.auth import get_user_model

from jobs.models import JobAlert, TrackedJob


def attach_open_alerts(jobs: Iterable[TrackedJob]) -> None:
    """Set `job._open_alerts` (its open alerts, oldest first) on each of `jobs`, in one query for
    all of them, and load who muted a muted job's alerts (`job.alerts_muted_by`) in one more.

    No query for jobs that never had an alert: `jobs.sync.health` stamps `alerts_changed_at`
    whenever one opens, and nothing else opens one. Jobs that have their alerts already are
    left as they are."""
    jobs = [job for job in jobs if not hasattr(job, "_open_alerts")]
    ever = [job.pk for job in jobs if job.alerts_changed_at is not None]
    by_job: dict[int, list[JobAlert]] = defaultdict(list)
    if ever:
        for alert in JobAlert.objects.filter(job_id__in=ever, cleared_at__isnull=True).order_by("raised_at", "pk"):
            by_job[alert.job_id].append(alert)
    muters = {job.alerts_muted_by_id for job in jobs if job.alerts_muted_at is not None and job.alerts_muted_by_id}
    people = get_user_model().objects.in_bulk(muters) if muters else {}
    for job in jobs:
        job._open_alerts = by_job.get(job.pk, [])
        if job.alerts_muted_by_id in people:
            job.alerts_muted_by = people[job.alerts_muted_by_id]  # cached on the job: no query in the template


def open_alerts_of(job: TrackedJob) -> list[JobAlert]:
    """The job's open alerts: no query when `attach_open_alerts` ran on it."""
    attach_open_alerts([job])
    return job._open_alerts
