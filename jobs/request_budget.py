"""One request budget per API token, shared by every process: `FTDASH_TOKEN_REQUESTS_PER_MINUTE`.

Token Factory documents 60 requests a minute per key for inference and nothing for fine-tuning,
while one token's calls otherwise grow with its jobs and with the pages open on them. Every call
made with a stored token spends from its budget first (`ApiToken.client()` hands `spend` to the
client, which calls it at the top of each request); a spent budget raises `BudgetSpent` and no
request is sent.

The budget is a token bucket kept in the database, the one store every gunicorn worker and every
`poll_jobs` process sees even while Redis is down. One row per token holds the calls left and
when it was last topped up; spending is one conditional UPDATE that tops up and takes one call
only if enough is left, so concurrent processes cannot both take the last call (PostgreSQL locks
the row and re-checks the condition; SQLite runs one write at a time). The bucket holds at most
`capacity` calls (a page's few refreshes at once) and refills at `(N + 1 - capacity) / 61` calls
a second: however calls are timed, no 60-second span holds more than
`capacity + 60 × rate < N + 1` of them. What is left over is spread evenly over the minute rather
than spent in its first seconds, so snapshots age evenly too.

When the budget is short, who goes first (each caller keeps back calls for those before it):

1. `LIST_READ`: the worker's read of a token's job list. One call refreshes up to 100 jobs,
   every job on every open page among them, so it is the cheapest way to keep pages fresh.
   It may take the last call.
2. `VIEWER`: calls made for a person, in a web request: a page load's or poll's refresh of the
   due jobs it shows (the least recently checked first, `jobs.live`), a job page's events,
   "Refresh now", tracking, cancelling, a key check. They leave one call for the list read.
3. `BACKGROUND`: the rest of the worker's calls (one GET per job where there is no list,
   checkpoints, files, models, watching, imports). They leave half the bucket to the first two.
   The worker claims a token's due jobs only as far as its budget goes, oldest snapshot first
   (`jobs.sync.refresh.claim_due_jobs`), so the rest simply wait, still due, without failing.

A job whose refresh waits for the budget keeps its snapshot and its schedule; its card says
"this token's request budget is in use" instead of showing an error, and nothing backs off.
A 429 still pauses the whole token (`jobs.sync.tokens.record_upstream_error`).
"""

from __future__ import annotations

import contextlib
import contextvars
import enum
import math
import time
from collections.abc import Iterable, Iterator

from django.conf import settings
from django.db import IntegrityError, connection, transaction

from jobs.tokenfactory import TokenFactoryError

TABLE = "jobs_token_request_budget"


class BudgetSpent(TokenFactoryError):
    """The token's request budget is spent for now: nothing was sent, and trying again in a
    moment will work. Not a failure of the job nor of the token."""

    def __init__(self) -> None:
        super().__init__("This token's request budget is in use; try again in a moment.")


class Tier(enum.Enum):
    LIST_READ = "list read"
    VIEWER = "viewer"
    BACKGROUND = "background"


_tier: contextvars.ContextVar[Tier | None] = contextvars.ContextVar("ftdash_budget_tier", default=None)
# What a call is when nothing says otherwise: VIEWER in the web processes, BACKGROUND in the
# worker (`run_as_worker`). Process-wide, so the worker's pool threads see it too.
_process_tier = Tier.VIEWER


def run_as_worker() -> None:
    """This process is a background worker: its calls come after those made for people."""
    global _process_tier
    _process_tier = Tier.BACKGROUND


@contextlib.contextmanager
def tier(value: Tier) -> Iterator[None]:
    """Calls made inside this block spend as `value`."""
    reset = _tier.set(value)
    try:
        yield
    finally:
        _tier.reset(reset)


def current_tier() -> Tier:
    return _tier.get() or _process_tier


def per_minute() -> int:
    return settings.FTDASH_TOKEN_REQUESTS_PER_MINUTE


def capacity() -> int:
    """Calls the bucket holds at most: a tenth of the minute's, at least 3 (never above N)."""
    n = per_minute()
    return min(n, max(3, n // 10))


def refill_per_second() -> float:
    return (per_minute() + 1 - capacity()) / 61


def kept_back(value: Tier) -> int:
    """Calls a caller of this tier leaves in the bucket for the tiers before it."""
    if value is Tier.LIST_READ:
        return 0
    if value is Tier.VIEWER:
        return min(1, capacity() - 1)
    return min(math.ceil(capacity() / 2), capacity() - 1)


def _functions() -> tuple[str, str]:
    return ("MIN", "MAX") if connection.vendor == "sqlite" else ("LEAST", "GREATEST")


def _left_sql() -> str:
    """The calls left now, topped up, as SQL; its parameters: the capacity, now, the refill rate."""
    least, greatest = _functions()
    return f"{least}(%s, calls_left + {greatest}(0, %s - refilled_at) * %s)"


def spend(token_id: int) -> None:
    """Take one call from the token's budget for the caller's tier, or raise BudgetSpent."""
    now, cap, rate = time.time(), capacity(), refill_per_second()
    need = 1 + kept_back(current_tier())
    _, greatest = _functions()
    left = _left_sql()
    sql = (
        f"UPDATE {TABLE} SET calls_left = {left} - 1, refilled_at = {greatest}(refilled_at, %s)"
        f" WHERE token_id = %s AND {left} >= %s"
    )
    params = [cap, now, rate, now, token_id, cap, now, rate, need]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        if cursor.rowcount:
            return
        # A token's first call makes its bucket (full), unless a concurrent first call just did.
        if _create_full(cursor, token_id, now=now, cap=cap):
            cursor.execute(sql, params)
            if cursor.rowcount:
                return
    raise BudgetSpent()


def _create_full(cursor, token_id: int, *, now: float, cap: int) -> bool:
    """A full bucket for the token unless it has one; False when the token is gone."""
    try:
        with transaction.atomic():
            cursor.execute(
                f"INSERT INTO {TABLE} (token_id, calls_left, refilled_at) VALUES (%s, %s, %s)"
                " ON CONFLICT (token_id) DO NOTHING",
                [token_id, cap, now],
            )
    except IntegrityError:
        return False  # the token was deleted meanwhile: nothing will be sent with it
    return True


def calls_left(token_ids: Iterable[int], value: Tier) -> dict[int, int]:
    """How many calls each of these tokens may make now in tier `value` (one query): what the
    worker claims jobs by. A token without a bucket yet has a full one."""
    token_ids = list(token_ids)
    if not token_ids:
        return {}
    cap, kept = capacity(), kept_back(value)
    left = dict.fromkeys(token_ids, cap - kept)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT token_id, {_left_sql()} FROM {TABLE} WHERE token_id IN ({', '.join(['%s'] * len(token_ids))})",
            [cap, time.time(), refill_per_second(), *token_ids],
        )
        for token_id, calls in cursor.fetchall():
            left[token_id] = max(0, math.floor(calls + 1e-9) - kept)
    return left
