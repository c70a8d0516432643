"""Prometheus metrics keys: a workspace's owners make and revoke read-only keys to its metrics.

A key is `secrets.token_urlsafe(32)` (256 random bits), shown once when made; only its sha256
hash is stored (jobs.selectors.prometheus finds a key by it and compares in constant time).
Both changes are written to the workspace's audit trail.
"""

from __future__ import annotations

import secrets

from django.db import transaction
from django.utils import timezone

from jobs.audit import audit_record
from jobs.models import MetricsKey, Workspace
from jobs.selectors.prometheus import key_hash


@transaction.atomic
def metrics_key_create(*, workspace: Workspace, actor) -> tuple[MetricsKey, str]:
    """A new key to `workspace`'s metrics and its secret, which is never stored."""
    secret = secrets.token_urlsafe(32)
    key = MetricsKey.objects.create(workspace=workspace, key_hash=key_hash(secret), last4=secret[-4:], created_by=actor)
    audit_record(
        workspace=workspace,
        actor=actor,
        action="metrics_key.create",
        description=f"created a Prometheus metrics key ({key.masked})",
    )
    return key, secret


@transaction.atomic
def metrics_key_revoke(*, key: MetricsKey, actor) -> None:
    if key.revoked_at is not None:
        return
    key.revoked_at = timezone.now()
    key.save(update_fields=["revoked_at"])
    audit_record(
        workspace=key.workspace,
        actor=actor,
        action="metrics_key.revoke",
        description=f"revoked the Prometheus metrics key {key.masked}",
    )
