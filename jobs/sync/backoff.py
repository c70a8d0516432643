"""Backoff: how long to wait after failures in a row, for everything the worker retries on a schedule.

A tracked job's refresh (`jobs.sync.refresh`) and a watched token's look (`jobs.sync.discovery`)
both wait their base interval, doubled per failure in a row, never beyond the cap
(FTDASH_MAX_BACKOFF_SECONDS) nor below the base interval itself: a broken job, a failing
token or an outage is asked less and less often, yet at least once per cap.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings

#: Doublings at most: beyond this the cap has long been reached (and the product would overflow).
MAX_DOUBLINGS = 16


def backed_off(interval: dt.timedelta, failures: int, *, cap: dt.timedelta | None = None) -> dt.timedelta:
    """`interval` doubled `failures` times, at most `cap` (FTDASH_MAX_BACKOFF_SECONDS unless
    given) and at least `interval`."""
    if not failures:
        # `interval` itself (max(interval, min(interval, cap)) is interval), without the cap's
        # setting or any arithmetic: every poll asks this of each job it shows (jobs.live, via
        # jobs.sync.refresh.is_due), and nearly every job has no failure.
        return interval
    if cap is None:
        cap = dt.timedelta(seconds=settings.FTDASH_MAX_BACKOFF_SECONDS)
    return max(interval, min(interval * 2 ** min(failures, MAX_DOUBLINGS), cap))
