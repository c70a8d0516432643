"""Re-encrypt every stored API token under the newest key in FTDASH_ENCRYPTION_KEYS."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from jobs import vault
from jobs.models import ApiToken


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored API token with the first (newest) key of FTDASH_ENCRYPTION_KEYS. "
        "Rotation: put the new key first, keep the old one after it, run this, then drop the old key."
    )

    @transaction.atomic
    def handle(self, *args, **options):
        tokens = list(ApiToken.objects.select_for_update().select_related("workspace"))
        failed = []
        for token in tokens:
            try:
                token.secret_encrypted = vault.reencrypt(token.secret_encrypted)
            except vault.VaultError:
                failed.append(f"“{token.name}” in {token.workspace.name}")
        if failed:
            # All or nothing: a half-rotated vault would make dropping the old key unsafe.
            raise CommandError(
                f"{len(failed)} token(s) cannot be decrypted with any configured key: "
                + ", ".join(failed)
                + ". Nothing was changed. Add the key they were saved with to FTDASH_ENCRYPTION_KEYS."
            )
        ApiToken.objects.bulk_update(tokens, ["secret_encrypted"])
        self.stdout.write(f"Re-encrypted {len(tokens)} token(s) with the newest key.")
