"""The data directory (FTDASH_DATA_DIR): created if need be and checked writable at start-up.

It holds the SQLite database, the generated keys, collected static files and backups, so a
directory ftdash cannot write to would only fail later, as a traceback from whichever of those
came first. Checked once, when the settings load (every manage.py command, runserver, each
gunicorn worker) and in gunicorn's master before it starts any worker (ftdash/gunicorn.conf.py),
it ends start-up with one sentence naming the path and the variable instead.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from ftdash.env import env_str

VARIABLE = "FTDASH_DATA_DIR"
DEFAULT = Path(__file__).resolve().parent.parent / "data"
# gunicorn's "worker failed to boot": a gunicorn started without ftdash/gunicorn.conf.py then
# stops, rather than restarting workers that fail alike forever. Anything else just exits.
EXIT_STATUS = 3


def prepare() -> Path:
    """The data directory, created (readable by the service account only) if missing; if it
    cannot be written, the process ends with one sentence on stderr."""
    path = Path(env_str(VARIABLE) or DEFAULT).resolve()
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Permission bits do not tell the whole story (root, read-only mounts): really write.
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        reason = "it is a file, not a directory" if isinstance(exc, FileExistsError) else exc.strerror.lower()
        print(
            f"ftdash cannot write to its data directory {path} ({VARIABLE}): {reason}; make it "
            f"writable for the user ftdash runs as, or set {VARIABLE} to a directory that is.",
            file=sys.stderr,
        )
        raise SystemExit(EXIT_STATUS) from None
    return path
