"""API tokens: adding one to the vault, renaming, replacing, moving, watching, checking, deleting."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from jobs import vault
from jobs.audit import audit_record
from jobs.models import ApiToken, TrackedJob, Workspace
from jobs.request_budget import BudgetSpent
from jobs.sync.tokens import open_token, record_token_check
from jobs.tokenfactory import TokenFactoryError


def token_create(
    *,
    workspace: Workspace,
    user,
    name: str,
    secret: str,
    ai_project_id: str = "",
    watch: bool = False,
    watch_pattern: str = "",
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
            audit_record(
                workspace=workspace,
                actor=user,
                action="token.add",
                description=f"added token “{token.name}” ({token.masked})"
                + (", watching for new jobs" if watch else ""),
            )
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
    *,
    token: ApiToken,
    actor,
    name: str,
    secret: str = "",
    workspace: Workspace | None = None,
    ai_project_id: str | None = None,
    watch: bool | None = None,
    watch_pattern: str = "",
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
                if TrackedJob.objects.filter(workspace=token.workspace, job_id__in=moved.values("job_id")).exists():
                    raise ValidationError(f"{token.workspace.name} already tracks one of this token's jobs.")
                count = moved.update(workspace=token.workspace)
                audit_record(
                    workspace=old_workspace,
                    actor=actor,
                    action="token.move",
                    description=f"moved token “{token.name}” ({token.masked}) and its "
                    f"{count} job(s) to {token.workspace.name}",
                )
                audit_record(
                    workspace=token.workspace,
                    actor=actor,
                    action="token.move",
                    description=f"moved token “{token.name}” ({token.masked}) and its "
                    f"{count} job(s) here from {old_workspace.name}",
                )
            if old_name != token.name:
                audit_record(
                    workspace=token.workspace,
                    actor=actor,
                    action="token.rename",
                    description=f"renamed token “{old_name}” to “{token.name}”",
                )
            if secret:
                audit_record(
                    workspace=token.workspace,
                    actor=actor,
                    action="token.replace",
                    description=f"replaced the secret of token “{token.name}” ({token.masked})",
                )
            if old_project != token.ai_project_id:
                audit_record(
                    workspace=token.workspace,
                    actor=actor,
                    action="token.project",
                    description=f"set the project of token “{token.name}” to {token.ai_project_id or 'none'}",
                )
            if was_watching != token.watch_new_jobs:
                audit_record(
                    workspace=token.workspace,
                    actor=actor,
                    action="token.watch",
                    description=("started" if token.watch_new_jobs else "stopped")
                    + f" watching token “{token.name}” for new jobs",
                )
    except IntegrityError:
        raise ValidationError(f"There is already a token named “{name}” there.") from None
    return token


@transaction.atomic
def token_delete(*, token: ApiToken, actor) -> None:
    audit_record(
        workspace=token.workspace,
        actor=actor,
        action="token.delete",
        description=f"deleted token “{token.name}” ({token.masked})",
    )
    token.delete()


def token_check(*, token: ApiToken) -> tuple[bool, str]:
    """Ask the API whether it accepts the token; remember and return the verdict."""
    opened = open_token(token)
    if opened.client is None:
        ok, message = False, opened.problem
    else:
        try:
            opened.client.check_key()
        except BudgetSpent as exc:
            return False, exc.message  # no verdict on the token: it was not asked
        except TokenFactoryError as exc:
            ok, message = False, exc.message
        else:
            ok, message = True, "Token Factory accepts this token."
    record_token_check(token, ok=ok, message=message)
    return ok, message
