"""A job's training log kept locally: the events and checkpoints Token Factory reports.

Fetched beside the snapshot refresh (`jobs.sync.refresh` calls `sync_after_snapshot` right after it
stored a snapshot, under the same single-flight lock and with the same token), so however many
people watch a job, its events and checkpoints are asked for at most once per refresh interval
(checkpoints more rarely still), and never by a view. Stored rows outlive the provider's
retention; what is fetched is only what is new:

- Events: Token Factory lists them oldest first, OpenAI newest first, both paged with
  `after` (an id) and `limit`. Each sync reads from the top: newest first, the new events come
  first and reading stops at the first one already stored; oldest first, the top page holds the
  oldest events, so reading jumps on from the last stored one (`after`) to the end. Which order
  an API uses shows in the timestamps and is remembered per job in the cache, so a steady sync
  costs one call either way. Rows are unique per upstream id, so reading one twice is harmless.
- Checkpoints: read the same way, while the job runs only when its steps cross an epoch (a
  checkpoint is written per epoch) or every `CHECKPOINT_SECONDS`, and always once at the end.
  A job the worker stores from the job list (`jobs.sync.list_refresh`) gets its checkpoints at each
  epoch's end (`sync_checkpoints_after_epoch`), its events only while a page shows it.

After a job ends both are fetched once more, then never again (`final_sync_pending`). A failed
sync is logged and retried at the next one; it never costs the snapshot stored before it.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from jobs import notifications
from jobs.finetuning import FineTuningJob, parse_timestamp
from jobs.metrics import METRIC_KEYS
from jobs.models import TrackedJob, TrainingCheckpoint, TrainingEvent
from jobs.request_budget import BudgetSpent
from jobs.sync import health
from jobs.sync.not_offered import Endpoint, is_not_offered, remember_not_offered
from jobs.tokenfactory import LIST_PAGE_LIMIT, ListPage, NotOffered, TokenFactoryClient, TokenFactoryError

logger = logging.getLogger(__name__)

#: Pages read per sync at most (of LIST_PAGE_LIMIT each): a job with a huge backlog catches up
#: over several syncs instead of holding the refresh lock for long.
MAX_PAGES = 20
MAX_MESSAGE_CHARS = 10_000
#: While a job runs, its checkpoints are asked for at most this often unless an epoch ended.
CHECKPOINT_SECONDS = 60
#: A failed final sync of a finished job is tried again no sooner than this.
FINAL_RETRY_SECONDS = 60
#: How long a job the worker refreshed from the list counts as behind on its log, at most.
BEHIND_SECONDS = 3600
LEVEL_ALIASES = {"warn": "warning", "err": "error", "fatal": "error", "critical": "error"}


def sync_after_snapshot(job: TrackedJob, client: TokenFactoryClient, *, before: FineTuningJob) -> None:
    """Bring the job's events and checkpoints up to date after a snapshot was stored.

    Called under the job's refresh lock only. Never raises: the snapshot is already stored.
    """
    final = job.is_terminal
    if final and not final_sync_pending(job):
        return
    try:
        cache.delete(_behind_key(job.pk))  # read with the snapshot: no page needs to read it
    except Exception:
        pass
    if not _sync_part(job, client, "events", _sync_events):
        return
    checkpoints_wanted = final or _checkpoints_due(job, before=before)
    if checkpoints_wanted and not _sync_part(job, client, "checkpoints", _sync_checkpoints):
        return
    if final:
        # Both read after the end: stamp it, so this was the last time (and the page re-renders).
        now = timezone.now()
        job.events_synced_at = job.checkpoints_synced_at = now
        TrackedJob.objects.filter(pk=job.pk).update(events_synced_at=now, checkpoints_synced_at=now)


def sync_checkpoints_after_epoch(job: TrackedJob, client: TokenFactoryClient, *, before: FineTuningJob) -> None:
    """Read a running job's checkpoints if an epoch ended since `before`: for a job the worker
    stored from the job list, which carries no training log. Its dashboard card's loss
    sparkline then follows the run though nobody opens its page, for one call per epoch (a
    checkpoint is written per epoch). Never raises: the snapshot is already stored."""
    if job.is_terminal or not _epoch_ended(job, before=before):
        return
    _sync_part(job, client, "checkpoints", _sync_checkpoints)


def _sync_part(
    job: TrackedJob, client: TokenFactoryClient, what: str, sync: Callable[[TrackedJob, TokenFactoryClient], None]
) -> bool:
    """Read the job's new `what` (events or checkpoints), unless its API lacks them; whether
    the sync may go on to the next part (not after an error: the next sync tries again)."""
    # Per token: a 404 on one job's log says what this key can read, not what the API offers.
    endpoint = Endpoint(what)
    if is_not_offered(endpoint, token_id=job.token_id):
        return True
    try:
        sync(job, client)
    except NotOffered as exc:
        remember_not_offered(endpoint, token_id=job.token_id, reason=exc.message)
    except BudgetSpent:
        return False  # the token's budget went to snapshots first; the next sync reads them
    except TokenFactoryError as exc:
        logger.info("could not fetch the %s of job %s: %s", what, job.job_id, exc.message)
        return False
    except Exception:
        logger.exception("fetching the %s of job %s failed unexpectedly", what, job.job_id)
        return False
    return True


def final_sync_pending(job: TrackedJob) -> bool:
    """Whether a finished job still needs its one read of events and checkpoints after the end."""
    if not job.is_terminal:
        return False
    ended = job.progress_changed_at or job.fetched_at
    synced = [job.events_synced_at, job.checkpoints_synced_at]
    return any(at is None or at < ended for at in synced)


def note_read_without_log(jobs: list[TrackedJob]) -> None:
    """The worker stored these running jobs from the job list, which carries no training log:
    a page showing one of them reads its log itself (`wanted_by_viewer`), so nobody pays two
    calls per job and interval for logs nobody looks at."""
    if not jobs:
        return
    try:
        cache.set_many({_behind_key(job.pk): 1 for job in jobs}, timeout=BEHIND_SECONDS)
    except Exception:
        pass


def wanted_by_viewer(job: TrackedJob, *, interval: dt.timedelta | None) -> bool:
    """Whether a page showing `job` should read its training log now: the pending read after
    the end (tried once a minute), or, while it runs and the worker refreshes it from the job
    list, once per refresh interval however many pages show it."""
    if final_sync_pending(job):
        return claim_final_retry(job)
    if job.is_terminal or interval is None:
        return False
    try:
        return bool(cache.get(_behind_key(job.pk))) and bool(
            cache.add(f"ftdash:training-log:viewed:{job.pk}", 1, timeout=int(interval.total_seconds()))
        )
    except Exception:
        return False


def _behind_key(pk: int) -> str:
    return f"ftdash:training-log:behind:{pk}"


def claim_final_retry(job: TrackedJob) -> bool:
    """Whether a page may try a finished job's pending final sync now (once per interval)."""
    try:
        return bool(cache.add(f"ftdash:training-log:final:{job.pk}", 1, timeout=FINAL_RETRY_SECONDS))
    except Exception:
        return False  # without the cache, leave it to "Refresh now" rather than every view


