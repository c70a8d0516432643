"""API tokens a person may use to track jobs, or manage."""

from __future__ import annotations

from django.db.models import Count

from jobs.access import Need, user_workspaces
from jobs.models import ApiToken, Membership


def tokens_usable_by(*, user) -> list[ApiToken]:
    """Tokens the user may track jobs with (members use their workspaces' tokens), in one query."""
    return list(
        ApiToken.objects.filter(
            workspace__memberships__user=user, workspace__memberships__role__in=Membership.EDITING_ROLES
        )
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
