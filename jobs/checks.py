"""Start-up checks: a vault key that cannot read the stored tokens should fail loudly."""

from __future__ import annotations

from django.core.checks import Error, Tags, register
from django.db import DatabaseError


@register(Tags.database)
def stored_tokens_are_readable(app_configs, **kwargs):
    """Run by `manage.py check --database default` (and docs/deploy.md's upgrade steps)."""
    from jobs import vault
    from jobs.models import ApiToken

    try:
        tokens = list(ApiToken.objects.only("pk", "name", "secret_encrypted"))
    except DatabaseError:
        return []  # not migrated yet
    unreadable = []
    for token in tokens:
        try:
            vault.decrypt(token.secret_encrypted)
        except vault.VaultError:
            unreadable.append(token.name)
    if not unreadable:
        return []
    return [
        Error(
            f"{len(unreadable)} stored API token(s) cannot be decrypted with FTDASH_ENCRYPTION_KEYS "
            f"({', '.join(unreadable[:5])}).",
            hint="The encryption key changed. Put the previous key back (after the new one), "
            "or save those tokens again.",
            id="ftdash.E001",
        )
    ]
