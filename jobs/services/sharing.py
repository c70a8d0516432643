"""Read-only share links and status badge keys: made, revoked and rotated by people, each
written to the job's workspace audit trail."""

from __future__ import annotations

import datetime as dt
import secrets

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from jobs.audit import audit_record
from jobs.models import ShareLink, TrackedJob, Workspace

# The expiries "Create read-only link" offers: days, or None for never.
SHARE_EXPIRY_DAYS = {"1": 1, "7": 7, "30": 30, "never": None}


@transaction.atomic
def share_link_create(*, job: TrackedJob, actor, days: int | None) -> tuple[ShareLink, str]:
    """A new link to `job`'s read-only page and its key, which is shown once and never stored
    (only its hash is): 256 random bits."""
    key = secrets.token_urlsafe(32)
    now = timezone.now()
    link = ShareLink.objects.create(
        job=job,
        key_hash=ShareLink.hash_key(key),
        created_by=actor,
        created_at=now,
        expires_at=now + dt.timedelta(days=days) if days else None,
    )
    until = f"until {link.expires_at:%Y-%m-%d %H:%M} UTC" if link.expires_at else "with no expiry"
    audit_record(
        workspace=job.workspace,
        actor=actor,
        action="share.create",
        description=f"created a read-only link to {job.display_name}, {until}",
    )
    return link, key


@transaction.atomic
def share_link_revoke(*, link: ShareLink, actor) -> None:
    """The link opens nothing from now on (kept, revoked, for the record)."""
    ShareLink.objects.filter(pk=link.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    maker = link.created_by.get_username() if link.created_by else "someone"
    audit_record(
        workspace=link.job.workspace,
        actor=actor,
        action="share.revoke",
        description=f"revoked a read-only link to {link.job.display_name} made by {maker}",
    )


@transaction.atomic
def job_badge_rotate(*, job: TrackedJob, actor) -> None:
    """A new badge key for the job: its old badge URLs stop answering."""
    TrackedJob.objects.filter(pk=job.pk).update(badge_rotation=F("badge_rotation") + 1)
    job.refresh_from_db(fields=["badge_rotation"])
    audit_record(
        workspace=job.workspace,
        actor=actor,
        action="badge.rotate",
        description=f"rotated the badge key of {job.display_name}",
    )


@transaction.atomic
def workspace_badge_rotate(*, workspace: Workspace, actor) -> None:
    """A new badge key for the workspace: its old badge URLs stop answering."""
    Workspace.objects.filter(pk=workspace.pk).update(badge_rotation=F("badge_rotation") + 1)
    workspace.refresh_from_db(fields=["badge_rotation"])
    audit_record(
        workspace=workspace, actor=actor, action="badge.rotate", description="rotated the workspace's badge key"
    )
