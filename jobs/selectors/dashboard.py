"""The dashboard's jobs: filtered, searched and sorted, in one query however many there are, and
how many of them there are (and are running), in another."""

from __future__ import annotations

import datetime as dt

from django.db.models import Case, Count, Q, QuerySet, Value, When
from django.utils import timezone

from jobs.access import jobs_visible_to
from jobs.finetuning import TERMINAL_STATUSES
from jobs.models import TrackedJob, Workspace

DASHBOARD_SORTS = {
    "newest": ("Newest tracked, live first", ["-created_at", "-pk"]),
    "oldest": ("Oldest tracked", ["created_at", "pk"]),
    "updated": ("Recently updated", ["-fetched_at", "-pk"]),
    "status": ("Status", ["status", "-created_at"]),
}


DASHBOARD_PERIODS = {"day": ("Last 24 hours", 1), "week": ("Last 7 days", 7), "month": ("Last 30 days", 30)}


def jobs_for_dashboard(
    *,
    user,
    workspace: Workspace | None = None,
    status: str = "",
    model: str = "",
    period: str = "",
    sort: str = "newest",
    q: str = "",
) -> QuerySet[TrackedJob]:
    jobs = jobs_visible_to(user)
    if q:
        # Partial and case-insensitive, in the same query as the rest (no query per job).
        jobs = jobs.filter(
            Q(job_id__icontains=q)
            | Q(label__icontains=q)
            | Q(snapshot__suffix__icontains=q)
            | Q(snapshot__model__icontains=q)
        )
    if workspace is not None:
        jobs = jobs.filter(workspace=workspace)
    if status == "stalled":
        jobs = jobs.filter(stalled_at__isnull=False)
    elif status:
        jobs = jobs.filter(status=status)
    if model:
        jobs = jobs.filter(snapshot__model__icontains=model)
    if period in DASHBOARD_PERIODS:
        jobs = jobs.filter(created_at__gte=timezone.now() - dt.timedelta(days=DASHBOARD_PERIODS[period][1]))
    order = DASHBOARD_SORTS.get(sort, DASHBOARD_SORTS["newest"])[1]
    if sort not in DASHBOARD_SORTS or sort == "newest":
        # The default view puts jobs that can still change first: they are what people watch,
        # and with finished ones paged after them a big workspace still opens fast.
        order = [Case(When(status__in=TERMINAL_STATUSES, then=Value(1)), default=Value(0)), *order]
    return jobs.order_by(*order)


def dashboard_counts(jobs: QuerySet[TrackedJob]) -> dict[str, int]:
    """`total` and `running` among `jobs` (a `jobs_for_dashboard` answer), in one query."""
    return jobs.aggregate(total=Count("pk"), running=Count("pk", filter=Q(status="running")))
