"""Keeping tracked jobs' snapshots fresh: the only code that asks the API about a tracked job.

Pages render stored snapshots. When a snapshot is older than its refresh interval, the next
read refreshes it under a single-flight lock held in the shared cache, then re-checks the
database: however many people (or processes) watch a job, the API is asked about it at most
once per interval. A failed refresh keeps the last snapshot and records why; each failure in
a row doubles the interval (capped), so a broken job or an outage is not hammered.

The background worker (`poll_jobs`) goes through the same path, after claiming due jobs in
the database so that several workers share them out instead of racing. Where a token has
several due jobs, the worker reads them from the job list instead (`jobs.sync.list_refresh`), and
stores each one through `store_snapshot` under the same lock.

Every call spends from its token's request budget (`jobs.request_budget`). A refresh the budget
refuses is no failure: the job keeps its snapshot and its place in line (nothing backs off) and
is marked as waiting, which its card says; the worker claims no more of a token's jobs than its
budget allows.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import math
from collections.abc import Iterable, Iterator

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from jobs import instrumentation, notifications, request_budget
from jobs.finetuning import QUEUED_STATUSES, TERMINAL_STATUSES, FineTuningJob
from jobs.models import ApiToken, TrackedJob
from jobs.sync import costs, deployments, files, health, history, training_log
from jobs.sync.backoff import backed_off
from jobs.sync.leases import Lease, Quota
from jobs.sync.tokens import open_token, record_upstream_error
from jobs.tokenfactory import (
    ClientConfig,
    JobForbidden,
    RateLimited,
    TokenFactoryClient,
    TokenFactoryError,
    TokenRejected,
)

logger = logging.getLogger(__name__)

#: A background worker's claim on a job's next refresh (or on its place in a list read).
JOB_LEASE = Lease(TrackedJob, "claimed_until")


def base_interval(status: str) -> dt.timedelta | None:
    """How long a snapshot of a job in `status` stays fresh; None: never refreshed by itself."""
    if status in TERMINAL_STATUSES:
        return None
    if status in QUEUED_STATUSES:
        return dt.timedelta(seconds=settings.FTDASH_QUEUED_REFRESH_SECONDS)
    return dt.timedelta(seconds=settings.FTDASH_REFRESH_SECONDS)


def refresh_interval(job: TrackedJob) -> dt.timedelta | None:
    """The base interval, doubled for each failed refresh in a row, up to the backoff cap."""
    interval = base_interval(job.status)
    return None if interval is None else backed_off(interval, job.consecutive_failures)


def _due_in_sql(now: dt.datetime) -> Q:
    """The same rule as is_due, as a query: one term per (status class, failure count) until
    the backoff reaches its cap, so jobs that are not due never crowd out those that are."""
    due = Q(pk__in=[])
    for statuses, base in (
        (QUEUED_STATUSES, base_interval("queued")),
        (TERMINAL_STATUSES | QUEUED_STATUSES, base_interval("running")),
    ):
        in_class = Q(status__in=statuses) if statuses is QUEUED_STATUSES else ~Q(status__in=statuses)
        failures = 0
        while (interval := backed_off(base, failures)) < backed_off(base, failures + 1):
            due |= in_class & Q(consecutive_failures=failures, checked_at__lte=now - interval)
            failures += 1
        due |= in_class & Q(consecutive_failures__gte=failures, checked_at__lte=now - interval)
    return due


def is_due(job: TrackedJob, *, now: dt.datetime | None = None, claimed_by_me: bool = False) -> bool:
    now = now or timezone.now()
    interval = refresh_interval(job)
    if interval is None or job.checked_at + interval > now:
        return False
    # A worker holding the claim is refreshing it; a page need not.
    return claimed_by_me or not (job.claimed_until and job.claimed_until > now)


def refresh_if_due(job: TrackedJob) -> TrackedJob:
    """Refresh a stale snapshot of a running job; what the pages' polls call."""
    if is_due(job):
        return _refresh_single_flight(job, force=False)
    if training_log.wanted_by_viewer(job, interval=base_interval(job.status)):
        return sync_training_log(job)
    return job


def sync_training_log(job: TrackedJob) -> TrackedJob:
    """Read a job's events and checkpoints without its snapshot, single-flight like a refresh:
    for a job page whose job the worker keeps fresh from the job list (which carries no
    training log), and for the one read after the end that a finished job's last refresh did
    not do (tracked when already finished, or that read failed)."""
    with refresh_lock(job) as locked:
        if not locked:
            return job
        job.refresh_from_db()
        opened = open_token(job.token_id)
        if opened.client is None or opened.token.is_paused:
            return job
        training_log.sync_after_snapshot(job, opened.client, before=job.details)
        return job


def refresh_now(job: TrackedJob) -> TrackedJob:
    """The "Refresh now" button: fetch even a finished job, still one call at a time."""
    return _refresh_single_flight(job, force=True)


def lock_seconds() -> int:
    """How long a refresh can take at most: its call's deadline (every retry included), plus a margin."""
    return math.ceil(ClientConfig.from_settings().total_timeout) + 5


