"""Teams, their members, invite links and invitations, their audit trail, and the invitations
waiting for a person."""

from __future__ import annotations

from django.db.models import Count

from jobs.models import AuditEvent, Invite, MemberInvitation, Membership, Workspace


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
    return list(user.team_invitations.select_related("workspace", "invited_by").order_by("-created_at", "-pk"))


def usable_invites(*, team: Workspace) -> list[Invite]:
    """The team's invite links that can still be used (neither used, revoked nor expired)."""
    return [invite for invite in team.invites.all() if invite.is_usable]


def pending_invitations(*, team: Workspace) -> list[MemberInvitation]:
    """Invitations the team sent that wait for an answer."""
    return list(team.member_invitations.all())


def team_contents(*, team: Workspace) -> tuple[int, int]:
    """How many tokens and tracked jobs the team holds (what deleting it would delete)."""
    return team.tokens.count(), team.jobs.count()
