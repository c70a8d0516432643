"""Watched tokens: the worker finds jobs as they start, so nobody has to paste their IDs.

A token set to "Watch for new jobs" has its job list read every FTDASH_DISCOVERY_SECONDS
(newest first, stopping at the first job older than the watch), and every job created since
the watch began is tracked in the token's workspace, with a "started" event on its timeline
and a "job started" notification for the channels that ask for it. Skipped: jobs whose
suffix and model both miss the token's pattern, jobs already tracked there, and jobs someone
removed from that workspace (`RemovedJob`) until someone tracks them again.

The pattern is one or more shell-style patterns (`fnmatch`: `*`, `?`, `[abc]`) separated by
commas, matched case-insensitively against the whole suffix and the whole model name.

Watching spends the same per-token budget as refreshes: nothing is asked while the token is
paused by a 429 (and a 429 here pauses it for everything), failures back off like a job's
refreshes, and a token the API rejects (or an API without a job list) stops being watched,
with the reason kept for the tokens page. Each token is claimed by one worker at a time; the
unique constraint on (workspace, job) makes a job tracked, and notified, once regardless.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import logging

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from jobs.finetuning import FineTuningJob
from jobs.models import ApiToken, RemovedJob, TrackedJob
from jobs.request_budget import BudgetSpent
from jobs.sync import listed_jobs
from jobs.sync.backoff import backed_off
from jobs.sync.leases import Lease
from jobs.sync.tokens import open_token, record_upstream_error
from jobs.tokenfactory import ListUnsupported, RateLimited, TokenFactoryClient, TokenFactoryError, TokenRejected

logger = logging.getLogger(__name__)

#: A worker's claim on a watched token's next look.
WATCH_LEASE = Lease(ApiToken, "watch_claimed_until")

#: Pages read per look at most: a thousand jobs started within one interval is plenty.
MAX_PAGES = 10


def patterns(text: str) -> list[str]:
    return [part.strip().lower() for part in (text or "").split(",") if part.strip()]


def pattern_matches(pattern: str, details: FineTuningJob) -> bool:
    """Whether the job's suffix or model matches one of the token's patterns (none: all do)."""
    wanted = patterns(pattern)
    if not wanted:
        return True
    names = [(details.suffix or "").lower(), (details.model or "").lower()]
    return any(fnmatch.fnmatchcase(name, p) for p in wanted for name in names if name)


def _interval() -> dt.timedelta:
    return dt.timedelta(seconds=settings.FTDASH_DISCOVERY_SECONDS)


def claim_due_watches(*, lease_seconds: int, limit: int = 50) -> list[ApiToken]:
    """Claim the watched tokens whose next look is due (and that are not rate-limited)."""
    now = timezone.now()
    due = (
        ApiToken.objects.filter(watch_new_jobs=True)
        .filter(Q(watch_next_at__isnull=True) | Q(watch_next_at__lte=now))
        .exclude(rate_limited_until__gt=now)
        .select_related("workspace")
        .order_by("watch_next_at", "pk")
    )
    return WATCH_LEASE.claim(due, seconds=lease_seconds, now=now, limit=limit, still=Q(watch_new_jobs=True))


def discover(token: ApiToken) -> int:
    """Look at a claimed token's newest jobs and track the new ones; how many were tracked."""
    now = timezone.now()
    opened = open_token(token)
    if opened.client is None:
        _stop(token, _stopped_message(now, opened.problem))
        return 0
    try:
        tracked = _discover(token, opened.client)
    except RateLimited as exc:
        record_upstream_error(token, exc)
        _finish(token, next_at=token.rate_limited_until, failures=token.watch_failures)
        return 0
    except BudgetSpent:
        _finish(token, next_at=now, failures=token.watch_failures)  # not a failure: next round
        return 0
    except (TokenRejected, ListUnsupported) as exc:
        record_upstream_error(token, exc)
        _stop(token, _stopped_message(now, exc.message))
        return 0
    except TokenFactoryError as exc:
        failures = token.watch_failures + 1
        logger.info("watching token %s failed (%d in a row): %s", token.pk, failures, exc.message)
        _finish(token, next_at=now + backed_off(_interval(), failures), failures=failures)
        return 0
    _finish(token, next_at=now + _interval(), failures=0)
    if tracked:
        logger.info("watching token %s: tracking %d new job(s)", token.pk, tracked)
    return tracked


def _stopped_message(now: dt.datetime, why: str) -> str:
    return f"Stopped watching for new jobs {timezone.localtime(now):%Y-%m-%d %H:%M}: {why}"


def _discover(token: ApiToken, client: TokenFactoryClient) -> int:
    # The API gives whole seconds: a job created in the second the watch began counts.
    since = (token.watch_since or timezone.now()).replace(microsecond=0)
    tracked, after = 0, None
    for _ in range(MAX_PAGES):
        asked_at = timezone.now()
        page = client.list_jobs(after=after)
        new = [d for d in page.jobs if d.created_at is not None and d.created_at >= since]
        tracked += _track_new(token, [d for d in new if pattern_matches(token.watch_pattern, d)], now=asked_at)
        reached_older = any(d.created_at is not None and d.created_at < since for d in page.jobs)
        if reached_older or not page.has_more or page.last_id is None:
            break
        after = page.last_id
    return tracked


def _track_new(token: ApiToken, found: list[FineTuningJob], *, now: dt.datetime) -> int:
    if not found:
        return 0
    ids = [details.id for details in found]
    skip = set(
        TrackedJob.objects.filter(workspace_id=token.workspace_id, job_id__in=ids).values_list("job_id", flat=True)
    ) | set(RemovedJob.objects.filter(workspace_id=token.workspace_id, job_id__in=ids).values_list("job_id", flat=True))
    tracked = 0
    for details in found:
        if details.id in skip:
            continue
        job = listed_jobs.job_track_listed(
            workspace=token.workspace, token=token, details=details, user=None, now=now, found_by_watch=True
        )
        tracked += job is not None
    return tracked


def _finish(token: ApiToken, *, next_at: dt.datetime | None, failures: int) -> None:
    WATCH_LEASE.release([token], watch_next_at=next_at, watch_failures=failures)


def _stop(token: ApiToken, message: str) -> None:
    logger.info("stopped watching token %s: %s", token.pk, message)
    ApiToken.objects.filter(pk=token.pk).update(
        watch_new_jobs=False,
        watch_since=None,
        watch_next_at=None,
        watch_claimed_until=None,
        watch_stopped_message=message[:300],
    )
