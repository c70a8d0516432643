"""Restore a backup made by `manage.py backup` into this ftdash's (empty) database."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, connection

from jobs.management.commands.backup import _libpq_url


class Command(BaseCommand):
    help = "Restore a backup into this ftdash's database. Stop the app first."

    def add_arguments(self, parser):
        parser.add_argument("backup", type=Path)
        parser.add_argument("--force", action="store_true", help="Overwrite a database that already holds accounts.")

    def handle(self, *args, backup: Path, force: bool, **options):
        if not backup.is_file():
            raise CommandError(f"No backup file at {backup}.")
        if not force and self._has_accounts():
            raise CommandError(
                "This database already holds accounts; restoring would replace them. "
                "Use --force if that is what you want."
            )
        connection.close()
        if connection.vendor == "sqlite":
            self._sqlite(backup)
        elif connection.vendor == "postgresql":
            self._postgres(backup)
        else:
            raise CommandError(f"Restoring into a {connection.vendor} database is not supported.")
        self.stdout.write(f"Restored {backup}. Run `manage.py migrate` if the backup is from an older ftdash.")

    @staticmethod
    def _has_accounts() -> bool:
        try:
            return get_user_model().objects.exists()
        except DatabaseError:
            return False  # no tables yet

    @staticmethod
    def _sqlite(backup: Path) -> None:
        source = sqlite3.connect(backup)
        target = sqlite3.connect(settings.DATABASES["default"]["NAME"], timeout=30)
        try:
            if source.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
                raise CommandError(f"{backup} is damaged (SQLite integrity check failed).")
            source.backup(target)
        except sqlite3.DatabaseError as exc:
            raise CommandError(f"{backup} is not an ftdash SQLite backup: {exc}") from None
        finally:
            target.close()
            source.close()

    @staticmethod
    def _postgres(backup: Path) -> None:
        db = settings.DATABASES["default"]
        try:
            subprocess.run(
                ["pg_restore", "--clean", "--if-exists", "--no-owner", f"--dbname={_libpq_url(db)}", str(backup)],
                check=True,
                capture_output=True,
                text=True,
            )
        except FileNotFoundError:
            raise CommandError("pg_restore is not installed (apt install postgresql-client).") from None
        except subprocess.CalledProcessError as exc:
            raise CommandError(f"pg_restore failed: {exc.stderr.strip()}") from None
