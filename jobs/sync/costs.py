"""Costs the sync writes: a finished job's frozen cost, and the warnings spend calls for.

Run where snapshots are stored (`jobs.sync.refresh.store_snapshot`, so by pages and the worker
alike, under the job's refresh lock), never at poll time, so warnings go out with every browser
closed:
- a job that ends gets its final cost frozen with the price of that moment (`freeze_if_ended`);
  with no price or no token count nothing is frozen, and a price added later still applies;
- `cost_projection`: a running job's projected cost passed the workspace's "expensive job"
  threshold, once per job;
- `budget_80` / `budget_100`: the month's spend (finished, plus running jobs' projections)
  passed 80% / 100% of the workspace's monthly budget, once per workspace, month and threshold
  (a `BudgetAlert` row, unique, makes that once even with several workers).
Each warning is a `JobEvent` of the job whose snapshot tipped it, so it is on that job's
timeline and goes through the same notification channels as every other event.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.utils import timezone

from jobs import costs
from jobs.finetuning import TERMINAL_STATUSES, FineTuningJob
from jobs.humanize import usd
from jobs.models import BudgetAlert, JobEvent, TrackedJob

FROZEN_FIELDS = [
    "finished_at",
    "cost_frozen_at",
    "final_cost_usd",
    "final_tokens",
    "final_price_usd_per_million",
    "final_price_source",
    "final_price_pattern",
]
SWEEP_SECONDS = 300
BUDGET_THRESHOLDS = {80: JobEvent.Kind.BUDGET_80, 100: JobEvent.Kind.BUDGET_100}


def ended_at(details: FineTuningJob, *, now: dt.datetime) -> dt.datetime:
    """When a job ended: its own finished_at, unless missing or in the future (then now)."""
    finished = details.finished_at
    return finished if finished is not None and finished <= now else now


def freeze(job: TrackedJob, details: FineTuningJob, *, now: dt.datetime, book: costs.PriceBook | None = None) -> bool:
    """Set `job`'s final cost from `details` with today's price (not saved). False, and nothing
    frozen, when there is no price or no token count; `finished_at` is set either way."""
    job.finished_at = job.finished_at or ended_at(details, now=now)
    price = costs.price_of(job, book or costs.price_book([job]), details)
    cost = costs.compute(details, price)
    if price is None or cost.so_far is None:
        return False
    job.cost_frozen_at = now
    job.final_cost_usd = cost.so_far.quantize(Decimal("0.000001"))
    job.final_tokens = cost.tokens
    job.final_price_usd_per_million = price.usd_per_million
    job.final_price_source = price.source
    job.final_price_pattern = price.pattern[:300]
    return True


def freeze_if_ended(job: TrackedJob, details: FineTuningJob, *, now: dt.datetime) -> list[str]:
    """Freeze the cost of a job that has just ended (or ended unpriced); the fields to save."""
    if not details.is_terminal or job.cost_frozen_at is not None:
        return []
    freeze(job, details, now=now)
    return FROZEN_FIELDS


def freeze_ended_jobs(*, limit: int = 1000) -> int:
    """For the worker, at most every SWEEP_SECONDS: ended jobs with no frozen cost (tracked
    before costs existed, or ended while no price was known and priced since, say by the
    instance's defaults). Those still without a price keep only `finished_at`."""
    if not cache.add("ftdash:costs:sweep", True, SWEEP_SECONDS):
        return 0
    now = timezone.now()
    jobs = list(
        TrackedJob.objects.filter(status__in=TERMINAL_STATUSES, cost_frozen_at__isnull=True).order_by("pk")[:limit]
    )
    book = costs.price_book(jobs)
    changed = []
    for job in jobs:
        had_end = job.finished_at is not None
        if freeze(job, job.details, now=now, book=book) or not had_end:
            changed.append(job)
    TrackedJob.objects.bulk_update(changed, FROZEN_FIELDS)
    return len(changed)


def freeze_unpriced(workspace, *, now: dt.datetime | None = None) -> int:
    """Freeze the ended jobs of `workspace` that had no price, now that one may apply (after an
    owner adds a price): they never had a cost, so no finished cost is rewritten."""
    now = now or timezone.now()
    jobs = list(TrackedJob.objects.filter(workspace=workspace, status__in=TERMINAL_STATUSES, cost_frozen_at=None))
    book = costs.price_book(jobs)
    frozen = [job for job in jobs if freeze(job, job.details, now=now, book=book)]
    TrackedJob.objects.bulk_update(frozen, FROZEN_FIELDS)
    return len(frozen)


def refreeze(job: TrackedJob, *, now: dt.datetime | None = None) -> costs.JobCost:
    """ "Recalculate with today's prices": freeze an ended job's cost again (saved)."""
    job.cost_frozen_at = job.final_cost_usd = job.final_tokens = job.final_price_usd_per_million = None
    job.final_price_source = job.final_price_pattern = ""
    freeze(job, job.details, now=now or timezone.now())
    job.save(update_fields=FROZEN_FIELDS)
    return costs.cost_of(job)


# --- Warnings ----------------------------------------------------------------------------------


def warnings_after_snapshot(job: TrackedJob, details: FineTuningJob, *, now: dt.datetime) -> list[JobEvent]:
    """The cost warnings `job`'s new snapshot calls for (created, to be notified)."""
    workspace = job.workspace
    if workspace.expensive_job_usd is None and workspace.monthly_budget_usd is None:
        return []
    events = []
    if workspace.expensive_job_usd is not None and details.status == "running":
        event = _expensive_job(job, details, threshold=workspace.expensive_job_usd, now=now)
        if event:
            events.append(event)
    if workspace.monthly_budget_usd:
        events += _budget(job, now=now)
    return events


def _expensive_job(job: TrackedJob, details: FineTuningJob, *, threshold: Decimal, now: dt.datetime):
    cost = costs.compute(details, costs.price_of(job, costs.price_book([job]), details))
    if cost.projected is None or cost.projected <= threshold:
        return None
    if JobEvent.objects.filter(job=job, kind=JobEvent.Kind.COST_PROJECTION).exists():
        return None
    message = f"Projected to cost {usd(cost.projected)} at finish ({usd(cost.so_far)} so far), over the {usd(threshold)} warning."
    return JobEvent.objects.create(
        job=job, kind=JobEvent.Kind.COST_PROJECTION, status=details.status, message=message[:300], at=now
    )


def _budget(job: TrackedJob, *, now: dt.datetime) -> list[JobEvent]:
    workspace = job.workspace
    month = costs.month_start(now).date()
    passed = set(BudgetAlert.objects.filter(workspace=workspace, month=month).values_list("threshold", flat=True))
    if passed >= set(BUDGET_THRESHOLDS):
        return []  # both sent this month: no need to add the month up again
    spend = costs.month_spend(workspace, now=now)
    events = []
    for threshold, kind in BUDGET_THRESHOLDS.items():
        if threshold in passed or spend.total * 100 < workspace.monthly_budget_usd * threshold:
            continue
        try:
            with transaction.atomic():
                _, created = BudgetAlert.objects.get_or_create(workspace=workspace, month=month, threshold=threshold)
        except IntegrityError:
            created = False  # another worker recorded it first
        if not created:
            continue
        message = (
            f"This month's spend, {usd(spend.total)} ({usd(spend.finished)} finished, {usd(spend.in_flight)} "
            f"projected for running jobs), passed {threshold}% of the {usd(workspace.monthly_budget_usd)} budget."
        )
        events.append(JobEvent.objects.create(job=job, kind=kind, status=job.status, message=message[:300], at=now))
    return events