def claim_due_jobs(
    *,
    limit: int,
    lease_seconds: int,
    token_ids: Iterable[int] | None = None,
    exclude_token_ids: Iterable[int] = (),
    budget_tier: request_budget.Tier = request_budget.Tier.BACKGROUND,
) -> list[TrackedJob]:
    """Claim up to `limit` due jobs (of the tokens `token_ids`, if given, and none of
    `exclude_token_ids`) for this worker until the lease runs out, oldest check first, no more
    of a token's than its request budget has calls left for in `budget_tier` (for a list read:
    none of a token whose budget has no call left).

    Two workers never claim the same job (`jobs.sync.leases`); on PostgreSQL they pick
    different ones without waiting.
    """
    now = timezone.now()
    candidates = TrackedJob.objects.filter(_due_in_sql(now))
    if token_ids is not None:
        candidates = candidates.filter(token_id__in=list(token_ids))
    candidates = candidates.exclude(token_id__in=list(exclude_token_ids))
    # As far as each token's request budget goes (jobs.request_budget): the others wait, still
    # due, rather than be claimed and refused. A list read costs one call for all of them.
    due_tokens = candidates.exclude(token__isnull=True).values_list("token_id", flat=True).order_by().distinct()
    calls_left = request_budget.calls_left(due_tokens, budget_tier)
    quota = (
        None if budget_tier is request_budget.Tier.LIST_READ else Quota(key=lambda job: job.token_id, left=calls_left)
    )
    return _claim(
        candidates.exclude(token_id__in=[pk for pk, left in calls_left.items() if left < 1]).order_by("checked_at"),
        now=now,
        limit=limit,
        lease_seconds=lease_seconds,
        quota=quota,
    )


def claim_jobs(jobs: Iterable[TrackedJob], *, lease_seconds: int) -> list[TrackedJob]:
    """Claim these jobs, due or not, where no one else holds a claim: the ones won."""
    now = timezone.now()
    candidates = TrackedJob.objects.filter(pk__in=[job.pk for job in jobs]).order_by("pk")
    return _claim(candidates, now=now, limit=None, lease_seconds=lease_seconds)


def _claim(
    candidates, *, now: dt.datetime, limit: int | None, lease_seconds: int, quota: Quota | None = None
) -> list[TrackedJob]:
    # Several workers claim a round's worth of jobs at the same time: SKIP LOCKED spares them
    # queueing behind each other's candidates.
    return JOB_LEASE.claim(
        candidates.exclude(token__rate_limited_until__gt=now).exclude(token__isnull=True),
        seconds=lease_seconds,
        now=now,
        limit=limit,
        quota=quota,
        skip_locked=True,
    )


def refresh_claimed(job: TrackedJob) -> TrackedJob:
    """Refresh a job this worker claimed, then give the claim back (if it is still this worker's)."""
    held = job.claimed_until
    try:
        return _refresh_single_flight(job, force=False, claimed_by_me=True)
    finally:
        JOB_LEASE.give_back(TrackedJob.objects.filter(pk=job.pk), held=held)


@contextlib.contextmanager
def refresh_lock(job: TrackedJob) -> Iterator[bool]:
    """The single-flight lock on refreshing `job`: yields False when someone else holds it."""
    lock_key = f"ftdash:refresh-lock:{job.pk}"
    try:
        locked = cache.add(lock_key, "locked", timeout=lock_seconds())
    except Exception:
        # A cache outage must not take the pages down; the re-check under the lock still
        # keeps sequential viewers from calling twice.
        logger.warning("refresh lock unavailable for job %s", job.job_id, exc_info=True)
        locked = True
    if not locked:
        yield False
        return
    try:
        yield True
    finally:
        try:
            cache.delete(lock_key)
        except Exception:
            logger.warning("could not release the refresh lock of job %s", job.job_id, exc_info=True)


def _refresh_single_flight(job: TrackedJob, *, force: bool, claimed_by_me: bool = False) -> TrackedJob:
    with refresh_lock(job) as locked:
        if not locked:
            return job  # someone else is fetching it right now; show what we have
        # Whoever held the lock before us may have just refreshed it.
        job.refresh_from_db()
        if not force and not is_due(job, claimed_by_me=claimed_by_me):
            return job
        _fetch_and_store(job)
        return job


UNEXPECTED_FAILURE = (
    "Refreshing this job failed unexpectedly; the last good snapshot is shown and ftdash tries "
    "again later. The server log has the details."
)


def _fetch_and_store(job: TrackedJob) -> None:
    now = timezone.now()
    try:
        _fetch_and_store_answer(job, now)
    except Exception:
        # Whatever an answer holds or a dependency raises, it must not take the pages or the
        # worker's round down: the old snapshot stays, and the failure backs off like any other.
        logger.exception("refresh of job %s failed unexpectedly", job.job_id)
        try:
            job.refresh_from_db()
        except TrackedJob.DoesNotExist:
            return  # removed while it was being refreshed: nothing left to record
        store_failure(job, now, UNEXPECTED_FAILURE, logged=True)


