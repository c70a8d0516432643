"""Writes: every change to users' workspaces, tokens and tracked jobs goes through here.

Changes to a workspace's tokens, jobs and members are written to its audit trail.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from jobs import files, history, notifications, vault
from jobs.access import user_memberships
from jobs.models import (
    ApiToken,
    AuditEvent,
    Invite,
    MemberInvitation,
    Membership,
    NotificationChannel,
    RemovedJob,
    TrackedJob,
    Workspace,
)
from jobs.finetuning import FineTuningJob
from jobs.refresh import fetch_job, record_token_check
from jobs.request_budget import BudgetSpent
from jobs.tokenfactory import (
    InvalidJobId,
    JobNotFound,
    RateLimited,
    TokenFactoryError,
    TokenRejected,
    clean_job_id,
)
from jobs.vault import VaultError


@transaction.atomic
def first_admin_create(*, username: str, password: str):
    """The very first account, an administrator; refused once any account exists."""
    User = get_user_model()
    if User.objects.exists():
        raise ValidationError("An administrator account already exists. Sign in instead.")
    user = User.objects.create_superuser(username=username, password=password)
    user_memberships(user)  # creates the personal workspace
    return user


def token_create(
    *, workspace: Workspace, user, name: str, secret: str, ai_project_id: str = "",
    watch: bool = False, watch_pattern: str = "",
) -> ApiToken:
    secret = secret.strip()
    try:
        with transaction.atomic():
            token = ApiToken(
                workspace=workspace,
                name=name.strip(),
                secret_encrypted=vault.encrypt(secret),
                last4=secret[-4:],
                created_by=user,
                ai_project_id=ai_project_id.strip(),
            )
            _set_watch(token, watch=watch, pattern=watch_pattern)
            token.save()
            audit_record(workspace=workspace, actor=user, action="token.add",
                         description=f"added token “{token.name}” ({token.masked})"
                         + (", watching for new jobs" if watch else ""))
            return token
    except IntegrityError:
        raise ValidationError(f"There is already a token named “{name}” here.") from None


def _set_watch(token: ApiToken, *, watch: bool, pattern: str) -> list[str]:
    """Switch the token's watch on or off; a watch switched on counts from now. The fields set."""
    token.watch_pattern = pattern.strip()
    fields = ["watch_pattern"]
    if watch and not token.watch_new_jobs:
        now = timezone.now()
        token.watch_new_jobs, token.watch_since, token.watch_next_at = True, now, now
        token.watch_failures, token.watch_stopped_message = 0, ""
        fields += ["watch_new_jobs", "watch_since", "watch_next_at", "watch_failures", "watch_stopped_message"]
    elif not watch and token.watch_new_jobs:
        token.watch_new_jobs, token.watch_since, token.watch_next_at = False, None, None
        fields += ["watch_new_jobs", "watch_since", "watch_next_at"]
    return fields


