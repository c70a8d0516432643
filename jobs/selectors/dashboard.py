"""The dashboard's jobs: filtered, searched and sorted, in one query however many there are, and
their counts (the summary's counters and "Spent this month" with them), in another."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.db.models import Case, Count, Exists, OuterRef, Q, QuerySet, Sum, Value, When
from django.utils import timezone

from jobs.access import jobs_visible_to
from jobs.costs import month_start, next_month
from jobs.finetuning import TERMINAL_STATUSES
from jobs.models import JobAlert, TrackedJob, Workspace

DASHBOARD_SORTS = {
    "newest": ("Newest tracked, live first", ["-created_at", "-pk"]),
    "oldest": ("Oldest tracked", ["created_at", "pk"]),
    "updated": ("Recently updated", ["-fetched_at", "-pk"]),
    "status": ("Status", ["status", "-created_at"]),
}


DASHBOARD_PERIODS = {"day": ("Last 24 hours", 1), "week": ("Last 7 days", 7), "month": ("Last 30 days", 30)}

# A status filter (and summary counter) that covers more than one status the API may send.
STATUS_GROUPS = {
    "queued": ("queued", "validating_files"),
    "cancelled": ("cancelled", "canceled"),
}
# The summary's counters, in the order the dashboard shows them: (filter value, label).
SUMMARY_COUNTERS = [
    ("running", "Running"),
    ("queued", "Queued"),
    ("succeeded", "Succeeded"),
    ("failed", "Failed"),
    ("cancelled", "Cancelled"),
]


def status_q(status: str) -> Q | None:
    """The jobs the `status` filter keeps (None: no status filter)."""
    if not status:
        return None
    if status == "stalled":
        return Q(stalled_at__isnull=False)
    return Q(status__in=STATUS_GROUPS.get(status, (status,)))


def jobs_in_view(
    *,
    user,
    workspace: Workspace | None = None,
    model: str = "",
    period: str = "",
    q: str = "",
    alert: bool = False,
    **_ignored,
) -> QuerySet[TrackedJob]:
    """The jobs the dashboard's filters keep, the status filter aside (the summary counts them).
    `alert`: only jobs with an open training-health alert ("Has an alert")."""
    jobs = jobs_visible_to(user)
    if alert:
        # In the same query (a subquery on the open alerts' index), however many jobs.
        jobs = jobs.filter(Exists(JobAlert.objects.filter(job=OuterRef("pk"), cleared_at__isnull=True)))
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
    if model:
        jobs = jobs.filter(snapshot__model__icontains=model)
    if period in DASHBOARD_PERIODS:
        jobs = jobs.filter(created_at__gte=timezone.now() - dt.timedelta(days=DASHBOARD_PERIODS[period][1]))
    return jobs


def jobs_for_dashboard(
    *,
    user,
    workspace: Workspace | None = None,
    status: str = "",
    model: str = "",
    period: str = "",
    sort: str = "newest",
    q: str = "",
    alert: bool = False,
) -> QuerySet[TrackedJob]:
    jobs = jobs_in_view(user=user, workspace=workspace, model=model, period=period, q=q, alert=alert)
    kept = status_q(status)
    if kept is not None:
        jobs = jobs.filter(kept)
    order = DASHBOARD_SORTS.get(sort, DASHBOARD_SORTS["newest"])[1]
    if sort not in DASHBOARD_SORTS or sort == "newest":
        # The default view puts jobs that can still change first: they are what people watch,
        # and with finished ones paged after them a big workspace still opens fast.
        order = [Case(When(status__in=TERMINAL_STATUSES, then=Value(1)), default=Value(0)), *order]
    return jobs.order_by(*order)


def dashboard_counts(*, user, status: str = "", now: dt.datetime | None = None, **filters) -> dict:
    """The dashboard's numbers, in ONE query however many jobs there are (conditional aggregation):

    - `total` and `running`: among the jobs the list shows (every filter, status included);
    - the summary's counters (`SUMMARY_COUNTERS`: running, queued, succeeded, failed, cancelled),
      among the jobs the other filters keep, so they stay put when one of them is clicked;
    - `spent_this_month`: the frozen final costs of those jobs that finished this month
      (FTDASH_TIME_ZONE's month, jobs.costs.month_start), a Decimal (0 when none).
    """
    start = month_start(now or timezone.now())
    shown = status_q(status)
    running = Q(status="running")
    counts = jobs_in_view(user=user, **filters).aggregate(
        total=Count("pk", filter=shown),
        running=Count("pk", filter=running & shown if shown is not None else running),
        **{f"count_{key}": Count("pk", filter=status_q(key)) for key, _ in SUMMARY_COUNTERS},
        spent_this_month=Sum("final_cost_usd", filter=Q(finished_at__gte=start, finished_at__lt=next_month(start))),
    )
    counts["spent_this_month"] = counts["spent_this_month"] or Decimal(0)
    counts["counters"] = [(key, label, counts[f"count_{key}"]) for key, label in SUMMARY_COUNTERS]
    return counts