def _checkpoints_due(job: TrackedJob, *, before: FineTuningJob) -> bool:
    """A new checkpoint is likely (an epoch ended since the last snapshot), or it has been a
    while since checkpoints were last asked for."""
    if _epoch_ended(job, before=before):
        return True
    try:
        return bool(cache.add(f"ftdash:training-log:checkpoints:{job.pk}", 1, timeout=CHECKPOINT_SECONDS))
    except Exception:
        return True  # this already runs at most once per snapshot interval


def _epoch_ended(job: TrackedJob, *, before: FineTuningJob) -> bool:
    after = job.details
    steps_per_epoch = _steps_per_epoch(after)
    if not steps_per_epoch or after.trained_steps is None:
        return False
    return (before.trained_steps or 0) // steps_per_epoch < after.trained_steps // steps_per_epoch


def _steps_per_epoch(details: FineTuningJob) -> int | None:
    hyperparameters = details.raw.get("hyperparameters") if isinstance(details.raw, dict) else None
    epochs = hyperparameters.get("n_epochs") if isinstance(hyperparameters, dict) else None
    total = details.total_steps
    if isinstance(epochs, int) and epochs > 0 and isinstance(total, int) and total >= epochs:
        return total // epochs
    return None


# --------------------------------------------------------------------------- reading pages


def _order_key(job: TrackedJob, what: str) -> str:
    return f"ftdash:training-log:{what}-oldest-first:{job.pk}"


def read_new(
    fetch: Callable[[str | None], ListPage],
    *,
    known: set[str],
    last_known: str | None,
    newest_known_at: float | None,
    oldest_first: bool | None,
) -> tuple[list[dict[str, Any]], bool | None]:
    """The entries not in `known`, in the order read, and whether the API lists oldest first
    (None: not told by what was read).

    `last_known` is the stored entry read last from an oldest-first list (where to go on from);
    `oldest_first` is what an earlier read found out, if anything.
    """
    new: dict[str, dict[str, Any]] = {}
    pages = 0

    def take(page: ListPage) -> None:
        for item in page.items:
            if item["id"] not in known:
                new.setdefault(item["id"], item)

    def read_on(after: str | None) -> ListPage | None:
        """Page from `after` to the end (or MAX_PAGES); the last page read."""
        nonlocal pages
        page = None
        while pages < MAX_PAGES:
            page = fetch(after)
            pages += 1
            take(page)
            if not page.has_more:
                break
            after = page.items[-1]["id"]
        return page

    if oldest_first and last_known:
        read_on(last_known)
        return list(new.values()), True
    top = fetch(None)
    pages += 1
    take(top)
    order = _order_of(top.items)
    if not top.has_more:
        return list(new.values()), order
    seen = [item["id"] in known for item in top.items]
    if not any(seen):
        # Nothing stored yet (read it all, either order), or a newest-first list with more new
        # entries than a page: read on until the first stored one.
        page = top
        while page.has_more and pages < MAX_PAGES:
            page = fetch(page.items[-1]["id"])
            pages += 1
            take(page)
            if any(item["id"] in known for item in page.items):
                break
        return list(new.values()), order if order is not None else _order_of(list(new.values()))
    if not all(seen) or order is False:
        return list(new.values()), False  # newest first: the new ones were on top
    top_newest = max((_epoch(item.get("created_at")) or 0) for item in top.items)
    if order is None and newest_known_at is not None and top_newest >= newest_known_at:
        return list(new.values()), None  # the newest stored entry is on top: nothing new
    # The oldest entries, all stored: jump on from the last one read.
    if last_known:
        read_on(last_known)
    return list(new.values()), True


