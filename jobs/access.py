"""Who may see and do what: every view reaches workspace data through these helpers.

Outsiders get a 404 (they must not learn that a job or token exists); members whose role
does not allow an action get a 403.
"""

from __future__ import annotations

from enum import Enum

from django.core.exceptions import PermissionDenied
from django.db.models import F, QuerySet
from django.http import Http404

from jobs.models import (
    ApiToken,
    Invite,
    MemberInvitation,
    Membership,
    NotificationChannel,
    ShareLink,
    TrackedJob,
    TrainingPrice,
    Workspace,
)


class Need(Enum):
    VIEW = "view"  # every role
    EDIT_JOBS = "edit_jobs"  # owners and members: track, label, move and remove jobs
    MANAGE = "manage"  # owners: tokens, members, invites, the audit trail


def _allows(membership: Membership, need: Need) -> bool:
    if need is Need.EDIT_JOBS:
        return membership.can_edit_jobs
    if need is Need.MANAGE:
        return membership.is_owner
    return True


def user_memberships(user) -> list[Membership]:
    """The user's memberships (with workspaces): their personal workspace first (the default
    everywhere; made with the account, see jobs.services.accounts), then teams by name."""
    # Explicit about NULLs: SQLite and PostgreSQL sort them at opposite ends.
    return list(
        Membership.objects.filter(user=user)
        .select_related("workspace")
        .order_by(F("workspace__personal_for").asc(nulls_last=True), "workspace__name", "workspace__pk")
    )


def user_workspaces(user, need: Need = Need.VIEW) -> list[Workspace]:
    return [m.workspace for m in user_memberships(user) if _allows(m, need)]


def membership_for(user, workspace_id: int, need: Need = Need.VIEW) -> Membership:
    membership = Membership.objects.filter(user=user, workspace_id=workspace_id).select_related("workspace").first()
    if membership is None:
        raise Http404("No such workspace.")
    if not _allows(membership, need):
        raise PermissionDenied("Your role in this workspace does not allow that.")
    return membership


def jobs_visible_to(user) -> QuerySet[TrackedJob]:
    """Jobs in the user's workspaces, each annotated with the user's role there (`my_role`)."""
    return (
        TrackedJob.objects.filter(workspace__memberships__user=user)
        .annotate(my_role=F("workspace__memberships__role"))
        .select_related("workspace", "token", "added_by")
    )


def job_for_user(user, pk: int, need: Need = Need.VIEW) -> TrackedJob:
    job = jobs_visible_to(user).filter(pk=pk).first()
    if job is None:
        raise Http404("No such job.")
    if not _allows(Membership(role=job.my_role), need):
        raise PermissionDenied("Your role in this workspace does not allow that.")
    return job


def share_link_for_user(user, job_pk: int, pk: int) -> ShareLink:
    """A usable read-only link of a job whose links the user may manage (owners and members)."""
    job = job_for_user(user, job_pk, Need.EDIT_JOBS)
    link = ShareLink.objects.usable().filter(pk=pk, job=job).select_related("created_by").first()
    if link is None:
        raise Http404("No such link.")
    link.job = job
    return link


def personal_membership(user) -> Membership:
    """The user's owner membership of their personal workspace (made with the account)."""
    membership = Membership.objects.filter(user=user, workspace__personal_for=user).select_related("workspace").first()
    if membership is None:
        raise Http404("No personal workspace.")
    return membership


def training_price_for_owner(user, workspace_id: int, pk: int) -> TrainingPrice:
    """A row of the price table of a workspace the user owns (to remove it)."""
    workspace = membership_for(user, workspace_id, Need.MANAGE).workspace
    price = TrainingPrice.objects.filter(pk=pk, workspace_id=workspace_id).first()
    if price is None:
        raise Http404("No such price.")
    price.workspace = workspace
    return price


def token_for_user(user, pk: int, need: Need = Need.MANAGE) -> ApiToken:
    token = ApiToken.objects.select_related("workspace").filter(pk=pk, workspace__memberships__user=user).first()
    if token is None:
        raise Http404("No such token.")
    membership_for(user, token.workspace_id, need)
    return token


def invite_for_user(user, workspace_id: int, pk: int) -> Invite:
    membership_for(user, workspace_id, Need.MANAGE)
    invite = Invite.objects.filter(pk=pk, workspace_id=workspace_id).first()
    if invite is None:
        raise Http404("No such invite.")
    return invite


def invitation_for_owner(user, workspace_id: int, pk: int) -> MemberInvitation:
    """A pending invitation of a team the user owns (to withdraw it)."""
    membership_for(user, workspace_id, Need.MANAGE)
    invitation = MemberInvitation.objects.filter(pk=pk, workspace_id=workspace_id).first()
    if invitation is None:
        raise Http404("No such invitation.")
    return invitation


def invitation_for_invitee(user, pk: int) -> MemberInvitation:
    """An invitation addressed to the user; to anyone else (the team's owners too) it is a 404."""
    invitation = MemberInvitation.objects.select_related("workspace").filter(pk=pk, user=user).first()
    if invitation is None:
        raise Http404("No such invitation.")
    return invitation


def member_of_team(user, workspace_id: int, pk: int, need: Need = Need.MANAGE) -> Membership:
    """Another member's membership, for a user whose own role allows `need` in that team."""
    membership_for(user, workspace_id, need)
    membership = Membership.objects.select_related("user", "workspace").filter(pk=pk, workspace_id=workspace_id).first()
    if membership is None:
        raise Http404("No such member.")
    return membership


def channel_for_user(user, pk: int) -> NotificationChannel:
    """A channel the user may test or delete: a team-wide one they own, or their own subscription."""
    channel = (
        NotificationChannel.objects.select_related("workspace").filter(pk=pk, workspace__memberships__user=user).first()
    )
    if channel is None:
        raise Http404("No such channel.")
    if channel.user_id != user.pk:
        membership_for(user, channel.workspace_id, Need.MANAGE)
    return channel