def token_update(
    *, token: ApiToken, actor, name: str, secret: str = "", workspace: Workspace | None = None,
    ai_project_id: str | None = None, watch: bool | None = None, watch_pattern: str = "",
) -> ApiToken:
    """Rename a token, replace its secret (a blank secret keeps the old) or move it; set its
    project and its watch (None leaves them as they are).

    A moved token takes the jobs tracked with it along, so a job always lives in the same
    workspace as the token that reads it.
    """
    old_name, old_workspace = token.name, token.workspace
    old_project, was_watching = token.ai_project_id, token.watch_new_jobs
    token.name = name.strip()
    fields = ["name"]
    if ai_project_id is not None:
        token.ai_project_id = ai_project_id.strip()
        fields.append("ai_project_id")
    if watch is not None:
        fields += _set_watch(token, watch=watch, pattern=watch_pattern)
    if workspace is not None and workspace.pk != token.workspace_id:
        token.workspace = workspace
        fields.append("workspace")
    secret = secret.strip()
    if secret:
        token.secret_encrypted = vault.encrypt(secret)
        token.last4 = secret[-4:]
        token.last_check_ok = None
        token.last_check_message = ""
        token.rate_limited_until = None
        fields += ["secret_encrypted", "last4", "last_check_ok", "last_check_message", "rate_limited_until"]
    try:
        with transaction.atomic():
            token.save(update_fields=fields)
            if "workspace" in fields:
                moved = TrackedJob.objects.filter(token=token)
                if TrackedJob.objects.filter(
                    workspace=token.workspace, job_id__in=moved.values("job_id")
                ).exists():
                    raise ValidationError(
                        f"{token.workspace.name} already tracks one of this token's jobs."
                    )
                count = moved.update(workspace=token.workspace)
                audit_record(workspace=old_workspace, actor=actor, action="token.move",
                             description=f"moved token “{token.name}” ({token.masked}) and its "
                             f"{count} job(s) to {token.workspace.name}")
                audit_record(workspace=token.workspace, actor=actor, action="token.move",
                             description=f"moved token “{token.name}” ({token.masked}) and its "
                             f"{count} job(s) here from {old_workspace.name}")
            if old_name != token.name:
                audit_record(workspace=token.workspace, actor=actor, action="token.rename",
                             description=f"renamed token “{old_name}” to “{token.name}”")
            if secret:
                audit_record(workspace=token.workspace, actor=actor, action="token.replace",
                             description=f"replaced the secret of token “{token.name}” ({token.masked})")
            if old_project != token.ai_project_id:
                audit_record(workspace=token.workspace, actor=actor, action="token.project",
                             description=f"set the project of token “{token.name}” to "
                             f"{token.ai_project_id or 'none'}")
            if was_watching != token.watch_new_jobs:
                audit_record(workspace=token.workspace, actor=actor, action="token.watch",
                             description=("started" if token.watch_new_jobs else "stopped")
                             + f" watching token “{token.name}” for new jobs")
    except IntegrityError:
        raise ValidationError(f"There is already a token named “{name}” there.") from None
    return token


@transaction.atomic
def token_delete(*, token: ApiToken, actor) -> None:
    audit_record(workspace=token.workspace, actor=actor, action="token.delete",
                 description=f"deleted token “{token.name}” ({token.masked})")
    token.delete()


def token_check(*, token: ApiToken) -> tuple[bool, str]:
    """Ask the API whether it accepts the token; remember and return the verdict."""
    try:
        token.client().check_key()
    except BudgetSpent as exc:
        return False, exc.message  # no verdict on the token: it was not asked
    except vault.VaultError as exc:
        ok, message = False, str(exc)
    except TokenFactoryError as exc:
        ok, message = False, exc.message
    else:
        ok, message = True, "Token Factory accepts this token."
    record_token_check(token, ok=ok, message=message)
    return ok, message


def job_track(*, workspace: Workspace, token: ApiToken, job_id: str, user, label: str = "") -> TrackedJob:
    """Fetch the job first, and store it only if that worked: nothing half-done is saved.

    Raises InvalidJobId/TokenFactoryError (with a message for the page) or ValidationError.
    """
    job_id = clean_job_id(job_id)
    existing = TrackedJob.objects.filter(workspace=workspace, job_id=job_id).first()
    if existing:
        raise ValidationError(f"{job_id} is already tracked in {workspace.name}.")
    if token.rate_limited_until and token.rate_limited_until > timezone.now():
        raise ValidationError(
            "Token Factory is rate-limiting this token; try again in a minute."
        )
    details = fetch_job(token=token, job_id=job_id)
    # A finished job is not refreshed again: its file names are asked about now (cached).
    files.remember_files(details, token_id=token.pk)
    now = timezone.now()
    try:
        with transaction.atomic():
            job = TrackedJob.objects.create(
                workspace=workspace,
                token=token,
                job_id=job_id,
                label=label.strip(),
                added_by=user,
                snapshot=details.raw,
                status=details.status,
                fetched_at=now,
                checked_at=now,
            )
            audit_record(workspace=workspace, actor=user, action="job.track",
                         description=f"started tracking {job_id}")
            history.record_tracking_started(job, now=now)
            RemovedJob.objects.filter(workspace=workspace, job_id=job_id).delete()  # wanted again
            return job
    except IntegrityError:  # tracked by someone else a moment ago
        raise ValidationError(f"{job_id} is already tracked in {workspace.name}.") from None


