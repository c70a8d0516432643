"""A job's training, validation and result files: their names and sizes, from the cache only.

`GET /v1/files/{id}` is asked during a refresh (under the job's single-flight lock, beside the
snapshot), for file IDs the cache does not hold yet; pages read the cache and never the
network. An answer is kept for a day; a file that does not answer is remembered as "no
details" (an hour after a 404, five minutes after an error), so a page never waits and a
refresh never repeats a failing call each interval. A 405 (no files endpoint at all) is
remembered per API base URL for an hour. Where nothing is known, the page shows the file ID.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable

from django.conf import settings
from django.core.cache import cache

from jobs.finetuning import FineTuningJob
from jobs.models import ApiToken
from jobs.request_budget import BudgetSpent
from jobs.tokenfactory import FileInfo, NotOffered, TokenFactoryError

logger = logging.getLogger(__name__)

KNOWN_SECONDS = 24 * 3600
FAILED_SECONDS = 300
MISSING_SECONDS = 3600
NOT_OFFERED_SECONDS = 3600
#: At most this many files are asked about per refresh; the rest wait for the next one.
MAX_PER_REFRESH = 8
_FAILED = "failed"


def file_ids(details: FineTuningJob) -> list[str]:
    """The job's file IDs: training, validation, then result files; each once."""
    ids = [details.training_file, details.validation_file, *(details.result_files or [])]
    return list(dict.fromkeys(i for i in ids if isinstance(i, str) and i))


def api_base_url() -> str:
    """Where the API is: what an endpoint's absence is remembered for."""
    return settings.FTDASH_API_BASE_URL.rstrip("/")


def _key(base_url: str, file_id: str) -> str:
    digest = hashlib.blake2s(f"{base_url}|{file_id}".encode(), digest_size=10).hexdigest()
    return f"ftdash:file:{digest}"


def _not_offered_key(base_url: str) -> str:
    return "ftdash:files-not-offered:" + hashlib.blake2s(base_url.encode(), digest_size=10).hexdigest()


def files_known(ids: Iterable[str]) -> dict[str, FileInfo]:
    """What the cache knows about these files (render time: no network)."""
    base_url = api_base_url()
    ids = list(ids)
    if not ids:
        return {}
    try:
        cached = cache.get_many([_key(base_url, i) for i in ids])
    except Exception:
        return {}  # a cache outage costs the names, never the page
    known = {}
    for file_id in ids:
        value = cached.get(_key(base_url, file_id))
        if isinstance(value, dict):
            known[file_id] = FileInfo(id=file_id, filename=value.get("filename"), bytes=value.get("bytes"))
    return known


def remember_files(details: FineTuningJob, *, token_id: int | None) -> None:
    """Ask the API about the job's files the cache does not know yet. Never raises."""
    try:
        base_url = api_base_url()
        ids = file_ids(details)
        if not ids or cache.get(_not_offered_key(base_url)):
            return
        cached = cache.get_many([_key(base_url, i) for i in ids])
        missing = [i for i in ids if _key(base_url, i) not in cached][:MAX_PER_REFRESH]
        token = ApiToken.objects.filter(pk=token_id).first() if missing and token_id else None
        if token is None:
            return
        client = token.client()
        for file_id in missing:
            try:
                info = client.get_file(file_id)
            except NotOffered as exc:
                if exc.status == 405:  # the endpoint itself is missing, for every file
                    cache.set(_not_offered_key(base_url), True, NOT_OFFERED_SECONDS)
                    return
                # A 404 is this file's (deleted, another project's), or an API without the
                # endpoint: either way, asking again soon will not change it.
                cache.set(_key(base_url, file_id), _FAILED, MISSING_SECONDS)
                continue
            except BudgetSpent:
                return  # snapshots first; the next refresh asks again
            except TokenFactoryError as exc:
                logger.info("file %s of job %s: %s", file_id, details.id, exc.message)
                cache.set(_key(base_url, file_id), _FAILED, FAILED_SECONDS)
                return  # the key, a rate limit or the network: the next files would fail too
            cache.set(_key(base_url, file_id), {"filename": info.filename, "bytes": info.bytes}, KNOWN_SECONDS)
    except Exception:
        logger.warning("could not look up the files of job %s", details.id, exc_info=True)
