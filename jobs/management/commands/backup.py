"""A consistent backup of ftdash's database, safe to take while the app runs.

The backup is written beside its final name and renamed into place once complete and synced:
a disk that fills, or anything else that stops it half-way, leaves no half-written backup that
could later be mistaken for a good one.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.utils import timezone

DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}


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
        output = (output or settings.DATA_DIR / "backups" / f"ftdash-{stamp}.{suffix}").absolute()
        try:
            output.parent.mkdir(parents=True, exist_ok=True)
            with _complete_or_absent(output) as partial:
                if vendor == "sqlite":
                    self._sqlite(partial)
                else:
                    self._postgres(partial)
        except (OSError, sqlite3.Error) as exc:
            raise CommandError(f"No backup was written to {output}: {_reason(exc)}.") from None
        except subprocess.CalledProcessError as exc:
            raise CommandError(f"No backup was written to {output}: pg_dump failed: {exc.stderr.strip()}") from None
        self.stdout.write(f"Backup written to {output}")

    @staticmethod
    def _sqlite(output: Path) -> None:
        # SQLite's online backup API copies a consistent snapshot even while gunicorn writes.
        source = sqlite3.connect(settings.DATABASES["default"]["NAME"], timeout=30)
        target = sqlite3.connect(output)
        try:
            # No rollback journal beside the file: if the copy fails, the file itself goes.
            target.execute("PRAGMA journal_mode=OFF")
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
                check=True,
                capture_output=True,
                text=True,
            )
        except FileNotFoundError:
            raise CommandError("pg_dump is not installed (apt install postgresql-client).") from None


@contextlib.contextmanager
def _complete_or_absent(output: Path) -> Iterator[Path]:
    """A temporary path in `output`'s directory to write the backup to; once the block ends
    it is synced to disk and renamed to `output`, and if the block raises it is removed."""
    fd, name = tempfile.mkstemp(dir=output.parent, prefix=f".{output.name}.", suffix=".partial")  # mode 0600
    os.close(fd)
    partial = Path(name)
    try:
        yield partial
        with partial.open("rb") as written:
            os.fsync(written.fileno())
        os.replace(partial, output)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    # The rename itself lasts only once the directory entry is on disk too.
    directory = os.open(output.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _reason(exc: OSError | sqlite3.Error) -> str:
    if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or getattr(exc, "errno", None) in DISK_FULL_ERRNOS:
        return "the disk is full"
    return exc.strerror.lower() if isinstance(exc, OSError) and exc.strerror else str(exc)


def _libpq_url(db: dict) -> str:
    user = db.get("USER") or ""
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgresql://{auth}{db.get('HOST') or ''}{port}/{db['NAME']}"
