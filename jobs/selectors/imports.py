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


def tracked_ids(token: ApiToken, job_ids: list[str]) -> set[str]:
    return set(
        TrackedJob.objects.filter(workspace_id=token.workspace_id, job_id__in=job_ids).values_list("job_id", flat=True)
    )
