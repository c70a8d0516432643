"""Moving tracked jobs in time without waiting: for the tests of refreshing, the worker and the
training log, which decide what is due by when a job was last checked."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from jobs.models import TrackedJob


def age(*jobs: TrackedJob, seconds: float) -> None:
    """Pretend the jobs' last refresh attempt was `seconds` ago."""
    TrackedJob.objects.filter(pk__in=[job.pk for job in jobs]).update(
        checked_at=timezone.now() - dt.timedelta(seconds=seconds)
    )