def _fetch_and_store_answer(job: TrackedJob, now: dt.datetime) -> None:
    opened = open_token(job.token_id)
    token, client = opened.token, opened.client
    if token is None:
        store_failure(
            job, now, "Not refreshed: the API token this job used was deleted. Track the job again with another token."
        )
        return
    if until := token.paused_until:
        store_rate_limited(job, now, until=until)
        return
    if client is None:
        store_failure(job, now, opened.problem)
        return
    try:
        details = fetch_job(token=token, job_id=job.job_id, client=client)
    except request_budget.BudgetSpent:
        note_budget_wait([job], now)
        return
    except TokenFactoryError as exc:
        # A 429 already pauses the whole token until Retry-After; no extra backoff on top.
        store_failure(job, now, exc.message, backs_off=not isinstance(exc, RateLimited))
        return
    store_snapshot_with_extras(job, details, now=now, client=client)


def store_snapshot_with_extras(
    job: TrackedJob, details: FineTuningJob, *, now: dt.datetime, client: TokenFactoryClient
) -> None:
    """`store_snapshot`, and beside it, under the same lock and with the same token (viewers
    never multiply these calls either): the names of the job's files and the models deployed
    from it, into the cache pages read (before the new version is saved, so the page re-renders
    with them), then the job's events and checkpoints."""
    files.remember_files(details, token_id=job.token_id)
    deployments.refresh_models(job)
    before = job.details
    store_snapshot(job, details, now=now)
    training_log.sync_after_snapshot(job, client, before=before)


def store_snapshot(job: TrackedJob, details: FineTuningJob, *, now: dt.datetime) -> None:
    """Store what the API said about `job` (asked at `now`): its history events and their
    notifications with it. Only ever called under the job's refresh lock, so each transition
    is recorded, and notified, once.

    An answer equal to the stored snapshot still records the check (the job is not due again,
    and pages say how fresh it is) but leaves `changed_at`, and so the live version, alone."""
    before = job.details
    if details.raw != job.snapshot:
        job.changed_at = now
    job.snapshot = details.raw
    job.status = details.status
    job.fetched_at = job.checked_at = now
    job.refresh_error = ""
    job.consecutive_failures = 0
    job.budget_wait_since = None
    with transaction.atomic():
        events = history.record_changes(job, before=before, after=details, now=now)
        frozen = costs.freeze_if_ended(job, details, now=now)
        job.save(
            update_fields=[
                "snapshot",
                "status",
                "fetched_at",
                "checked_at",
                "changed_at",
                "refresh_error",
                "consecutive_failures",
                "progress_changed_at",
                "stalled_at",
                "budget_wait_since",
                *frozen,
            ]
        )
        if job.changed_at == now:
            events += costs.warnings_after_snapshot(job, details, now=now)
            events += health.after_snapshot(job, details, before=before, now=now)
        notifications.queue_for_events(events)


def fetch_job(*, token: ApiToken, job_id: str, client: TokenFactoryClient | None = None) -> FineTuningJob:
    """Ask the API about one job with `token` (through `client`, if the caller opened one for
    it), recording what the answer says about the token. Raises vault.VaultError, without a
    call, when the token's key cannot be decrypted."""
    client = client or open_token(token).require_client()
    try:
        try:
            return client.get_job(job_id)
        except JobForbidden:
            # A 403 on one job may only mean the job is out of this token's reach (another
            # project); the token counts as rejected only if listing jobs is refused too.
            try:
                client.check_key()
            except TokenRejected:
                raise
            except TokenFactoryError:
                pass
            raise
    except TokenFactoryError as exc:
        record_upstream_error(token, exc)
        raise


def store_rate_limited(job: TrackedJob, now: dt.datetime, *, until: dt.datetime) -> None:
    """Record that `job` waits for its token's rate-limit pause (no extra backoff on top)."""
    wait = int((until - now).total_seconds()) + 1
    store_failure(job, now, f"Token Factory is rate-limiting this token; the next try is in {wait} s.", backs_off=False)


def store_failure(
    job: TrackedJob, now: dt.datetime, message: str, *, backs_off: bool = True, logged: bool = False
) -> None:
    instrumentation.REFRESH_ERRORS.inc()
    if not logged:
        logger.info("refresh of job %s failed: %s", job.job_id, message)
    job.checked_at = now
    job.refresh_error = message[:500]
    job.consecutive_failures += 1 if backs_off else 0
    job.budget_wait_since = None
    job.save(update_fields=["checked_at", "refresh_error", "consecutive_failures", "budget_wait_since"])


def note_budget_wait(jobs: Iterable[TrackedJob], now: dt.datetime) -> None:
    """These due jobs wait for their token's request budget: not a failure (no error, no backoff,
    the schedule stays, so they are first in line), but their cards say so."""
    pks = [job.pk for job in jobs]
    TrackedJob.objects.filter(pk__in=pks, budget_wait_since__isnull=True).update(budget_wait_since=now)
    for job in jobs:
        job.budget_wait_since = job.budget_wait_since or now
