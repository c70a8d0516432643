"""Reads for the pages. Each runs a fixed number of queries, however many jobs there are."""

from __future__ import annotations

from django.db.models import Count, QuerySet

from jobs.access import Need, user_workspaces
from jobs.models import ApiToken, TrackedJob


def jobs_for_dashboard(*, user) -> QuerySet[TrackedJob]:
    return (
        TrackedJob.objects.filter(workspace__memberships__user=user)
        .select_related("workspace", "token")
        .order_by("-created_at", "-pk")
    )


def tokens_usable_by(*, user) -> list[ApiToken]:
    """Tokens the user may track jobs with (members use their workspaces' tokens)."""
    workspaces = user_workspaces(user, Need.EDIT_JOBS)
    return list(
        ApiToken.objects.filter(workspace__in=workspaces).select_related("workspace").order_by("name", "pk")
    )


def tokens_managed_by(*, user) -> list[ApiToken]:
    workspaces = user_workspaces(user, Need.MANAGE_TOKENS)
    return list(
        ApiToken.objects.filter(workspace__in=workspaces)
        .select_related("workspace")
        .annotate(job_count=Count("jobs"))
        .order_by("workspace__name", "name", "pk")
    )
