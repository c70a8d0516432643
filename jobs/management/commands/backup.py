"""A consistent backup of ftdash's database, safe to take while the app runs."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.utils import timezone


class Command(BaseCommand):
    help = (
        "Back up the database (SQLite: online backup; PostgreSQL: pg_dump). The encryption keys "
        "are deliberately not included: keep FTDASH_ENCRYPTION_KEYS safe separately."
    )

    def add_arguments(self, parser):
        parser.add_argument("--output", type=Path, help="Where to write the backup file.")

    def handle(self, *args, output: Path | None, **options):
        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        vendor = connection.vendor
        suffix = {"sqlite": "sqlite3", "postgresql": "pgdump"}.get(vendor)
        if suffix is None:
            raise CommandError(f"Backups of a {vendor} database are not supported.")
        output = output or settings.DATA_DIR / "backups" / f"ftdash-{stamp}.{suffix}"
        output.parent.mkdir(parents=True, exist_ok=True)
        if vendor == "sqlite":
            self._sqlite(output)
        else:
            self._postgres(output)
        output.chmod(0o600)
        self.stdout.write(f"Backup written to {output}")

    @staticmethod
    def _sqlite(output: Path) -> None:
        # SQLite's online backup API copies a consistent snapshot even while gunicorn writes.
        source = sqlite3.connect(settings.DATABASES["default"]["NAME"], timeout=30)
        target = sqlite3.connect(output)
        try:
            source.backup(target)
        finally:
            target.close()
            source.close()

    @staticmethod
    def _postgres(output: Path) -> None:
        db = settings.DATABASES["default"]
        try:
            subprocess.run(
                ["pg_dump", "--format=custom", "--no-owner", f"--file={output}", _libpq_url(db)],
                check=True, capture_output=True, text=True,
            )
        except FileNotFoundError:
            raise CommandError("pg_dump is not installed (apt install postgresql-client).") from None
        except subprocess.CalledProcessError as exc:
            raise CommandError(f"pg_dump failed: {exc.stderr.strip()}") from None


def _libpq_url(db: dict) -> str:
    user = db.get("USER") or ""
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgresql://{auth}{db.get('HOST') or ''}{port}/{db['NAME']}"
