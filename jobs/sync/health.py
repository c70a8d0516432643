"""Training-health alerts, recorded where snapshots and checkpoints are stored.

`after_snapshot` (from `jobs.sync.refresh.store_snapshot`) keeps the first finish estimate of
the run and a progress sample a minute, and asks `eta_slipped` and `slow`; `after_checkpoints`
(from `jobs.sync.training_log`, once new checkpoints are stored) asks `overfitting` and
`diverged`. Both run under the job's refresh lock, by pages and by the worker alike, never at
poll time, so alerts fire with every browser closed.

A rule that holds opens a `JobAlert` (at most one open per job and rule: a constraint) and
records a `JobEvent` named after the rule, which the workspace's channels get unless the job's
alerts are muted; once it no longer holds the alert is closed with an `alert_cleared` event on
the timeline (not notified). The rules themselves are `jobs.training_health`.
"""

from __future__ import annotations

import datetime as dt

from django.db import IntegrityError, transaction
from django.db.models import F

from jobs import training_health
from jobs.finetuning import FineTuningJob
from jobs.models import JobAlert, JobEvent, ProgressSample, TrackedJob, TrainingAlertSettings, TrainingCheckpoint

SAMPLE_SECONDS = 60
# A day of samples at one a minute: more history says nothing more about the pace.
SAMPLES_KEPT = 24 * 60
# The rules asked after a snapshot (the others, after new checkpoints).
SNAPSHOT_RULES = (JobAlert.Rule.ETA_SLIPPED, JobAlert.Rule.SLOW)


def on_tracking(job: TrackedJob, details: FineTuningJob, *, now: dt.datetime) -> None:
    """A job tracked while it runs: its estimate now is the first one of the run that ftdash
    sees (set on the unsaved row, no query). Without it, the first estimate would be the one of
    the first snapshot that changed, and an estimate that only slipped would be its own first."""
    if details.status == "running" and details.estimated_finish is not None:
        job.first_estimated_finish, job.first_estimate_seen_at = details.estimated_finish, now


def after_snapshot(
    job: TrackedJob, details: FineTuningJob, *, before: FineTuningJob, now: dt.datetime
) -> list[JobEvent]:
    """Record the run's first estimate and pace; raise or clear eta_slipped and slow.

    At most four queries for a running job (its settings, its samples, a new sample, its open
    alerts: only once it has had one), none for a job that is not running and never had an
    alert."""
    _track_first_estimate(job, details, before=before, now=now)
    running = details.status == "running"
    open_alerts = _open_alerts(job)
    if not running:
        # Neither rule holds for a job that is not running: only open alerts have to clear.
        return [event for rule in SNAPSHOT_RULES for event in _set(job, rule, None, open_alerts, now=now)]
    settings = TrainingAlertSettings.for_workspace(job.workspace_id)
    samples = _sample(job, details.trained_steps, now=now) if details.trained_steps is not None else []
    eta = (
        training_health.eta_slipped(
            first_estimate=job.first_estimated_finish,
            first_seen_at=job.first_estimate_seen_at,
            estimate=details.estimated_finish,
            percent=settings.eta_slip_percent,
            minutes=settings.eta_slip_minutes,
        )
        if settings.eta_slipped_on
        else None
    )
    pace = (
        training_health.slow(
            samples, now=now, window_minutes=settings.slow_window_minutes, percent=settings.slow_percent
        )
        if settings.slow_on and job.stalled_at is None
        else None
    )
    return [
        *_set(job, JobAlert.Rule.ETA_SLIPPED, eta, open_alerts, now=now),
        *_set(job, JobAlert.Rule.SLOW, pace, open_alerts, now=now),
    ]