def job_track_many(
    *, workspace: Workspace, token: ApiToken, job_ids: list[str], user, label: str = ""
) -> list[tuple[str, str, str]]:
    """Track each of `job_ids` (in order, repeats once): (job ID, outcome, what happened) each.

    Outcomes: "tracked", "already", "not_found", "refused", "invalid", "not_tried". Once the
    API rejects or rate-limits the token, the IDs left are not tried: each would fail alike.
    """
    results: list[tuple[str, str, str]] = []
    stop: str = ""
    for raw in dict.fromkeys(job_ids):
        if stop:
            results.append((raw, "not_tried", stop))
            continue
        try:
            job = job_track(workspace=workspace, token=token, job_id=raw, user=user, label=label)
        except InvalidJobId:
            results.append((raw, "invalid", "not a fine-tuning job ID"))
        except JobNotFound as exc:
            results.append((raw, "not_found", exc.message))
        except (TokenRejected, RateLimited) as exc:
            results.append((raw, "refused", exc.message))
            stop = "not tried: " + exc.message
        except TokenFactoryError as exc:
            results.append((raw, "refused", exc.message))
        except VaultError as exc:
            results.append((raw, "refused", str(exc)))
            stop = "not tried: " + str(exc)
        except ValidationError as exc:
            message = " ".join(exc.messages)
            results.append((raw, "already" if "already tracked" in message else "refused", message))
        else:
            results.append((job.job_id, "tracked", f"now tracking it in {workspace.name}"))
    return results


def job_track_listed(
    *, workspace: Workspace, token: ApiToken, details: FineTuningJob, user, now: dt.datetime,
    found_by_watch: bool = False,
) -> TrackedJob | None:
    """Track a job whose whole snapshot is at hand (a job list's entry): no call to the API.

    Returns None when the workspace already tracks it. A job found by a watch records a
    "started" event (and queues its notifications) instead of "tracking started"; with the
    unique constraint on (workspace, job), two workers finding it at once track and notify once.
    """
    try:
        with transaction.atomic():
            job = TrackedJob.objects.create(
                workspace=workspace, token=token, job_id=details.id, added_by=user,
                snapshot=details.raw, status=details.status, fetched_at=now, checked_at=now,
            )
            if found_by_watch:
                notifications.queue_for_events([history.record_job_started(job, token_name=token.name, now=now)])
                audit_record(workspace=workspace, actor=None, action="job.discover",
                             description=f"started tracking {details.id}, found by watching "
                             f"token “{token.name}”")
            else:
                history.record_tracking_started(job, now=now)
                RemovedJob.objects.filter(workspace=workspace, job_id=details.id).delete()
            return job
    except IntegrityError:
        return None


def job_label(*, job: TrackedJob, label: str) -> TrackedJob:
    job.label = label.strip()
    job.save(update_fields=["label"])
    return job


@transaction.atomic
def job_remove(*, job: TrackedJob, actor) -> None:
    audit_record(workspace=job.workspace, actor=actor, action="job.remove",
                 description=f"stopped tracking {job.job_id}")
    # Remembered, so that a watched token does not bring it straight back.
    RemovedJob.objects.update_or_create(
        workspace=job.workspace, job_id=job.job_id, defaults={"removed_at": timezone.now()}
    )
    job.delete()


@transaction.atomic
def job_move(*, job: TrackedJob, token: ApiToken, actor) -> TrackedJob:
    """Move a job to another workspace, to be read there with one of that workspace's tokens."""
    source = job.workspace
    if TrackedJob.objects.filter(workspace=token.workspace, job_id=job.job_id).exclude(pk=job.pk).exists():
        raise ValidationError(f"{job.job_id} is already tracked in {token.workspace.name}.")
    job.workspace, job.token = token.workspace, token
    job.save(update_fields=["workspace", "token"])
    if source.pk != token.workspace_id:
        audit_record(workspace=source, actor=actor, action="job.move",
                     description=f"moved {job.job_id} out to {token.workspace.name}")
        audit_record(workspace=token.workspace, actor=actor, action="job.move",
                     description=f"moved {job.job_id} in from {source.name}")
    return job


# --- Teams ---------------------------------------------------------------------------------


def audit_record(*, workspace: Workspace, actor, action: str, description: str) -> AuditEvent:
    return AuditEvent.objects.create(
        workspace=workspace,
        actor=actor,
        actor_name=actor.get_username() if actor else "ftdash",
        action=action,
        description=description[:300],
    )


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
    audit_record(workspace=team, actor=actor, action="team.rename", description=f"renamed the team “{old}” to “{team.name}”")
    return team


