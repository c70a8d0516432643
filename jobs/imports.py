"""Import jobs: read every job a token can see, then track the ones someone picks, in one go.

Reading is paged (`after` + `limit`) and stored as it goes (`ImportRun` + `ImportListing`),
one page per transaction under a claim, so that:

- an account with a thousand jobs never holds a request: the click reads the first page,
  the worker (or, with no worker, the page's progress poll) reads the rest in the background;
- a second click finds the reading under way instead of starting another (at most one run per
  token is reading: a conditional unique constraint);
- a list that fails half-way keeps what was read, and "Resume" goes on from `cursor`;
- a 429 pauses the token for everything, as anywhere else, and the reading waits for it.

Tracking from the list stores the listed snapshot (no GET per job) when the entry was a whole
job, and asks for the job by ID only when it was not. One audit entry says who imported how many.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from jobs import refresh, services, vault
from jobs.finetuning import FineTuningJob
from jobs.models import ApiToken, ImportListing, ImportRun, TrackedJob
from jobs.request_budget import BudgetSpent
from jobs.tokenfactory import (
    JobListPage,
    RateLimited,
    TokenFactoryError,
    TokenRejected,
)

logger = logging.getLogger(__name__)

#: Pages the click itself reads (a short list is then ready at once); the rest is background work.
PAGES_ON_START = 1
#: Pages one worker round reads of one import.
PAGES_PER_ROUND = 10


def latest_run(token: ApiToken) -> ImportRun | None:
    return token.import_runs.select_related("requested_by").first()


def import_start(*, token: ApiToken, user) -> tuple[ImportRun, bool]:
    """Start reading the token's job list, unless a reading is under way: (run, started).

    A new reading replaces the token's previous list (what is tracked stays tracked).
    """
    reading = token.import_runs.filter(state=ImportRun.State.READING).first()
    if reading is not None:
        return reading, False
    try:
        with transaction.atomic():
            token.import_runs.exclude(state=ImportRun.State.READING).delete()
            run = ImportRun.objects.create(token=token, requested_by=user)
    except IntegrityError:  # someone else clicked a moment ago
        return token.import_runs.get(state=ImportRun.State.READING), False
    return import_advance(run.pk, pages=PAGES_ON_START), True


def import_resume(*, run: ImportRun) -> bool:
    """Go on reading a list that stopped on an error, from where it stopped."""
    try:
        with transaction.atomic():
            resumed = ImportRun.objects.filter(pk=run.pk, state=ImportRun.State.FAILED).update(
                state=ImportRun.State.READING, error="", updated_at=timezone.now()
            )
    except IntegrityError:  # a newer reading of the same token is under way
        return False
    return bool(resumed)


def claim_reading_runs(*, limit: int = 20) -> list[int]:
    """Runs the worker may read now: reading, unclaimed, their token not rate-limited."""
    now = timezone.now()
    return list(
        ImportRun.objects.filter(state=ImportRun.State.READING)
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
        .exclude(token__rate_limited_until__gt=now)
        .order_by("updated_at")
        .values_list("pk", flat=True)[:limit]
    )


def import_advance(run_pk: int, *, pages: int) -> ImportRun:
    """Read up to `pages` more pages of a reading run, if no one else is reading it right now."""
    now = timezone.now()
    lease = now + dt.timedelta(seconds=refresh.lock_seconds() * (pages + 1))
    unclaimed = Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)
    won = ImportRun.objects.filter(pk=run_pk, state=ImportRun.State.READING).filter(unclaimed).update(
        claimed_until=lease
    )
    run = ImportRun.objects.select_related("token", "requested_by").get(pk=run_pk)
    if not won:
        return run
    try:
        _read_pages(run, pages=pages)
    finally:
        ImportRun.objects.filter(pk=run.pk, claimed_until=lease).update(claimed_until=None)
        run.claimed_until = None
    return run


def _read_pages(run: ImportRun, *, pages: int) -> None:
    token = run.token
    if token.rate_limited_until and token.rate_limited_until > timezone.now():
        return
    try:
        client = token.client()
    except vault.VaultError as exc:
        _stop(run, str(exc))
        return
    for _ in range(pages):
        try:
            page = client.list_jobs(after=run.cursor or None)
        except RateLimited as exc:
            refresh.pause_token(token, exc)  # the reading waits, still "reading"
            return
        except BudgetSpent:
            return  # the next round reads on
        except TokenFactoryError as exc:
            if isinstance(exc, TokenRejected):
                refresh.record_token_check(token, ok=False, message=exc.message)
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
        new = [x for x in dict((x.job_id, x) for x in listed).values() if x.job_id not in known]
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
        run=run, job_id=details.id, status=details.status[:40], model=details.model[:300],
        suffix=details.suffix[:300], job_created_at=details.created_at, snapshot=details.raw,
    )


def _stop(run: ImportRun, message: str) -> None:
    logger.info("import %s of token %s stopped: %s", run.pk, run.token_id, message)
    run.state, run.error, run.updated_at = ImportRun.State.FAILED, message[:500], timezone.now()
    run.save(update_fields=["state", "error", "updated_at"])


# --- What the page shows, and tracking from it ---------------------------------------------


def listings(
    run: ImportRun, *, status: str = "", model: str = "", created_from: dt.date | None = None,
    created_to: dt.date | None = None,
) -> QuerySet[ImportListing]:
    rows = run.listings.all()
    if status:
        rows = rows.filter(status=status)
    if model:
        rows = rows.filter(model=model)
    if created_from:
        rows = rows.filter(job_created_at__date__gte=created_from)
    if created_to:
        rows = rows.filter(job_created_at__date__lte=created_to)
    return rows


def tracked_ids(token: ApiToken, job_ids: list[str]) -> set[str]:
    return set(
        TrackedJob.objects.filter(workspace_id=token.workspace_id, job_id__in=job_ids)
        .values_list("job_id", flat=True)
    )


@dataclass
class ImportResult:
    tracked: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (job ID, why)


def import_track(*, run: ImportRun, rows: QuerySet[ImportListing], user) -> ImportResult:
    """Track the chosen listed jobs in the token's workspace, in one go."""
    token = run.token
    workspace = token.workspace
    chosen = list(rows.only("job_id", "snapshot"))
    already = tracked_ids(token, [row.job_id for row in chosen])
    result = ImportResult(already=[row.job_id for row in chosen if row.job_id in already])
    now = timezone.now()
    for row in chosen:
        if row.job_id in already:
            continue
        if row.snapshot is None:
            # The list gave a summary only: one GET for the whole job, as "Track a job" does.
            for job_id, outcome, message in services.job_track_many(
                workspace=workspace, token=token, job_ids=[row.job_id], user=user
            ):
                if outcome == "tracked":
                    result.tracked.append(job_id)
                elif outcome == "already":
                    result.already.append(job_id)
                else:
                    result.failed.append((job_id, message))
            continue
        job = services.job_track_listed(
            workspace=workspace, token=token, details=FineTuningJob.from_payload(row.snapshot),
            user=user, now=now,
        )
        (result.tracked.append(row.job_id) if job else result.already.append(row.job_id))
    if result.tracked:
        services.audit_record(
            workspace=workspace, actor=user, action="job.import",
            description=f"imported {len(result.tracked)} job(s) listed by token “{token.name}”"
            + (f"; {len(result.already)} already tracked" if result.already else ""),
        )
    return result
