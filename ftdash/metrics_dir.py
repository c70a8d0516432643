"""Where each process keeps its operator metrics for `/metrics/instance` (prometheus_client's
multiprocess mode): PROMETHEUS_MULTIPROC_DIR, by default `prometheus/` in the data directory.

ftdash runs as several processes (gunicorn's workers, `manage.py poll_jobs`), each counting its
own upstream calls, refresh errors and worker rounds. prometheus_client's multiprocess mode has
each process write its counters and histograms to a small memory-mapped file of its own in this
directory, and the scrape (whichever worker answers it) adds up every file. What is a state
rather than a count (the oldest snapshot, deliveries waiting, the cache degraded) is read from
the database and the cache at scrape time instead, so no process has to keep it.

prometheus_client picks its mode when it is first imported: `prepare()` must run before that,
which is why the settings call it (before any app is loaded) and gunicorn's master calls it
before it forks a worker. The files of processes that have ended are removed when a process
starts (the directory would otherwise grow by a file per `manage.py` run); a counter summed over
processes can then go down, which Prometheus reads as a counter reset (rate() and increase()
handle it).
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from pathlib import Path

VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
_FILE = re.compile(r"^[a-z_]+_(\d+)\.db$")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def prepare(data_dir: Path) -> Path:
    """Set PROMETHEUS_MULTIPROC_DIR (unless the environment sets it) to `data_dir`/prometheus,
    create it, and remove the files of processes that have ended. Returns the directory."""
    path = Path(os.environ.get(VARIABLE) or data_dir / "prometheus")
    os.environ[VARIABLE] = str(path)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    for entry in path.iterdir():
        match = _FILE.match(entry.name)
        if match and not _alive(int(match.group(1))):
            with contextlib.suppress(FileNotFoundError):  # another process removed it first
                entry.unlink()
    if "prometheus_client.values" in sys.modules:
        values = sys.modules["prometheus_client.values"]
        if not getattr(values.ValueClass, "_multiprocess", False):
            print(
                f"ftdash: prometheus_client was imported before {VARIABLE} was set; this process's "
                "operator metrics will not appear in /metrics/instance.",
                file=sys.stderr,
            )
    return path
