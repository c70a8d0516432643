"""The worker's list reads: one paged `GET /v1/fine_tuning/jobs` per token instead of a GET per job.

A team watching 500 running jobs would otherwise cost 500 upstream calls per refresh interval.
The job list carries whole job objects (newest first, `after` + `limit` paging), so for each
token with several due jobs the worker reads the list page by page and stores every live job
of that token it finds there (due or not, so a token's jobs fall into step and one read per
interval covers them all). What the list does not give falls back to
`GET /v1/fine_tuning/jobs/{id}` through the ordinary refresh path:

- jobs beyond the pages worth reading (a page is read only while it could replace at least two
  GETs, and never more than enough pages to cover the due jobs, plus one);
- entries that lack fields a job's page shows (a summary list must not wipe a snapshot);
- every job of a token whose API has no list (404/405) or only a summary one: remembered in
  the shared cache for a while, so the list is not tried again every round.

The guarantees of `jobs.sync.refresh` hold: due jobs are claimed before the list is read (pages
leave claimed jobs alone), others are claimed before they are stored, every store happens
under the job's single-flight lock and only if nobody stored a newer answer meanwhile, so each
transition is recorded and notified once. A 429 pauses the whole token (its jobs then wait
without calls), and so does a spent request budget (`jobs.request_budget`, where a list read
goes before every other call); a rejected token or an unavailable API is recorded on the
token's due jobs with the usual backoff: the list call was their call for this interval.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from dataclasses import dataclass, field

from django.utils import timezone

from jobs import request_budget
from jobs.finetuning import TERMINAL_STATUSES, FineTuningJob
from jobs.models import ApiToken, TrackedJob
from jobs.sync import not_offered, refresh, training_log
from jobs.sync.not_offered import Endpoint
from jobs.sync.tokens import open_token, record_upstream_error
from jobs.tokenfactory import (
    LIST_PAGE_LIMIT,
    JobListPage,
    ListUnsupported,
    RateLimited,
    TokenFactoryClient,
    TokenFactoryError,
    TokenRejected,
)

logger = logging.getLogger(__name__)

#: A list page costs one call, like a GET: worth it only while it can stand in for two or more.
MIN_JOBS_FOR_LIST = 2
#: Pages read beyond those the due jobs would fill, for finished and untracked jobs in between.
EXTRA_PAGES = 1
MAX_PAGES = 10
#: How long a token's list is left alone after it failed (a list that keeps failing while GETs
#: work must not hold the jobs back); a missing or summary-only one: `jobs.sync.not_offered`.
FAILING_LIST_SECONDS = 300


@dataclass
class RoundClaims:
    """The due jobs one worker round claimed: those read from a list, and the rest."""

    by_list: dict[int, list[TrackedJob]] = field(default_factory=dict)  # token id → its due jobs
    one_by_one: list[TrackedJob] = field(default_factory=list)


@dataclass
class ListRead:
    """What reading one token's list did; `fall_back` still need a GET each."""

    pages: int = 0
    stored: int = 0
    fall_back: list[TrackedJob] = field(default_factory=list)


def claim_round(*, one_by_one_limit: int, lease_seconds: int) -> RoundClaims:
    """Claim this round's due jobs: up to a list's reach for tokens whose list works, up to
    `one_by_one_limit` for the others (each of those costs a call)."""
    no_list = tokens_without_list()
    claims = RoundClaims()
    by_token: dict[int, list[TrackedJob]] = {}
    for job in refresh.claim_due_jobs(
        limit=MAX_PAGES * LIST_PAGE_LIMIT,
        lease_seconds=lease_seconds,
        exclude_token_ids=no_list,
        budget_tier=request_budget.Tier.LIST_READ,
    ):
        by_token.setdefault(job.token_id, []).append(job)
    for token_id, jobs in by_token.items():
        if len({job.job_id for job in jobs}) >= MIN_JOBS_FOR_LIST:
            claims.by_list[token_id] = jobs
        else:
            claims.one_by_one += jobs
    if no_list:
        claims.one_by_one += refresh.claim_due_jobs(
            limit=one_by_one_limit, lease_seconds=lease_seconds, token_ids=no_list
        )
    return claims


def tokens_without_list() -> set[int]:
    """Tokens whose list was recently found missing, summary-only or failing (without the cache
    the list is simply tried again; a missing one falls back anyway)."""
    return not_offered.tokens_not_offered(Endpoint.JOB_LIST, ApiToken.objects.values_list("pk", flat=True))


def _remember_no_list(token: ApiToken, reason: str, *, failing: bool = False) -> None:
    not_offered.remember_not_offered(
        Endpoint.JOB_LIST, token_id=token.pk, reason=reason, seconds=FAILING_LIST_SECONDS if failing else None
    )


