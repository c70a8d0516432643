"""The background worker as the pages see it: when it last checked in."""

from __future__ import annotations

import datetime as dt

from jobs.models import WorkerHeartbeat


def worker_last_seen() -> dt.datetime | None:
    """When a `poll_jobs` worker last checked in, or None if none ever did."""
    return WorkerHeartbeat.objects.order_by("-last_seen").values_list("last_seen", flat=True).first()
