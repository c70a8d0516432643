"""A job's training, validation and result files: their names and sizes, from the cache only.

`GET /v1/files/{id}` is asked during a refresh (under the job's single-flight lock, beside the
snapshot), for file IDs the cache does not hold yet; pages read the cache and never the
network. An answer is kept for a day; a file that does not answer is remembered as "no
details" (an hour after a 404, five minutes after an error), so a page never waits and a
refresh never repeats a failing call each interval. A 405 (no files endpoint at all) is
remembered per API base URL (`jobs.sync.not_offered`). Where nothing is known, the page shows
the file ID.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.core.cache import cache

from jobs.finetuning import FineTuningJob
from jobs.request_budget import BudgetSpent
from jobs.sync.not_offered import Endpoint, api_key, is_not_offered, remember_not_offered
from jobs.sync.tokens import open_token
from jobs.tokenfactory import FileInfo, NotOffered, TokenFactoryError

logger = logging.getLogger(__name__)

KNOWN_SECONDS = 24 * 3600
FAILED_SECONDS = 300
MISSING_SECONDS = 3600
#: At most this many files are asked about per refresh; the rest wait for the next one.
MAX_PER_REFRESH = 8
_FAILED = "failed"


def file_ids(details: FineTuningJob) -> list[str]:
    """The job's file IDs: training, validation, then result files; each once."""
    ids = [details.training_file, details.validation_file, *(details.result_files or [])]
    return list(dict.fromkeys(i for i in ids if isinstance(i, str) and i))


def _key(file_id: str) -> str:
    return api_key("file", file_id)


def files_known(ids: Iterable[str]) -> dict[str, FileInfo]:
    """What the cache knows about these files (render time: no network)."""
    ids = list(ids)
    if not ids:
        return {}
    try:
        cached = cache.get_many([_key(i) for i in ids])
    except Exception:
        return {}  # a cache outage costs the names, never the page
    known = {}
    for file_id in ids:
        value = cached.get(_key(file_id))
        if isinstance(value, dict):
            known[file_id] = FileInfo(id=file_id, filename=value.get("filename"), bytes=value.get("bytes"))
    return known


def remember_files(details: FineTuningJob, *, token_id: int | None) -> None:
    """Ask the API about the job's files the cache does not know yet. Never raises."""
    try:
        ids = file_ids(details)
        if not ids or is_not_offered(Endpoint.FILES):
            return
        cached = cache.get_many([_key(i) for i in ids])
        missing = [i for i in ids if _key(i) not in cached][:MAX_PER_REFRESH]
        if not missing or not token_id:
            return
        opened = open_token(token_id)
        if opened.client is None:
            if opened.token is not None:
                logger.warning("could not look up the files of job %s: %s", details.id, opened.problem)
            return
        for file_id in missing:
            try:
                info = opened.client.get_file(file_id)
            except NotOffered as exc:
                if exc.status == 405:  # the endpoint itself is missing, for every file
                    remember_not_offered(Endpoint.FILES, reason=exc.message)
                    return
                # A 404 is this file's (deleted, another project's), or an API without the
                # endpoint: either way, asking again soon will not change it.
                cache.set(_key(file_id), _FAILED, MISSING_SECONDS)
                continue
            except BudgetSpent:
                return  # snapshots first; the next refresh asks again
            except TokenFactoryError as exc:
                logger.info("file %s of job %s: %s", file_id, details.id, exc.message)
                cache.set(_key(file_id), _FAILED, FAILED_SECONDS)
                return  # the key, a rate limit or the network: the next files would fail too
            cache.set(_key(file_id), {"filename": info.filename, "bytes": info.bytes}, KNOWN_SECONDS)
    except Exception:
        logger.warning("could not look up the files of job %s", details.id, exc_info=True)
