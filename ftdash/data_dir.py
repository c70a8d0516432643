"""The data directory (FTDASH_DATA_DIR): created if need be and checked writable at start-up.

It holds the SQLite database, the generated keys, collected static files and backups, so a
directory ftdash cannot write to would only fail later, as a traceback from whichever of those
came first. Checked once, when the settings load (every manage.py command, runserver, each
gunicorn worker) and in gunicorn's master before it starts any worker (ftdash/gunicorn.conf.py),
it ends start-up with one sentence naming the path and the variable instead.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from ftdash.env import env_str

VARIABLE = "FTDASH_DATA_DIR"
DEFAULT = Path(__file__).resolve().parent.parent / "data"


class DataDirUnusable(SystemExit):
    """Ends the process with its message on stderr, as SystemExit does: no traceback."""


def prepare() -> Path:
    """The data directory, created (readable by the service account only) if missing."""
    path = Path(env_str(VARIABLE) or DEFAULT).resolve()
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Permission bits do not tell the whole story (root, read-only mounts): really write.
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        reason = "it is a file, not a directory" if isinstance(exc, FileExistsError) else exc.strerror.lower()
        raise DataDirUnusable(
            f"ftdash cannot write to its data directory {path} ({VARIABLE}): {reason}; make it "
            f"writable for the user ftdash runs as, or set {VARIABLE} to a directory that is."
        ) from None
    return path
