"""Tracked jobs in this process: moved in time without waiting (what is due depends on when a job
was last checked), and refreshed as the worker or a page's poll does it."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from jobs.models import TrackedJob
from jobs.sync import refresh


def age(*jobs: TrackedJob, seconds: float) -> None:
    """Pretend the jobs' last refresh attempt was `seconds` ago."""
    TrackedJob.objects.filter(pk__in=[job.pk for job in jobs]).update(
        checked_at=timezone.now() - dt.timedelta(seconds=seconds)
    )


def move_back(job: TrackedJob, minutes: float) -> None:
    """Pretend the job's last progress was `minutes` ago (how stalls are tested)."""
    TrackedJob.objects.filter(pk=job.pk).update(progress_changed_at=timezone.now() - dt.timedelta(minutes=minutes))


def refreshed(job: TrackedJob) -> TrackedJob:
    """A refresh as the worker or a page's poll does it (forced: no waiting for the interval)."""
    return refresh.refresh_now(TrackedJob.objects.get(pk=job.pk))


def poll(job: TrackedJob) -> TrackedJob:
    """What a page's poll does: load the job afresh and refresh it if due."""
    return refresh.refresh_if_due(TrackedJob.objects.get(pk=job.pk))
