"""Reads for the pages. Each runs a fixed number of queries, however many jobs there are."""

from __future__ import annotations

import datetime as dt

from django.db.models import Case, Count, Q, QuerySet, Value, When
from django.utils import timezone

from jobs.access import Need, jobs_visible_to, user_workspaces
from jobs.finetuning import TERMINAL_STATUSES
from jobs.models import ApiToken, AuditEvent, MemberInvitation, Membership, TrackedJob, Workspace, WorkerHeartbeat


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
            Q(job_id__icontains=q) | Q(label__icontains=q)
            | Q(snapshot__suffix__icontains=q) | Q(snapshot__model__icontains=q)
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


def tokens_usable_by(*, user) -> list[ApiToken]:
    """Tokens the user may track jobs with (members use their workspaces' tokens), in one query."""
    return list(
        ApiToken.objects.filter(workspace__memberships__user=user,
                                workspace__memberships__role__in=Membership.EDITING_ROLES)
        .select_related("workspace")
        .order_by("name", "pk")
    )


def tokens_managed_by(*, user) -> list[ApiToken]:
    workspaces = user_workspaces(user, Need.MANAGE)
    return list(
        ApiToken.objects.filter(workspace__in=workspaces)
        .select_related("workspace")
        .annotate(job_count=Count("jobs"))
        .order_by("workspace__name", "name", "pk")
    )


def team_memberships(*, user) -> list[Membership]:
    """The user's teams (not their personal workspace), with member counts."""
    return list(
        Membership.objects.filter(user=user, workspace__personal_for__isnull=True)
        .select_related("workspace")
        .annotate(member_count=Count("workspace__memberships"))
        .order_by("workspace__name", "workspace__pk")
    )


def team_members(*, team: Workspace) -> list[Membership]:
    return list(team.memberships.select_related("user").order_by("user__username"))


def audit_trail(*, workspace: Workspace, limit: int = 500) -> list[AuditEvent]:
    return list(workspace.audit_events.all()[:limit])


def invitations_for(*, user) -> list[MemberInvitation]:
    """Invitations waiting for the user's answer, newest first."""
    return list(
        user.team_invitations.select_related("workspace", "invited_by").order_by("-created_at", "-pk")
    )


def worker_last_seen() -> dt.datetime | None:
    """When a `poll_jobs` worker last checked in, or None if none ever did."""
    return WorkerHeartbeat.objects.order_by("-last_seen").values_list("last_seen", flat=True).first()