def team_delete(*, team: Workspace) -> None:
    """Deletes the team with its tokens, tracked jobs, invites and audit trail."""
    if team.is_personal:
        raise ValidationError("A personal workspace cannot be deleted.")
    team.delete()


def _owner_count(team: Workspace) -> int:
    # Locks the owners' rows so two owners cannot both step down at once.
    return len(
        Membership.objects.select_for_update().filter(workspace=team, role=Membership.Role.OWNER)
    )


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
        workspace=team, username=username,
        defaults={"user": user, "role": role, "invited_by": actor, "created_at": timezone.now()},
    )
    audit_record(workspace=team, actor=actor, action="member.invite",
                 description=f"invited {username} as {invitation.get_role_display()}")
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
        audit_record(workspace=team, actor=user, action="member.join",
                     description=f"{user.get_username()} accepted the invitation and joined as "
                     f"{membership.get_role_display()}")
    return membership


@transaction.atomic
def invitation_decline(*, invitation: MemberInvitation, user) -> None:
    audit_record(workspace=invitation.workspace, actor=user, action="member.decline",
                 description=f"{user.get_username()} declined the invitation")
    invitation.delete()


@transaction.atomic
def invitation_revoke(*, invitation: MemberInvitation, actor) -> None:
    audit_record(workspace=invitation.workspace, actor=actor, action="member.uninvite",
                 description=f"withdrew the invitation of {invitation.username}")
    invitation.delete()


@transaction.atomic
def member_change_role(*, membership: Membership, role: str, actor) -> Membership:
    if membership.role == Membership.Role.OWNER and role != Membership.Role.OWNER:
        if _owner_count(membership.workspace) <= 1:
            raise ValidationError("A team needs at least one owner: make someone else an owner first.")
    old = membership.get_role_display()
    membership.role = role
    membership.save(update_fields=["role"])
    audit_record(workspace=membership.workspace, actor=actor, action="member.role",
                 description=f"changed {membership.user.get_username()} from {old} to {membership.get_role_display()}")
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
    audit_record(workspace=membership.workspace, actor=actor, action="member.remove",
                 description=f"{name} left the team" if left else f"removed {name}")
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
    audit_record(workspace=team, actor=actor, action="invite.create",
                 description=f"created an invite link for a new {invite.get_role_display()}")
    return invite, secret


def invite_for_secret(secret: str) -> Invite | None:
    invite = Invite.objects.select_related("workspace").filter(token_hash=_invite_hash(secret)).first()
    return invite if invite and invite.is_usable else None


@transaction.atomic
def invite_revoke(*, invite: Invite, actor) -> None:
    audit_record(workspace=invite.workspace, actor=actor, action="invite.revoke",
                 description=f"revoked an unused invite for a {invite.get_role_display()}")
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
    audit_record(workspace=invite.workspace, actor=user, action="member.join",
                 description=f"{user.get_username()} joined as {membership.get_role_display()} through an invite link")
    return membership


@transaction.atomic
def account_create(*, username: str, password: str, is_staff: bool = False):
    User = get_user_model()
    user = User.objects.create_user(username=username, password=password, is_staff=is_staff)
    user_memberships(user)
    return user


# --- Notifications -------------------------------------------------------------------------


@transaction.atomic
def channel_add(*, workspace: Workspace, actor, kind: str, target: str, events: list[str], personal: bool):
    channel = NotificationChannel.objects.create(
        workspace=workspace, kind=kind, target=target, events=events,
        user=actor if personal else None, created_by=actor,
    )
    whose = "their own " if personal else ""
    audit_record(workspace=workspace, actor=actor, action="channel.add",
                 description=f"added {whose}{channel.get_kind_display()} notifications to {channel.masked_target}")
    return channel


@transaction.atomic
def channel_delete(*, channel: NotificationChannel, actor) -> None:
    audit_record(workspace=channel.workspace, actor=actor, action="channel.delete",
                 description=f"removed {channel.get_kind_display()} notifications to {channel.masked_target}")
    channel.delete()


def stall_settings_update(*, workspace: Workspace, minutes: int, actor) -> None:
    workspace.queue_stall_minutes = minutes
    workspace.save(update_fields=["queue_stall_minutes"])
    audit_record(workspace=workspace, actor=actor, action="workspace.settings",
                 description=f"set the queue stall limit to {minutes} min")
