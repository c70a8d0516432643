"""Keeping tracked jobs' snapshots fresh: the only code that asks the API about a tracked job.

Pages render stored snapshots. When a snapshot is older than its refresh interval, the next
read refreshes it under a single-flight lock held in the shared cache, then re-checks the
database: however many people (or processes) watch a job, the API is asked about it at most
once per interval. A failed refresh keeps the last snapshot and records why.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from jobs import vault
from jobs.finetuning import QUEUED_STATUSES, TERMINAL_STATUSES, FineTuningJob
from jobs.models import ApiToken, TrackedJob
from jobs.tokenfactory import (
    ClientConfig,
    RateLimited,
    TokenFactoryClient,
    TokenFactoryError,
    TokenRejected,
)

logger = logging.getLogger(__name__)


def refresh_interval(status: str) -> dt.timedelta | None:
    """How long a snapshot of a job in `status` stays fresh; None: never refreshed by itself."""
    if status in TERMINAL_STATUSES:
        return None
    if status in QUEUED_STATUSES:
        return dt.timedelta(seconds=settings.FTDASH_QUEUED_REFRESH_SECONDS)
    return dt.timedelta(seconds=settings.FTDASH_REFRESH_SECONDS)


def is_due(job: TrackedJob, *, now: dt.datetime | None = None) -> bool:
    interval = refresh_interval(job.status)
    return interval is not None and job.checked_at + interval <= (now or timezone.now())


def refresh_if_due(job: TrackedJob) -> TrackedJob:
    """Refresh a stale snapshot of a running job; what the pages' polls call."""
    if not is_due(job):
        return job
    return _refresh_single_flight(job, force=False)


def refresh_now(job: TrackedJob) -> TrackedJob:
    """The "Refresh now" button: fetch even a finished job, still one call at a time."""
    return _refresh_single_flight(job, force=True)


def _lock_seconds() -> int:
    config = ClientConfig.from_settings()
    attempt = config.connect_timeout + config.read_timeout + config.backoff_seconds * 4
    return int(attempt * (config.retries + 1)) + 5


def _refresh_single_flight(job: TrackedJob, *, force: bool) -> TrackedJob:
    lock_key = f"ftdash:refresh-lock:{job.pk}"
    try:
        locked = cache.add(lock_key, "locked", timeout=_lock_seconds())
    except Exception:
        # A cache outage must not take the pages down; the re-check below still keeps
        # sequential viewers from calling twice.
        logger.warning("refresh lock unavailable for job %s", job.job_id, exc_info=True)
        locked = True
    if not locked:
        return job  # someone else is fetching it right now; show what we have
    try:
        # Whoever held the lock before us may have just refreshed it.
        job.refresh_from_db()
        if not force and not is_due(job):
            return job
        _fetch_and_store(job)
        return job
    finally:
        try:
            cache.delete(lock_key)
        except Exception:
            logger.warning("could not release the refresh lock of job %s", job.job_id, exc_info=True)


def _fetch_and_store(job: TrackedJob) -> None:
    now = timezone.now()
    token = ApiToken.objects.filter(pk=job.token_id).first()
    if token is None:
        _store_failure(job, now, "Not refreshed: the API token this job used was deleted. "
                       "Track the job again with another token.")
        return
    if token.rate_limited_until and token.rate_limited_until > now:
        wait = int((token.rate_limited_until - now).total_seconds()) + 1
        _store_failure(job, now, f"Token Factory is rate-limiting this token; "
                       f"the next try is in {wait} s.")
        return
    try:
        details = fetch_job(token=token, job_id=job.job_id)
    except (TokenFactoryError, vault.VaultError) as exc:
        _store_failure(job, now, getattr(exc, "message", str(exc)))
        return
    job.snapshot = details.raw
    job.status = details.status
    job.fetched_at = job.checked_at = now
    job.refresh_error = ""
    job.save(update_fields=["snapshot", "status", "fetched_at", "checked_at", "refresh_error"])


def fetch_job(*, token: ApiToken, job_id: str) -> FineTuningJob:
    """Ask the API about one job with `token`, recording what the answer says about the token."""
    client = TokenFactoryClient(vault.decrypt(token.secret_encrypted))
    try:
        return client.get_job(job_id)
    except RateLimited as exc:
        token.rate_limited_until = timezone.now() + dt.timedelta(seconds=exc.retry_after)
        token.save(update_fields=["rate_limited_until"])
        raise
    except TokenRejected as exc:
        record_token_check(token, ok=False, message=exc.message)
        raise


def record_token_check(token: ApiToken, *, ok: bool, message: str) -> None:
    token.last_checked_at = timezone.now()
    token.last_check_ok = ok
    token.last_check_message = message[:300]
    token.save(update_fields=["last_checked_at", "last_check_ok", "last_check_message"])


def _store_failure(job: TrackedJob, now: dt.datetime, message: str) -> None:
    logger.info("refresh of job %s failed: %s", job.job_id, message)
    job.checked_at = now
    job.refresh_error = message[:500]
    job.save(update_fields=["checked_at", "refresh_error"])
