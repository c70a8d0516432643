"""Which Token Factory endpoints are not offered here: a 404/405 remembered, so it is not asked again soon.

Not every Token Factory has every endpoint (cancel, files, custom models, a job's events and
checkpoints, the job list). Once one answers that it is missing, the answer is kept in the
shared cache, keyed by the API base URL (`FTDASH_API_BASE_URL`: pointing ftdash elsewhere
asks again), for the endpoint's lifetime in `NOT_OFFERED_SECONDS`. Answers that only tell what
one key may read (a job's events and checkpoints, a job list) are kept per token as well: the
caller passes `token_id`.

The cache is a help, never a dependency: while it cannot be reached, nothing counts as
missing (the endpoint is asked, and its answer remembered once the cache is back), and
remembering is skipped. The same base-URL hash keys everything else ftdash caches about the
API (`api_key`), so two dashboards sharing a cache never mix their answers.
"""

from __future__ import annotations

import enum
import hashlib
import logging
from collections.abc import Iterable

from django.conf import settings
from django.core.cache import cache

logger = logging.getLogger(__name__)


class Endpoint(enum.StrEnum):
    CANCEL = "cancel"
    FILES = "files"
    MODELS = "models"
    EVENTS = "events"
    CHECKPOINTS = "checkpoints"
    JOB_LIST = "job-list"


#: How long an endpoint's absence is believed, and why that long.
NOT_OFFERED_SECONDS: dict[Endpoint, int] = {
    # Only hides a button: asking again costs a person one failed click, never a background
    # call, and an API does not grow a cancel soon. A month.
    Endpoint.CANCEL: 30 * 24 * 3600,
    # Asked beside every refresh of a job with unnamed files (a 405 only: a 404 is one file's,
    # `jobs.sync.files`): an hour costs an API without it one call an hour, not one per refresh.
    Endpoint.FILES: 3600,
    # Asked per token every FTDASH_MODELS_REFRESH_SECONDS: an hour is a dozen calls spared, and
    # an API that gains the endpoint shows its deployments within the hour.
    Endpoint.MODELS: 3600,
    # Asked beside every refresh of a job someone watches, per token: one call an hour instead.
    Endpoint.EVENTS: 3600,
    Endpoint.CHECKPOINTS: 3600,
    # Missing or summary-only, per token: an hour of one GET per job, then the list is tried
    # again (a list that merely fails is left alone for less: `jobs.sync.list_refresh`).
    Endpoint.JOB_LIST: 3600,
}


def api_base_url() -> str:
    """Where the API is: what everything cached about it is kept for."""
    return settings.FTDASH_API_BASE_URL.rstrip("/")


def api_key(kind: str, *parts: object) -> str:
    """A cache key for `kind` of what the API said (about `parts`), for this API base URL only.
    Hashed: the parts may be whatever an answer held (a file ID), never a key the cache refuses."""
    text = "|".join([api_base_url(), *map(str, parts)])
    return f"ftdash:{kind}:" + hashlib.blake2s(text.encode(), digest_size=10).hexdigest()


def _key(endpoint: Endpoint, token_id: int | None) -> str:
    return api_key(f"{endpoint}-not-offered", *([] if token_id is None else [token_id]))


def is_not_offered(endpoint: Endpoint, *, token_id: int | None = None) -> bool:
    """Whether `endpoint` recently answered that it is missing here (for `token_id`'s key)."""
    try:
        return bool(cache.get(_key(endpoint, token_id)))
    except Exception:
        return False  # a cache outage: ask; the answer is remembered once the cache is back


def tokens_not_offered(endpoint: Endpoint, token_ids: Iterable[int]) -> set[int]:
    """Which of `token_ids` recently found `endpoint` missing, in one cache call."""
    keys = {_key(endpoint, pk): pk for pk in token_ids}
    if not keys:
        return set()
    try:
        return {keys[key] for key, value in cache.get_many(list(keys)).items() if value}
    except Exception:
        logger.warning("could not read which tokens lack the %s endpoint", endpoint, exc_info=True)
        return set()


def remember_not_offered(
    endpoint: Endpoint, *, token_id: int | None = None, reason: str = "", seconds: int | None = None
) -> None:
    """Remember that `endpoint` is missing here (for `token_id`'s key) for its lifetime, or for
    `seconds` where a caller leaves an endpoint alone for another reason (a job list that fails)."""
    seconds = NOT_OFFERED_SECONDS[endpoint] if seconds is None else seconds
    with_token = f" with token {token_id}" if token_id is not None else ""
    logger.info("not asking the %s endpoint%s for %d s: %s", endpoint, with_token, seconds, reason)
    try:
        cache.set(_key(endpoint, token_id), reason[:200] or True, seconds)
    except Exception:
        logger.warning("could not remember that the %s endpoint is not offered", endpoint, exc_info=True)
