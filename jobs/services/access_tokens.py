"""Access tokens to ftdash's JSON API (jobs.views.api): made, revoked, and marked used.

A token's secret is `AccessToken.PREFIX` + `secrets.token_urlsafe(32)` (256 random bits), shown
once when it is made; only its SHA-256 is stored. Making and revoking one is written to the
owner's personal workspace's audit trail; the secret never is, nor is it logged anywhere.
"""

from __future__ import annotations

import datetime as dt
import secrets

from django.db import transaction
from django.utils import timezone

from jobs.access import personal_membership
from jobs.audit import audit_record
from jobs.models import AccessToken

#: `last_used_at` is written at most this often per token, so a script's polls are not a write each.
LAST_USED_PRECISION = dt.timedelta(minutes=1)


@transaction.atomic
def access_token_create(*, user, name: str, scope: str, expires_in_days: int | None) -> tuple[AccessToken, str]:
    """Make a token for `user`; returns it and its secret (which nothing can show again)."""
    secret = AccessToken.PREFIX + secrets.token_urlsafe(32)
    now = timezone.now()
    token = AccessToken.objects.create(
        user=user,
        name=name.strip(),
        scope=AccessToken.Scope(scope),
        secret_hash=AccessToken.hash_secret(secret),
        created_at=now,
        expires_at=now + dt.timedelta(days=expires_in_days) if expires_in_days else None,
    )
    expiry = f"expires {token.expires_at:%Y-%m-%d}" if token.expires_at else "never expires"
    audit_record(
        workspace=personal_membership(user).workspace,
        actor=user,
        action="access_token.create",
        description=f"created the access token “{token.name}” ({token.get_scope_display().lower()}, {expiry})",
    )
    return token, secret


@transaction.atomic
def access_token_revoke(*, token: AccessToken, actor) -> AccessToken:
    """Revoke `token` from now on (a token already revoked stays as it was)."""
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        audit_record(
            workspace=personal_membership(token.user).workspace,
            actor=actor,
            action="access_token.revoke",
            description=f"revoked the access token “{token.name}”",
        )
    return token


def access_token_used(token: AccessToken, *, now: dt.datetime | None = None) -> None:
    """Note that `token` was just used (at most one write a minute per token)."""
    now = now or timezone.now()
    if token.last_used_at is not None and now - token.last_used_at < LAST_USED_PRECISION:
        return
    AccessToken.objects.filter(pk=token.pk).update(last_used_at=now)
    token.last_used_at = now
