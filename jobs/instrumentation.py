"""What this process counts for the operators' `/metrics/instance`: upstream calls, their
latency, refresh errors and worker rounds (prometheus_client counters and histograms).

In multiprocess mode (PROMETHEUS_MULTIPROC_DIR, set by ftdash/metrics_dir.py before this is
imported) every process writes these to a file of its own and the scrape adds the files up;
`REGISTRY` is this process's own registry, read directly when the mode is off. Free of Django
and of every other ftdash module, so the Token Factory client (the lowest layer) can import it.
"""

from __future__ import annotations

import os
import re

from prometheus_client import CollectorRegistry, Counter, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

UPSTREAM_CALLS = Counter(
    "ftdash_upstream_calls",
    "Calls to Token Factory, by endpoint and outcome (an HTTP status, or how the call failed).",
    ["endpoint", "status"],
    registry=REGISTRY,
)
UPSTREAM_LATENCY = Histogram(
    "ftdash_upstream_call_duration_seconds",
    "Time from sending a call to Token Factory to reading its whole answer (each attempt).",
    ["endpoint"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
    registry=REGISTRY,
)
REFRESH_ERRORS = Counter(
    "ftdash_refresh_errors",
    "Job refreshes that failed (recorded as the job's refresh error).",
    registry=REGISTRY,
)
WORKER_ROUNDS = Histogram(
    "ftdash_worker_round_duration_seconds",
    "How long one round of the background worker (manage.py poll_jobs) took.",
    buckets=(0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0),
    registry=REGISTRY,
)

# Job, file and checkpoint IDs are not endpoints: each becomes {id}, so the label stays a handful.
_ID_AFTER = re.compile(r"/(jobs|files)/[^/]+")


def endpoint_of(method: str, path: str) -> str:
    """`GET /v1/fine_tuning/jobs/{id}/events` for a call to any job's events."""
    return f"{method} {_ID_AFTER.sub(lambda match: f'/{match.group(1)}/{{id}}', path.split('?', 1)[0])}"


def upstream_call(method: str, path: str, outcome: object, seconds: float) -> None:
    endpoint = endpoint_of(method, path)
    UPSTREAM_CALLS.labels(endpoint=endpoint, status=str(outcome)).inc()
    UPSTREAM_LATENCY.labels(endpoint=endpoint).observe(max(0.0, seconds))


def multiprocess_dir() -> str | None:
    """The directory of every process's metrics files, when multiprocess mode is on."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None
