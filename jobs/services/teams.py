"""Teams: creating, renaming and deleting them; members, invitations by name and invite links."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from jobs.audit import audit_record
from jobs.models import Invite, MemberInvitation, Membership, NotificationChannel, Workspace


@transaction.atomic
def team_create(*, name: str, owner) -> Workspace:
    team = Workspace.objects.create(name=name.strip())
    Membership.objects.create(workspace=team, user=owner, role=Membership.Role.OWNER)
    audit_record(workspace=team, actor=owner, action="team.create", description=f"created the team “{team.name}”")
    return team


@transaction.atomic
def team_rename(*, team: Workspace, name: str, actor) -> Workspace:
    old, team.name = team.name, name.strip()
    team.save(update_fields=["name"])
    audit_record(
        workspace=team, actor=actor, action="team.rename", description=f"renamed the team “{old}” to “{team.name}”"
    )
    return team


def team_delete(*, team: Workspace) -> None:
    """Deletes the team with its tokens, tracked jobs, invites and audit trail."""
    if team.is_personal:
        raise ValidationError("A personal workspace cannot be deleted.")
    team.delete()


def _owner_count(team: Workspace) -> int:
    # Locks the owners' rows so two owners cannot both step down at once.
    return len(Membership.objects.select_for_update().filter(workspace=team, role=Membership.Role.OWNER))


@transaction.atomic
def member_invite(*, team: Workspace, username: str, role: str, actor) -> MemberInvitation:
    """Invite the account named `username`; it joins only if that person accepts.

    The invitation is recorded, and the owner answered, the same way whether or not the
    name exists: adding people must not be a way to find out who has an account. An
    invitation to a name nobody has reaches nobody, not even an account created under that
    name later (which could be someone else's).
    """
    if team.is_personal:
        raise ValidationError("Members can only be added to a team, not to a personal workspace.")
    username = username.strip()
    user = get_user_model().objects.filter(username=username, is_active=True).first()
    # Members are listed on the owner's own page, so saying so gives nothing away.
    if user is not None and Membership.objects.filter(workspace=team, user=user).exists():
        raise ValidationError(f"{username} is already a member of {team.name}.")
    invitation, _ = MemberInvitation.objects.update_or_create(
        workspace=team,
        username=username,
        defaults={"user": user, "role": role, "invited_by": actor, "created_at": timezone.now()},
    )
    audit_record(
        workspace=team,
        actor=actor,
        action="member.invite",
        description=f"invited {username} as {invitation.get_role_display()}",
    )
    return invitation


@transaction.atomic
def invitation_accept(*, invitation: MemberInvitation, user) -> Membership:
    """Join the team the invitation is for, with its role; the invitation is used up."""
    invitation = MemberInvitation.objects.select_for_update().select_related("workspace").get(pk=invitation.pk)
    team = invitation.workspace
    invitation.delete()
    membership, created = Membership.objects.get_or_create(
        workspace=team, user=user, defaults={"role": invitation.role}
    )
    if created:  # (else they joined through an invite link meanwhile: nothing more to do)
        audit_record(
            workspace=team,
            actor=user,
            action="member.join",
            description=f"{user.get_username()} accepted the invitation and joined as {membership.get_role_display()}",
        )
    return membership


@transaction.atomic
def invitation_decline(*, invitation: MemberInvitation, user) -> None:
    audit_record(
        workspace=invitation.workspace,
        actor=user,
        action="member.decline",
        description=f"{user.get_username()} declined the invitation",
    )
    invitation.delete()


@transaction.atomic
def invitation_revoke(*, invitation: MemberInvitation, actor) -> None:
    audit_record(
        workspace=invitation.workspace,
        actor=actor,
        action="member.uninvite",
        description=f"withdrew the invitation of {invitation.username}",
    )
    invitation.delete()


@transaction.atomic
def member_change_role(*, membership: Membership, role: str, actor) -> Membership:
    if membership.role == Membership.Role.OWNER and role != Membership.Role.OWNER:
        if _owner_count(membership.workspace) <= 1:
            raise ValidationError("A team needs at least one owner: make someone else an owner first.")
    old = membership.get_role_display()
    membership.role = role
    membership.save(update_fields=["role"])
    audit_record(
        workspace=membership.workspace,
        actor=actor,
        action="member.role",
        description=f"changed {membership.user.get_username()} from {old} to {membership.get_role_display()}",
    )
    return membership


@transaction.atomic
def member_remove(*, membership: Membership, actor) -> None:
    if membership.workspace.is_personal:
        raise ValidationError("Nobody can leave their personal workspace.")
    if membership.role == Membership.Role.OWNER and _owner_count(membership.workspace) <= 1:
        raise ValidationError(
            "The last owner cannot leave or be removed: make someone else an owner first, or delete the team."
        )
    name = membership.user.get_username()
    left = actor is not None and actor.pk == membership.user_id
    audit_record(
        workspace=membership.workspace,
        actor=actor,
        action="member.remove",
        description=f"{name} left the team" if left else f"removed {name}",
    )
    # Their own notification subscriptions go with them: no more news of this team's jobs.
    NotificationChannel.objects.filter(workspace=membership.workspace, user=membership.user).delete()
    membership.delete()


def _invite_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@transaction.atomic
def invite_create(*, team: Workspace, role: str, actor, days: int | None = None) -> tuple[Invite, str]:
    """A new invite and its secret, which appears in the link once and is never stored."""
    if team.is_personal:
        raise ValidationError("Invites are for teams, not personal workspaces.")
    secret = secrets.token_urlsafe(24)
    invite = Invite.objects.create(
        workspace=team,
        role=role,
        token_hash=_invite_hash(secret),
        created_by=actor,
        expires_at=timezone.now() + dt.timedelta(days=days or settings.FTDASH_INVITE_DAYS),
    )
    audit_record(
        workspace=team,
        actor=actor,
        action="invite.create",
        description=f"created an invite link for a new {invite.get_role_display()}",
    )
    return invite, secret


def invite_for_secret(secret: str) -> Invite | None:
    invite = Invite.objects.select_related("workspace").filter(token_hash=_invite_hash(secret)).first()
    return invite if invite and invite.is_usable else None


@transaction.atomic
def invite_revoke(*, invite: Invite, actor) -> None:
    audit_record(
        workspace=invite.workspace,
        actor=actor,
        action="invite.revoke",
        description=f"revoked an unused invite for a {invite.get_role_display()}",
    )
    invite.delete()


@transaction.atomic
def invite_accept(*, invite: Invite, user) -> Membership:
    """Use the invite (once: the row is locked and re-checked) to join its team."""
    invite = Invite.objects.select_for_update().select_related("workspace").get(pk=invite.pk)
    if not invite.is_usable:
        raise ValidationError("This invite link has expired or was already used. Ask for a new one.")
    membership, created = Membership.objects.get_or_create(
        workspace=invite.workspace, user=user, defaults={"role": invite.role}
    )
    if not created:
        raise ValidationError(f"You are already a member of {invite.workspace.name}.")
    invite.used_at, invite.used_by = timezone.now(), user
    invite.save(update_fields=["used_at", "used_by"])
    MemberInvitation.objects.filter(workspace=invite.workspace, user=user).delete()  # answered
    audit_record(
        workspace=invite.workspace,
        actor=user,
        action="member.join",
        description=f"{user.get_username()} joined as {membership.get_role_display()} through an invite link",
    )
    return membership
