"""A token's import list as the "Import jobs" page shows it: the latest reading, its rows, filters."""

from __future__ import annotations

import datetime as dt

from django.db.models import QuerySet

from jobs.models import ApiToken, ImportListing, ImportRun, TrackedJob


def latest_run(token: ApiToken) -> ImportRun | None:
    return token.import_runs.select_related("requested_by").first()


def listings(
    run: ImportRun,
    *,
    status: str = "",
    model: str = "",
    created_from: dt.date | None = None,
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


def listing_choices(run: ImportRun) -> tuple[list[str], list[str]]:
    """The statuses and the models among the run's rows, sorted: what the filters offer."""
    rows = run.listings.all()
    statuses = sorted(set(rows.exclude(status="").values_list("status", flat=True)))
    models = sorted(set(rows.exclude(model="").values_list("model", flat=True)))
    return statuses, models


def listings_picked(run: ImportRun, job_ids: list[str]) -> QuerySet[ImportListing]:
    """The run's rows of the jobs a person ticked."""
    return run.listings.filter(job_id__in=job_ids)


def token_reread(token: ApiToken) -> ApiToken:
    """The token as stored now: reading a page of its job list changes what the progress shows."""
    return ApiToken.objects.get(pk=token.pk)


def tracked_ids(token: ApiToken, job_ids: list[str]) -> set[str]:
    return set(
        TrackedJob.objects.filter(workspace_id=token.workspace_id, job_id__in=job_ids).values_list("job_id", flat=True)
    )