def _order_of(items: list[dict[str, Any]]) -> bool | None:
    """True when the times run oldest first, False newest first, None when they do not say."""
    times = [t for t in (_epoch(item.get("created_at")) for item in items) if t is not None]
    if len(times) < 2 or times[0] == times[-1]:
        return None
    return times[0] < times[-1]


def _epoch(value: Any) -> float | None:
    """An entry's time as seconds since the epoch, for ordering: read by the one rule for times."""
    moment = parse_timestamp(value)
    return moment.timestamp() if moment else None


def _remembered_order(job: TrackedJob, what: str) -> bool | None:
    try:
        return cache.get(_order_key(job, what))
    except Exception:
        return None


def _remember_order(job: TrackedJob, what: str, oldest_first: bool | None) -> None:
    if oldest_first is None:
        return
    try:
        cache.set(_order_key(job, what), oldest_first, timeout=None)
    except Exception:
        pass  # the next sync finds it out again from the timestamps


def _read_for(job: TrackedJob, model, what: str, fetch) -> list[dict[str, Any]]:
    stored = list(model.objects.filter(job=job).order_by("created_at", "pk").values_list("upstream_id", "created_at"))
    known = {upstream_id for upstream_id, _ in stored}
    last_known = stored[-1][0] if stored else None
    newest = max((at for _, at in stored if at is not None), default=None)
    oldest_first = _remembered_order(job, what)
    new, order = read_new(
        fetch,
        known=known,
        last_known=last_known,
        newest_known_at=newest.timestamp() if newest else None,
        oldest_first=oldest_first,
    )
    if order is not None and order != oldest_first:
        _remember_order(job, what, order)
    if order is False or (order is None and oldest_first is False):
        new.reverse()
    # Stored oldest first, so primary keys follow time where timestamps tie.
    return sorted(new, key=lambda item: _epoch(item.get("created_at")) or 0.0)


# --------------------------------------------------------------------------- storing


def _sync_events(job: TrackedJob, client: TokenFactoryClient) -> None:
    new = _read_for(
        job, TrainingEvent, "events", lambda after: client.list_events(job.job_id, after=after, limit=LIST_PAGE_LIMIT)
    )
    rows = [
        TrainingEvent(
            job=job,
            upstream_id=item["id"][:200],
            created_at=parse_timestamp(item.get("created_at")),
            level=event_level(item.get("level")),
            message=_text(item.get("message"))[:MAX_MESSAGE_CHARS],
        )
        for item in new
    ]
    _store(job, TrainingEvent, rows, field="events_synced_at")


def _sync_checkpoints(job: TrackedJob, client: TokenFactoryClient) -> None:
    new = _read_for(
        job,
        TrainingCheckpoint,
        "checkpoints",
        lambda after: client.list_checkpoints(job.job_id, after=after, limit=LIST_PAGE_LIMIT),
    )
    rows = []
    for item in new:
        metrics = item.get("metrics") if isinstance(item.get("metrics"), dict) else {}
        step = item.get("step_number", metrics.get("step"))
        name = item.get("fine_tuned_model_checkpoint")
        rows.append(
            TrainingCheckpoint(
                job=job,
                upstream_id=item["id"][:200],
                created_at=parse_timestamp(item.get("created_at")),
                step=step if isinstance(step, int) and not isinstance(step, bool) and abs(step) < 2**31 else None,
                metrics={key: metrics[key] for key in METRIC_KEYS if key in metrics},
                fine_tuned_model_checkpoint=name[:500] if isinstance(name, str) else "",
            )
        )
    if _store(job, TrainingCheckpoint, rows, field="checkpoints_synced_at"):
        with transaction.atomic():
            notifications.queue_for_events(health.after_checkpoints(job, now=job.checkpoints_synced_at))


def _store(job: TrackedJob, model, rows: list, *, field: str) -> bool:
    """Store new rows and stamp `field`; whether there were any."""
    if not rows:
        return False
    now = timezone.now()
    with transaction.atomic():
        model.objects.bulk_create(rows, ignore_conflicts=True)
        TrackedJob.objects.filter(pk=job.pk).update(**{field: now})
    setattr(job, field, now)
    return True


def event_level(value: Any) -> str:
    """info, warning or error; other levels kept as sent (lower case), for the badge to show."""
    level = value.strip().lower()[:20] if isinstance(value, str) else ""
    return LEVEL_ALIASES.get(level, level) or "info"


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)