def refresh_from_list(*, token_id: int, due: list[TrackedJob], lease_seconds: int) -> ListRead:
    """Read `token_id`'s job list and store every live job of that token found on it; the due
    jobs (claimed by this worker) that were not found come back in `fall_back`."""
    read = ListRead()
    waiting: dict[str, list[TrackedJob]] = {}
    for job in due:
        waiting.setdefault(job.job_id, []).append(job)
    opened = open_token(token_id)
    token, client = opened.token, opened.client
    if client is None:
        # The GET path says why per job (a deleted token, a key that cannot be decrypted).
        read.fall_back = due
        return read
    budget = min(MAX_PAGES, math.ceil(len(waiting) / LIST_PAGE_LIMIT) + EXTRA_PAGES)
    after = None
    while read.pages < budget and len(waiting) >= MIN_JOBS_FOR_LIST:
        asked_at = timezone.now()
        try:
            with request_budget.tier(request_budget.Tier.LIST_READ):
                page = client.list_jobs(after=after)
        except request_budget.BudgetSpent:
            # They wait, still due and first in line, for the next call the budget allows.
            _wait_for_budget(waiting, now=asked_at)
            return read
        except ListUnsupported as exc:
            if after is None:  # a later page's 404 may only mean `after` went away
                _remember_no_list(token, exc.message)
            break
        except RateLimited as exc:
            # The due jobs go on to the GET path, which records the pause without calling.
            record_upstream_error(token, exc)
            break
        except TokenFactoryError as exc:
            record_upstream_error(token, exc)
            if not isinstance(exc, TokenRejected):
                _remember_no_list(token, exc.message, failing=True)
            read.pages += 1
            _record_failure(waiting, exc.message, now=asked_at)
            return read
        read.pages += 1
        read.stored += _store_page(token, client, page, waiting, asked_at=asked_at, lease_seconds=lease_seconds)
        if page.incomplete and not page.jobs:
            _remember_no_list(token, "its entries are not whole job objects")
            break
        if not page.has_more or page.last_id is None:
            break
        after = page.last_id
    read.fall_back = [job for jobs in waiting.values() for job in jobs]
    return read


def _store_page(
    token: ApiToken,
    client: TokenFactoryClient,
    page: JobListPage,
    waiting: dict[str, list[TrackedJob]],
    *,
    asked_at: dt.datetime,
    lease_seconds: int,
) -> int:
    """Store the page's jobs into every live tracked job of `token` with their ID; the due ones
    found leave `waiting`. Returns how many tracked jobs were stored."""
    listed = {details.id: details for details in page.jobs}
    mine = [job for job_id in listed for job in waiting.pop(job_id, [])]
    mine_pks = {job.pk for job in mine}
    others = (
        TrackedJob.objects.filter(token=token, job_id__in=list(listed))
        .exclude(status__in=TERMINAL_STATUSES)
        .exclude(pk__in=mine_pks)
        .only("pk", "job_id")
    )
    claimed = mine + refresh.claim_jobs(others, lease_seconds=lease_seconds)
    stored = []
    try:
        for job in claimed:
            if _store_listed(job, listed[job.job_id], client, asked_at=asked_at):
                stored.append(job)
    finally:
        refresh.JOB_LEASE.release(claimed)
    training_log.note_read_without_log([job for job in stored if not listed[job.job_id].is_terminal])
    return len(stored)


def _store_listed(
    claim: TrackedJob, details: FineTuningJob, client: TokenFactoryClient, *, asked_at: dt.datetime
) -> bool:
    """Store one listed job under its refresh lock, unless a page is fetching it right now or
    stored a newer answer since the list was asked for."""
    with refresh.refresh_lock(claim) as locked:
        if not locked:
            return False
        job = _current(claim)
        if job is None or job.claimed_until != claim.claimed_until or job.checked_at >= asked_at:
            return False  # removed, claim run out and taken by another worker, or newer answer
        try:
            if details.is_terminal and not job.is_terminal:
                # Its last word, once: the result files' names, its final events and checkpoints.
                refresh.store_snapshot_with_extras(job, details, now=asked_at, client=client)
            else:
                # While it runs, the list read stands in for a GET: its events come while
                # someone watches its page (see `_store_page`), its checkpoints (the cards'
                # sparklines) once per epoch.
                before = job.details
                refresh.store_snapshot(job, details, now=asked_at)
                training_log.sync_checkpoints_after_epoch(job, client, before=before)
        except Exception:
            # As with a GET: whatever the answer holds, the round goes on and the old snapshot
            # stays, with a failure that backs off.
            logger.exception("storing listed job %s failed unexpectedly", job.job_id)
            job.refresh_from_db()
            refresh.store_failure(job, asked_at, refresh.UNEXPECTED_FAILURE, logged=True)
            return False
        return True


def _current(claim: TrackedJob) -> TrackedJob | None:
    """The job as stored now (by primary key, no ordering: this runs once per listed job)."""
    try:
        return TrackedJob.objects.get(pk=claim.pk)
    except TrackedJob.DoesNotExist:
        return None


def _wait_for_budget(waiting: dict[str, list[TrackedJob]], *, now: dt.datetime) -> None:
    jobs = [job for group in waiting.values() for job in group]
    waiting.clear()
    try:
        refresh.note_budget_wait(jobs, now)
    finally:
        refresh.JOB_LEASE.release(jobs)


def _record_failure(waiting: dict[str, list[TrackedJob]], message: str, *, now: dt.datetime) -> None:
    """The list call failed for all of them: record it on each (backing off) and give them back."""
    jobs = [job for group in waiting.values() for job in group]
    waiting.clear()
    try:
        for claim in jobs:
            with refresh.refresh_lock(claim) as locked:
                job = _current(claim) if locked else None
                if job is not None and job.claimed_until == claim.claimed_until:
                    refresh.store_failure(job, now, message)
    finally:
        refresh.JOB_LEASE.release(jobs)
