"""Tracked jobs in this process: moved in time without waiting (what is due depends on when a job
was last checked), and refreshed as the worker or a page's poll does it. `Clock` moves time
itself, for ftdash and the fake Token Factory at once (rules measured over minutes: a run's pace)."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from jobs.models import TrackedJob
from jobs.sync import refresh
from tests.support.fake_tokenfactory import ManualClock


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


class Clock:
    """Time that stands still until a test turns it, for ftdash (`django.utils.timezone.now`,
    which all of ftdash reads) and for a fake Token Factory made with
    ``FakeTokenFactory(clock=clock.fake, epoch=clock.epoch)`` (whose jobs' ``steps_per_second``
    then follow it): ``clock.advance(minutes=5)`` is exactly five minutes later for both, at
    once, without waiting. It starts an hour ahead of the real time, so that what a model's
    field defaults to (the real time, bound at import) is never later than ftdash's now: a
    delivery is due when it is made. Installed with pytest's monkeypatch, undone after the test."""

    def __init__(self, monkeypatch) -> None:
        self.fake = ManualClock()
        self.start = timezone.now() + dt.timedelta(hours=1)
        self.offset = dt.timedelta(0)
        monkeypatch.setattr(timezone, "now", lambda: self.start + self.offset)

    @property
    def epoch(self) -> float:
        """What the fake's clock reads now stands for, in epoch seconds."""
        return (self.start + self.offset).timestamp()

    def advance(self, *, seconds: float = 0, minutes: float = 0) -> None:
        step = seconds + minutes * 60
        self.fake.advance(step)
        self.offset += dt.timedelta(seconds=step)
