"""Writes: every change to users' workspaces, tokens and tracked jobs goes through here."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from jobs import vault
from jobs.access import user_memberships
from jobs.models import ApiToken, TrackedJob, Workspace
from jobs.refresh import fetch_job, record_token_check
from jobs.tokenfactory import TokenFactoryClient, TokenFactoryError, clean_job_id


@transaction.atomic
def first_admin_create(*, username: str, password: str):
    """The very first account, an administrator; refused once any account exists."""
    User = get_user_model()
    if User.objects.exists():
        raise ValidationError("An administrator account already exists. Sign in instead.")
    user = User.objects.create_superuser(username=username, password=password)
    user_memberships(user)  # creates the personal workspace
    return user


def token_create(*, workspace: Workspace, user, name: str, secret: str) -> ApiToken:
    secret = secret.strip()
    try:
        with transaction.atomic():
            return ApiToken.objects.create(
                workspace=workspace,
                name=name.strip(),
                secret_encrypted=vault.encrypt(secret),
                last4=secret[-4:],
                created_by=user,
            )
    except IntegrityError:
        raise ValidationError(f"There is already a token named “{name}” here.") from None


def token_update(*, token: ApiToken, name: str, secret: str = "") -> ApiToken:
    """Rename a token and, when a new secret is given, replace it; a blank secret keeps the old."""
    token.name = name.strip()
    fields = ["name"]
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
    except IntegrityError:
        raise ValidationError(f"There is already a token named “{name}” here.") from None
    return token


def token_delete(*, token: ApiToken) -> None:
    token.delete()


def token_check(*, token: ApiToken) -> tuple[bool, str]:
    """Ask the API whether it accepts the token; remember and return the verdict."""
    try:
        TokenFactoryClient(vault.decrypt(token.secret_encrypted)).check_key()
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
    now = timezone.now()
    try:
        with transaction.atomic():
            return TrackedJob.objects.create(
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
    except IntegrityError:  # tracked by someone else a moment ago
        raise ValidationError(f"{job_id} is already tracked in {workspace.name}.") from None


def job_label(*, job: TrackedJob, label: str) -> TrackedJob:
    job.label = label.strip()
    job.save(update_fields=["label"])
    return job


def job_remove(*, job: TrackedJob) -> None:
    job.delete()
