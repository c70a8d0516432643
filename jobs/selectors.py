"""Reads for the pages. Each runs a fixed number of queries, however many jobs there are."""

from __future__ import annotations

from django.db.models import Count, QuerySet

from jobs.access import Need, jobs_visible_to, user_workspaces
from jobs.models import ApiToken, AuditEvent, Membership, TrackedJob, Workspace


def jobs_for_dashboard(*, user, workspace: Workspace | None = None) -> QuerySet[TrackedJob]:
    jobs = jobs_visible_to(user)
    if workspace is not None:
        jobs = jobs.filter(workspace=workspace)
    return jobs.order_by("-created_at", "-pk")


def tokens_usable_by(*, user) -> list[ApiToken]:
    """Tokens the user may track jobs with (members use their workspaces' tokens)."""
    workspaces = user_workspaces(user, Need.EDIT_JOBS)
    return list(
        ApiToken.objects.filter(workspace__in=workspaces).select_related("workspace").order_by("name", "pk")
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
