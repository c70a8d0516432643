"""Custom models deployed from a job's checkpoints (`GET /v0/models`), kept in the cache.

One call lists every custom model a key's project has, so it is made per token, not per job,
and at a slow interval (`FTDASH_MODELS_REFRESH_SECONDS`, default 5 min), during a job's
refresh (beside the snapshot, under its single-flight lock, before the new version is saved
so live parts re-render with it). Pages read the cache only. An API without the endpoint
(404/405) is remembered per API base URL (`jobs.sync.not_offered`) and changes nothing on the
page.

The same answer lists base models too; where one carries
`fine_tune.training_price_per_million_tokens`, that price is kept per token beside the
deployments (`training_prices`), the last source `jobs.costs` asks.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache

from jobs.models import TrackedJob
from jobs.pricing import PriceError, parse_price
from jobs.sync.not_offered import Endpoint, api_key, is_not_offered, remember_not_offered
from jobs.sync.tokens import open_token
from jobs.tokenfactory import NotOffered, TokenFactoryError

logger = logging.getLogger(__name__)

KEPT_SECONDS = 7 * 24 * 3600


@dataclass(frozen=True)
class Deployment:
    name: str
    checkpoint: str
    status: str


def interval_seconds() -> int:
    return settings.FTDASH_MODELS_REFRESH_SECONDS


def _models_key(token_id: int) -> str:
    return api_key("models", token_id)


def _prices_key(token_id: int) -> str:
    return api_key("model-prices", token_id)


def _due_key(token_id: int) -> str:
    return api_key("models-asked", token_id)


def _text(value, limit: int = 200) -> str:
    return value[:limit] if isinstance(value, str) else ""


def by_job(entries: Iterable[dict]) -> dict[str, list[dict]]:
    """The list's entries that name a job, grouped by job ID (as plain data for the cache)."""
    grouped: dict[str, list[dict]] = {}
    for entry in entries:
        job_id = entry.get("job_id")
        if not isinstance(job_id, str) or not job_id:
            continue
        grouped.setdefault(job_id, []).append(
            {
                "name": _text(entry.get("name")) or _text(entry.get("id")) or "unnamed model",
                "checkpoint": _text(entry.get("checkpoint_id")),
                "status": _text(entry.get("status"), 40),
            }
        )
    return grouped


def prices_by_model(entries: Iterable[dict]) -> dict[str, str]:
    """{model name, case-folded: its training price per 1M tokens as text} for the entries that
    carry a usable one (jobs.pricing.parse_price's rules); the rest are ignored."""
    prices: dict[str, str] = {}
    for entry in entries:
        fine_tune = entry.get("fine_tune")
        name = entry.get("id")
        if not isinstance(fine_tune, dict) or not isinstance(name, str) or not name or len(name) > 300:
            continue
        raw = fine_tune.get("training_price_per_million_tokens")
        if isinstance(raw, float | int) or (isinstance(raw, str) and len(raw) < 40):
            try:
                prices[name.casefold()] = str(parse_price(raw))
            except PriceError:
                continue
    return prices


def training_prices(token_ids: Iterable[int]) -> dict[int, dict[str, str]]:
    """Token Factory's training prices as each token last read them, in one cache call."""
    token_ids = {token_id for token_id in token_ids if token_id}
    if not token_ids:
        return {}
    try:
        known = cache.get_many([_prices_key(token_id) for token_id in token_ids])
    except Exception:
        return {}
    found = {}
    for token_id in token_ids:
        prices = known.get(_prices_key(token_id))
        if isinstance(prices, dict):
            found[token_id] = prices
    return found


def refresh_models(job: TrackedJob, *, force: bool = False) -> None:
    """List the custom models of the job's token if their interval has passed (or `force`).
    Never raises."""
    if not job.token_id:
        return
    try:
        if is_not_offered(Endpoint.MODELS):
            return
        # cache.add is the single flight: one caller per token and interval asks.
        if not cache.add(_due_key(job.token_id), True, interval_seconds()):
            if not force:
                return
            cache.set(_due_key(job.token_id), True, interval_seconds())
        opened = open_token(job.token_id)
        token = opened.token
        if token is None:
            return
        if opened.client is None:
            logger.warning("could not list the custom models of job %s's token: %s", job.job_id, opened.problem)
            return
        try:
            entries = opened.client.list_models()
        except NotOffered as exc:
            remember_not_offered(Endpoint.MODELS, reason=exc.message)
            return
        except TokenFactoryError as exc:
            logger.info("custom models of token %s: %s", token.pk, exc.message)
            return  # keep what was known; the next interval asks again
        cache.set_many(
            {_models_key(token.pk): by_job(entries), _prices_key(token.pk): prices_by_model(entries)}, KEPT_SECONDS
        )
    except Exception:
        logger.warning("could not list the custom models of job %s's token", job.job_id, exc_info=True)


def attach(jobs: Iterable[TrackedJob]) -> None:
    """Read the deployments of all `jobs` in one cache call, for `deployments_of`."""
    jobs = list(jobs)
    keys = {_models_key(job.token_id) for job in jobs if job.token_id}
    try:
        known = cache.get_many(list(keys)) if keys else {}
    except Exception:
        known = {}
    for job in jobs:
        grouped = known.get(_models_key(job.token_id)) if job.token_id else None
        job._deployments = _rows(grouped, job.job_id)


def deployments_of(job: TrackedJob) -> list[Deployment]:
    """The custom models made from `job`, from the cache (attached, or read now)."""
    if hasattr(job, "_deployments"):
        return job._deployments
    if not job.token_id:
        return []
    try:
        grouped = cache.get(_models_key(job.token_id))
    except Exception:
        grouped = None
    job._deployments = _rows(grouped, job.job_id)
    return job._deployments


def _rows(grouped, job_id: str) -> list[Deployment]:
    if not isinstance(grouped, dict):
        return []
    return [Deployment(**row) for row in grouped.get(job_id, []) if isinstance(row, dict)]
