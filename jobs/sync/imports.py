"""Import jobs, the reading half: every job a token can see, read page by page into ImportListing rows.

Reading is paged (`after` + `limit`) and stored as it goes (`ImportRun` + `ImportListing`),
one page per transaction under a claim, so that:

- an account with a thousand jobs never holds a request: the click reads the first page,
  the worker (or, with no worker, the page's progress poll) reads the rest in the background;
- a second click finds the reading under way instead of starting another (at most one run per
  token is reading: a conditional unique constraint);
- a list that fails half-way keeps what was read, and "Resume" goes on from `cursor`;
- a 429 pauses the token for everything, as anywhere else, and the reading waits for it.

Starting, resuming and tracking from the list are people's writes: jobs.services.imports.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.db import transaction
from django.utils import timezone

from jobs.finetuning import FineTuningJob
from jobs.models import ImportListing, ImportRun
from jobs.request_budget import BudgetSpent
from jobs.sync import refresh
from jobs.sync.leases import Lease
from jobs.sync.tokens import open_token, record_upstream_error
from jobs.tokenfactory import (
    JobListPage,
    RateLimited,
    TokenFactoryError,
)

logger = logging.getLogger(__name__)

#: A reader's claim on a run: one reader at a time, whether the worker, the click or the page's poll.
IMPORT_LEASE = Lease(ImportRun, "claimed_until")

#: Pages the click itself reads (a short list is then ready at once); the rest is background work.
PAGES_ON_START = 1
#: Pages one worker round reads of one import.
PAGES_PER_ROUND = 10


def claim_reading_runs(*, limit: int = 20) -> list[int]:
    """Runs the worker may read now: reading, unclaimed, their token not rate-limited."""
    now = timezone.now()
    return list(
        ImportRun.objects.filter(state=ImportRun.State.READING)
        .filter(IMPORT_LEASE.free(now))
        .exclude(token__rate_limited_until__gt=now)
        .order_by("updated_at")
        .values_list("pk", flat=True)[:limit]
    )


def import_advance(run_pk: int, *, pages: int) -> ImportRun:
    """Read up to `pages` more pages of a reading run, if no one else is reading it right now."""
    now = timezone.now()
    won = IMPORT_LEASE.take(
        ImportRun.objects.filter(pk=run_pk, state=ImportRun.State.READING),
        until=now + dt.timedelta(seconds=refresh.lock_seconds() * (pages + 1)),
        now=now,
    )
    run = ImportRun.objects.select_related("token", "requested_by").get(pk=run_pk)
    if not won:
        return run
    try:
        _read_pages(run, pages=pages)
    finally:
        IMPORT_LEASE.release([run])
    return run


def _read_pages(run: ImportRun, *, pages: int) -> None:
    token = run.token
    if token.is_paused:
        return
    opened = open_token(token)
    if opened.client is None:
        _stop(run, opened.problem)
        return
    for _ in range(pages):
        try:
            page = opened.client.list_jobs(after=run.cursor or None)
        except RateLimited as exc:
            record_upstream_error(token, exc)  # the reading waits, still "reading"
            return
        except BudgetSpent:
            return  # the next round reads on
        except TokenFactoryError as exc:
            record_upstream_error(token, exc)
            _stop(run, exc.message)
            return
        _store_page(run, page)
        if not run.is_reading:
            return


def _store_page(run: ImportRun, page: JobListPage) -> None:
    listed = [_listing(run, details) for details in page.jobs]
    listed += [ImportListing(run=run, job_id=job_id, status="") for job_id in page.incomplete]
    with transaction.atomic():
        known = set(run.listings.filter(job_id__in=[x.job_id for x in listed]).values_list("job_id", flat=True))
        new = [x for x in {x.job_id: x for x in listed}.values() if x.job_id not in known]
        for position, listing in enumerate(new, start=run.jobs_found):
            listing.position = position
        ImportListing.objects.bulk_create(new)
        run.pages_read += 1
        run.jobs_found += len(new)
        run.cursor = page.last_id or run.cursor
        run.updated_at = timezone.now()
        if not page.has_more or page.last_id is None:
            run.state = ImportRun.State.DONE
        run.save(update_fields=["pages_read", "jobs_found", "cursor", "updated_at", "state"])


def _listing(run: ImportRun, details: FineTuningJob) -> ImportListing:
    return ImportListing(
        run=run,
        job_id=details.id,
        status=details.status[:40],
        model=details.model[:300],
        suffix=details.suffix[:300],
        job_created_at=details.created_at,
        snapshot=details.raw,
    )


def _stop(run: ImportRun, message: str) -> None:
    logger.info("import %s of token %s stopped: %s", run.pk, run.token_id, message)
    run.state, run.error, run.updated_at = ImportRun.State.FAILED, message[:500], timezone.now()
    run.save(update_fields=["state", "error", "updated_at"])
