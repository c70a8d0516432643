"""Import jobs: start or resume reading a token's whole job list, then track the ones someone picks.

The reading itself (paged, under a claim, stored as it goes) is jobs.sync.imports. Tracking from
the list stores the listed snapshot (no GET per job) when the entry was a whole job, and asks for
the job by ID only when it was not. One audit entry says who imported how many.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from jobs.audit import audit_record
from jobs.finetuning import FineTuningJob
from jobs.models import ApiToken, ImportListing, ImportRun
from jobs.selectors import tracked_ids
from jobs.services.tracked_jobs import job_track_many
from jobs.sync.imports import PAGES_ON_START, import_advance
from jobs.sync.listed_jobs import job_track_listed


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
            for job_id, outcome, message in job_track_many(
                workspace=workspace, token=token, job_ids=[row.job_id], user=user
            ):
                if outcome == "tracked":
                    result.tracked.append(job_id)
                elif outcome == "already":
                    result.already.append(job_id)
                else:
                    result.failed.append((job_id, message))
            continue
        job = job_track_listed(
            workspace=workspace,
            token=token,
            details=FineTuningJob.from_payload(row.snapshot),
            user=user,
            now=now,
        )
        (result.tracked.append(row.job_id) if job else result.already.append(row.job_id))
    if result.tracked:
        audit_record(
            workspace=workspace,
            actor=user,
            action="job.import",
            description=f"imported {len(result.tracked)} job(s) listed by token “{token.name}”"
            + (f"; {len(result.already)} already tracked" if result.already else ""),
        )
    return result