def after_checkpoints(job: TrackedJob, *, now: dt.datetime) -> list[JobEvent]:
    """Raise or clear overfitting and diverged from the job's stored checkpoints."""
    settings = TrainingAlertSettings.for_workspace(job.workspace_id)
    points = training_health.points(
        TrainingCheckpoint.objects.filter(job=job).order_by(F("step").asc(nulls_last=True), "created_at", "pk")
    )
    has_validation = training_health.has_validation(points, job.details.validation_file)
    overfit = (
        training_health.overfitting(points, rises=settings.overfitting_rises, has_validation=has_validation)
        if settings.overfitting_on
        else None
    )
    gone_wrong = training_health.diverged(points, factor=settings.diverged_factor) if settings.diverged_on else None
    step = points[-1].step if points else None
    open_alerts = _open_alerts(job)
    return [
        *_set(job, JobAlert.Rule.OVERFITTING, overfit, open_alerts, now=now, step=step),
        *_set(job, JobAlert.Rule.DIVERGED, gone_wrong, open_alerts, now=now, step=step),
    ]


def _open_alerts(job: TrackedJob) -> dict[str, JobAlert]:
    if job.alerts_changed_at is None:
        return {}  # never had an alert (opening one stamps alerts_changed_at): nothing to ask
    return {alert.rule: alert for alert in JobAlert.objects.filter(job=job, cleared_at__isnull=True)}


def _set(
    job: TrackedJob,
    rule: str,
    message: str | None,
    open_alerts: dict[str, JobAlert],
    *,
    now: dt.datetime,
    step: int | None = None,
) -> list[JobEvent]:
    """Open `rule`'s alert when `message` says it holds, close it when it no longer does."""
    open_alert = open_alerts.get(rule)
    label = training_health.RULE_LABELS[rule]
    if message and open_alert is None:
        try:
            with transaction.atomic():
                JobAlert.objects.create(job=job, rule=rule, message=message[:300], raised_at=now, step=step)
        except IntegrityError:
            return []  # another process opened it first
        _touch(job, now)
        return [JobEvent.objects.create(job=job, kind=rule, status=job.status, message=message[:300], at=now)]
    if not message and open_alert is not None:
        open_alert.cleared_at = now
        open_alert.save(update_fields=["cleared_at"])
        _touch(job, now)
        JobEvent.objects.create(
            job=job, kind=JobEvent.Kind.ALERT_CLEARED, status=job.status, message=f"{label} cleared", at=now
        )
    return []


def _touch(job: TrackedJob, now: dt.datetime) -> None:
    job.alerts_changed_at = now
    TrackedJob.objects.filter(pk=job.pk).update(alerts_changed_at=now)


def _track_first_estimate(job: TrackedJob, details: FineTuningJob, *, before: FineTuningJob, now: dt.datetime) -> None:
    """A new run (the job started running again) forgets the old first estimate."""
    fields = []
    if details.status == "running" and before.status != "running" and job.first_estimated_finish is not None:
        job.first_estimated_finish = job.first_estimate_seen_at = None
        fields = ["first_estimated_finish", "first_estimate_seen_at"]
    if job.first_estimated_finish is None and details.status == "running" and details.estimated_finish is not None:
        job.first_estimated_finish, job.first_estimate_seen_at = details.estimated_finish, now
        fields = ["first_estimated_finish", "first_estimate_seen_at"]
    if fields:
        TrackedJob.objects.filter(pk=job.pk).update(**{field: getattr(job, field) for field in fields})


def _sample(job: TrackedJob, steps: int, *, now: dt.datetime) -> list[tuple[dt.datetime, int]]:
    """The job's progress samples (time, steps) in time order, with one for `now` if the last
    is a minute old: one query to read them, one to add one."""
    stored = list(ProgressSample.objects.filter(job=job).order_by("at", "pk").values_list("pk", "at", "steps"))
    samples = [(at, count) for _, at, count in stored]
    if samples and (now - samples[-1][0]).total_seconds() < SAMPLE_SECONDS:
        return samples
    ProgressSample.objects.create(job=job, at=now, steps=steps)
    samples.append((now, steps))
    if len(samples) > SAMPLES_KEPT:
        oldest = [pk for pk, _, _ in stored[:60]]
        ProgressSample.objects.filter(pk__in=oldest).delete()
        samples = samples[len(oldest) :]
    return samples
