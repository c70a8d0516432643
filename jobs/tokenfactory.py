"""The one place ftdash talks HTTP to Token Factory.

Every call goes through a shared `requests.Session` with connect and read timeouts, retries a
bounded number of times (with backoff) on connection errors and 502/503/504, and turns every
way a call can fail into a `TokenFactoryError` subclass whose `message` can be shown to a
person as it is. The API key never appears in a message or a log line.

Two limits hold whatever the server does. A call, all its attempts included, ends by its
deadline (`FTDASH_API_TOTAL_TIMEOUT`): requests' read timeout bounds each socket read, not the
answer, so the session's connections read through `_DeadlineReader`, which gives every read of
the status line, the headers and the body no longer than the call has left. An answer is read
streamed and refused as soon as it passes `FTDASH_API_MAX_ANSWER_BYTES` (decoded bytes, so a
gzip bomb counts at its real size), its connection closed rather than pooled half-read.
"""

from __future__ import annotations

import email.utils
import http.client
import io
import json
import logging
import math
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests
import urllib3
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from jobs import instrumentation
from jobs.finetuning import FineTuningJob, safe_url

logger = logging.getLogger(__name__)

# At most 100 characters, the length TrackedJob.job_id stores.
JOB_ID_PATTERN = re.compile(r"ftjob-[A-Za-z0-9][A-Za-z0-9_-]{0,93}")
RETRIED_STATUSES = frozenset({502, 503, 504})
DEFAULT_RETRY_AFTER_SECONDS = 30
#: How much of an answer is read at a time (and so the most it can pass the size cap by).
READ_CHUNK_BYTES = 64 * 1024


class TokenFactoryError(Exception):
    """A call failed; `message` says why in words fit for the page."""

    #: True when trying again later cannot help (a rejected key, a job that does not exist).
    permanent = False

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class InvalidJobId(TokenFactoryError):
    permanent = True


class TokenRejected(TokenFactoryError):
    permanent = True


class TokenUnusable(TokenRejected):
    """The stored key holds characters an HTTP header cannot carry; nothing was sent."""

    def __init__(self) -> None:
        super().__init__(
            "This token contains characters Token Factory cannot accept (often an invisible "
            "space pasted with it). Replace it with the key exactly as the Token Factory console "
            "shows it."
        )


class JobForbidden(TokenFactoryError):
    """403 on one job while the token itself is accepted: e.g. a job of another project.

    Not permanent: access can be granted later, so the job is retried with backoff.
    """


class JobNotFound(TokenFactoryError):
    permanent = True


class RequestRejected(TokenFactoryError):
    """422: the API explained what it did not accept."""

    permanent = True


class RateLimited(TokenFactoryError):
    def __init__(self, message: str, *, retry_after: int, status: int = 429) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after


class ListUnsupported(TokenFactoryError):
    """The API has no job list (404 or 405 on `GET /v1/fine_tuning/jobs`): ask job by job."""

    permanent = True


class NotOffered(TokenFactoryError):
    """404 or 405 on an endpoint that not every Token Factory offers (cancel, files, models)."""

    permanent = True


class ApiUnavailable(TokenFactoryError):
    """5xx, a timeout or a refused connection: worth trying again later."""


class UnreadableAnswer(TokenFactoryError):
    """The answer was not JSON, or not JSON of the expected shape."""


class AnswerTooLarge(UnreadableAnswer):
    """The answer passed FTDASH_API_MAX_ANSWER_BYTES: refused part-read, nothing of it kept.

    Without a status: what an answer that was never read says cannot count as a 404 ("not
    offered") or any other verdict. Not retried, and not permanent: the job backs off.
    """

    def __init__(self, max_bytes: int) -> None:
        super().__init__(f"Token Factory's answer was larger than {max_bytes / 2**20:g} MB.")


# Characters that ride along when a key is copied from a web page or a chat, and are never
# part of one.
INVISIBLE_CHARACTERS = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"))


def clean_api_key(raw: str) -> str:
    """The key without surrounding whitespace and invisible characters.

    Raises ValueError with a message for the form when what is left cannot travel in an
    HTTP header (anything but printable ASCII): sending it would fail, or send a different key.
    """
    key = (raw or "").translate(INVISIBLE_CHARACTERS).strip()
    if len(key) < 8 or any(char.isspace() for char in key):
        raise ValueError("That does not look like an API token: it should be one word of at least 8 characters.")
    if not is_header_safe(key):
        raise ValueError(
            "That token contains characters Token Factory cannot accept (letters outside plain "
            "ASCII, or control characters). Copy it again from the Token Factory console."
        )
    return key


def is_header_safe(key: str) -> bool:
    return bool(key) and all("!" <= char <= "~" for char in key)


def clean_job_id(raw: str) -> str:
    """The job ID with surrounding whitespace removed, or InvalidJobId before any network call."""
    job_id = (raw or "").strip()
    if not JOB_ID_PATTERN.fullmatch(job_id):
        raise InvalidJobId(
            "That does not look like a fine-tuning job ID. Job IDs start with “ftjob-” followed by "
            "letters and digits, e.g. ftjob-c7cc1f8df48144aeb180a5bf5818dc81."
        )
    return job_id


#: The most jobs one page of the job list holds (OpenAI's and the fake's maximum).
LIST_PAGE_LIMIT = 100

#: The fields an entry of the job list must carry to stand in for `GET /v1/fine_tuning/jobs/{id}`:
#: the schema's required ones plus progress and outcome. Storing a summary entry that lacks
#: them would wipe what a job's page shows; such an entry is left to a GET of its own.
FULL_JOB_FIELDS = frozenset(
    {
        "id",
        "created_at",
        "model",
        "status",
        "training_file",
        "trained_steps",
        "total_steps",
        "trained_tokens",
        "estimated_finish",
        "finished_at",
        "error",
        "result_files",
    }
)


@dataclass(frozen=True)
class JobListPage:
    """One page of `GET /v1/fine_tuning/jobs`, newest first."""

    jobs: list[FineTuningJob]  # the entries that are whole job objects
    incomplete: list[str]  # IDs of entries lacking some of FULL_JOB_FIELDS
    has_more: bool
    last_id: str | None  # `after` for the next page


@dataclass(frozen=True)
class FileInfo:
    """What `GET /v1/files/{id}` says about a file; None where it said nothing usable."""

    id: str
    filename: str | None
    bytes: int | None


@dataclass(frozen=True)
class ListPage:
    """One page of a job's events or checkpoints: the entries with a string `id`, as sent."""

    items: list[dict[str, Any]]
    has_more: bool


@dataclass(frozen=True)
class ClientConfig:
    base_url: str
    connect_timeout: float
    read_timeout: float
    total_timeout: float  # the deadline of one call, all its attempts included
    max_answer_bytes: int
    retries: int
    retry_after_cap: int
    backoff_seconds: float = 0.25

    @classmethod
    def from_settings(cls) -> ClientConfig:
        base_url = settings.FTDASH_API_BASE_URL.rstrip("/")
        if not safe_url(base_url):
            raise ImproperlyConfigured(
                f"FTDASH_API_BASE_URL={base_url!r} must be an http(s) URL, e.g. https://api.tokenfactory.nebius.com"
            )
        return cls(
            base_url=base_url,
            connect_timeout=settings.FTDASH_API_CONNECT_TIMEOUT,
            read_timeout=settings.FTDASH_API_READ_TIMEOUT,
            total_timeout=settings.FTDASH_API_TOTAL_TIMEOUT,
            max_answer_bytes=settings.FTDASH_API_MAX_ANSWER_BYTES,
            retries=settings.FTDASH_API_RETRIES,
            retry_after_cap=settings.FTDASH_RETRY_AFTER_CAP_SECONDS,
        )


# The deadline of the call the current thread is making (a call runs in one thread), for the
# connections below to read by.
_current_call = threading.local()


class _DeadlineReader(io.RawIOBase):
    """A connection's socket as http.client reads an answer from it: no read waits longer than
    the call has left, so a server dribbling its headers or body cannot hold it past its end."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        super().__init__()
        self._sock = sock
        self._reads = sock.makefile("rb", buffering=0)
        self._deadline = deadline
        self._read_timeout = sock.gettimeout()  # what urllib3 set for this answer

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the call's deadline has passed")
        self._sock.settimeout(left if self._read_timeout is None else min(left, self._read_timeout))
        return self._reads.readinto(buffer)

    def close(self) -> None:
        self._reads.close()
        super().close()


class _DeadlineSocket:
    """What http.client's HTTPResponse asks of its socket (a file to read), by the deadline."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self._sock = sock
        self._deadline = deadline

    def makefile(self, mode: str) -> io.BufferedReader:
        return io.BufferedReader(_DeadlineReader(self._sock, self._deadline))


class _DeadlineResponse(http.client.HTTPResponse):
    """http.client's answer, read by the deadline of the call this thread is making, if any."""

    def __init__(self, sock: socket.socket, *args: Any, **kwargs: Any) -> None:
        deadline = getattr(_current_call, "deadline", None)
        super().__init__(sock if deadline is None else _DeadlineSocket(sock, deadline), *args, **kwargs)


class _HTTPConnection(urllib3.connection.HTTPConnection):
    response_class = _DeadlineResponse


class _HTTPSConnection(urllib3.connection.HTTPSConnection):
    response_class = _DeadlineResponse


class _HTTPConnectionPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSConnectionPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


_DEADLINE_POOLS = {"http": _HTTPConnectionPool, "https": _HTTPSConnectionPool}


class _DeadlineAdapter(requests.adapters.HTTPAdapter):
    """requests' adapter, whose connections (direct or through an HTTP proxy) read by the deadline."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _DEADLINE_POOLS

    def proxy_manager_for(self, proxy: str, **kwargs: Any) -> urllib3.PoolManager:
        manager = super().proxy_manager_for(proxy, **kwargs)
        # A SOCKS proxy has pools of its own, which are left as they are.
        if manager.pool_classes_by_scheme is urllib3.poolmanager.pool_classes_by_scheme:
            manager.pool_classes_by_scheme = _DEADLINE_POOLS
        return manager


_session: requests.Session | None = None
_session_lock = threading.Lock()


def _shared_session() -> requests.Session:
    """One session per process, so connections to the API are kept alive and reused."""
    global _session
    with _session_lock:
        if _session is None:
            _session = requests.Session()
            _session.mount("http://", _DeadlineAdapter())
            _session.mount("https://", _DeadlineAdapter())
            _session.headers["User-Agent"] = "ftdash (+https://github.com/ftdash/ftdash)"
            _session.headers["Accept"] = "application/json"
        return _session


def parse_retry_after(value: str | None, *, cap: int) -> int:
    """Seconds to wait from a Retry-After header (seconds or an HTTP date), capped."""
    seconds = DEFAULT_RETRY_AFTER_SECONDS
    if value:
        value = value.strip()
        if value.isascii() and value.isdigit():
            seconds = int(value)
        else:
            try:
                when = email.utils.parsedate_to_datetime(value)
                seconds = int(when.timestamp() - time.time())
            except (TypeError, ValueError, OverflowError):
                pass
    return max(1, min(seconds, cap))


def storable_json(value: Any) -> Any:
    """`value` with strings and numbers every database can store and every page can encode.

    JSON may carry lone surrogates (\\ud800) and NUL characters; PostgreSQL's jsonb refuses
    both and a UTF-8 response cannot encode the first. They become U+FFFD. Python's json also
    accepts NaN and Infinity (and turns 1e999 into infinity), which no database's JSON takes:
    they are kept as the strings "NaN", "Infinity" and "-Infinity", which every parser here
    reads as "no number".
    """
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8").replace("\x00", "\ufffd")
    if isinstance(value, list):
        return [storable_json(item) for item in value]
    if isinstance(value, dict):
        return {storable_json(key): storable_json(item) for key, item in value.items()}
    return value


def _json_of(body: bytes, encoding: str | None) -> Any:
    """The answer's JSON, its text decoded as requests' `Response.json()` would decode it."""
    encoding = encoding or requests.utils.guess_json_utf(body) or "utf-8"
    try:
        text = body.decode(encoding, errors="replace")
    except LookupError:  # a charset Python does not know
        text = body.decode("utf-8", errors="replace")
    return json.loads(text)


def _timed_out(exc: requests.exceptions.RequestException) -> bool:
    """A read waited too long: for the status line and headers (ReadTimeout), or in the body
    (which requests reports as a ConnectionError carrying urllib3's ReadTimeoutError)."""
    return isinstance(exc, requests.exceptions.ReadTimeout) or bool(
        exc.args and isinstance(exc.args[0], urllib3.exceptions.ReadTimeoutError)
    )


def _detail_text(payload: Any) -> str:
    """The human part of a FastAPI-style error body: {"detail": "..."} or a list of errors."""
    detail = payload.get("detail") if isinstance(payload, dict) else None
    if isinstance(detail, str):
        return detail[:300]
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, dict):
                loc = ".".join(str(p) for p in item.get("loc") or [] if isinstance(p, (str, int)))
                msg = str(item.get("msg", ""))
                parts.append(f"{loc}: {msg}" if loc else msg)
        return "; ".join(parts)[:300]
    return ""


class TokenFactoryClient:
    def __init__(
        self,
        api_key: str,
        config: ClientConfig | None = None,
        *,
        project_id: str = "",
        spend: Callable[[], None] | None = None,
    ) -> None:
        self._api_key = api_key
        self.config = config or ClientConfig.from_settings()
        # A Token Factory project the key works in: sent as `ai_project_id` on every call.
        self.project_id = (project_id or "").strip()
        # Called before every request: the key's request budget (jobs.request_budget), which
        # raises instead of letting the request go.
        self._spend = spend

    def _with_project(self, params: dict | None) -> dict | None:
        if not self.project_id:
            return params
        return {**(params or {}), "ai_project_id": self.project_id}

    def __repr__(self) -> str:  # never show the key, even in a traceback's locals
        return f"<TokenFactoryClient {self.config.base_url}>"

    def get_job(self, job_id: str) -> FineTuningJob:
        job_id = clean_job_id(job_id)
        payload = self._get(f"/v1/fine_tuning/jobs/{quote(job_id, safe='')}", job_id=job_id)
        if not (
            isinstance(payload, dict) and isinstance(payload.get("id"), str) and isinstance(payload.get("status"), str)
        ):
            raise UnreadableAnswer(
                "Token Factory answered, but not with a fine-tuning job (no id or status in it).",
                status=200,
            )
        return FineTuningJob.from_payload(payload)

    def list_jobs(self, *, after: str | None = None, limit: int = LIST_PAGE_LIMIT) -> JobListPage:
        """One page of the jobs this key can see, newest first, starting after the job `after`.

        Raises ListUnsupported when the API has no list (404/405), and UnreadableAnswer when
        the answer is not a list of jobs.
        """
        params: dict[str, Any] = {"limit": limit}
        if after:
            params["after"] = after
        try:
            payload = self._get("/v1/fine_tuning/jobs", params=params)
        except (JobNotFound, UnreadableAnswer) as exc:
            if exc.status in (404, 405):
                raise ListUnsupported(
                    f"Token Factory has no job list here (HTTP {exc.status}).", status=exc.status
                ) from None
            raise
        data = payload.get("data") if isinstance(payload, dict) else None
        if not isinstance(data, list):
            raise UnreadableAnswer("Token Factory answered, but not with a list of jobs.", status=200)
        jobs, incomplete, last_id = [], [], None
        for entry in data:
            job_id = entry.get("id") if isinstance(entry, dict) else None
            if not isinstance(job_id, str):
                continue
            last_id = job_id
            if entry.keys() >= FULL_JOB_FIELDS and isinstance(entry.get("status"), str):
                jobs.append(FineTuningJob.from_payload(entry))
            else:
                incomplete.append(job_id)
        return JobListPage(jobs=jobs, incomplete=incomplete, has_more=payload.get("has_more") is True, last_id=last_id)

    def get_file(self, file_id: str) -> FileInfo:
        """`GET /v1/files/{id}`: the file's name and size. NotOffered on 404/405."""
        payload = self._get_offered(f"/v1/files/{quote(file_id, safe='')}", what="file details")
        if not isinstance(payload, dict):
            raise UnreadableAnswer("Token Factory answered, but not with a file.", status=200)
        name, size = payload.get("filename"), payload.get("bytes")
        return FileInfo(
            id=file_id,
            filename=name[:300] if isinstance(name, str) and name else None,
            bytes=size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None,
        )

    def list_models(self) -> list[dict[str, Any]]:
        """`GET /v0/models`: the custom models of this key's project, as dict entries (others
        skipped). NotOffered when the API has no such endpoint (404/405)."""
        payload = self._get_offered("/v0/models", what="a list of custom models")
        data = payload.get("data") if isinstance(payload, dict) else payload
        if not isinstance(data, list):
            raise UnreadableAnswer("Token Factory answered, but not with a list of models.", status=200)
        return [entry for entry in data if isinstance(entry, dict)]

    def cancel_job(self, job_id: str) -> None:
        """`POST /v1/fine_tuning/jobs/{id}/cancel`. NotOffered when the API answers 404/405."""
        job_id = clean_job_id(job_id)
        try:
            self._request("POST", f"/v1/fine_tuning/jobs/{quote(job_id, safe='')}/cancel")
        except (JobNotFound, UnreadableAnswer) as exc:
            if exc.status in (404, 405):
                raise NotOffered("This Token Factory endpoint does not offer cancelling.", status=exc.status) from None
            raise

    def _get_offered(self, path: str, *, what: str) -> Any:
        try:
            return self._get(path)
        except (JobNotFound, UnreadableAnswer) as exc:
            if exc.status in (404, 405):
                raise NotOffered(
                    f"Token Factory does not offer {what} here (HTTP {exc.status}).", status=exc.status
                ) from None
            raise

    def check_key(self) -> None:
        """Raise unless the API accepts this key (lists at most one job)."""
        self._get("/v1/fine_tuning/jobs", params={"limit": 1})

    def list_events(self, job_id: str, *, after: str | None = None, limit: int = LIST_PAGE_LIMIT) -> ListPage:
        """One page of a job's events (Token Factory: oldest first; OpenAI: newest first)."""
        return self._list_page(job_id, "events", after=after, limit=limit)

    def list_checkpoints(self, job_id: str, *, after: str | None = None, limit: int = LIST_PAGE_LIMIT) -> ListPage:
        """One page of a job's checkpoints (newest first, as OpenAI lists them)."""
        return self._list_page(job_id, "checkpoints", after=after, limit=limit)

    def _list_page(self, job_id: str, what: str, *, after: str | None, limit: int) -> ListPage:
        job_id = clean_job_id(job_id)
        params: dict[str, Any] = {"limit": limit}
        if after:
            params["after"] = after
        path = f"/v1/fine_tuning/jobs/{quote(job_id, safe='')}/{what}"
        try:
            payload = self._get(path, params=params, job_id=job_id)
        except (JobNotFound, UnreadableAnswer) as exc:
            if exc.status == 405 or (exc.status == 404 and after is None):
                # The job itself was just read: a 404 here means the endpoint, not the job.
                raise NotOffered(
                    f"This Token Factory endpoint does not offer the job's {what} (HTTP {exc.status}).",
                    status=exc.status,
                ) from None
            raise
        data = payload.get("data") if isinstance(payload, dict) else None
        if not isinstance(data, list):
            raise UnreadableAnswer(f"Token Factory answered, but not with a list of {what}.", status=200)
        items = [item for item in data if isinstance(item, dict) and isinstance(item.get("id"), str)]
        return ListPage(items=items, has_more=payload.get("has_more") is True and bool(items))

    def _get(self, path: str, *, params: dict | None = None, job_id: str | None = None) -> Any:
        return self._request("GET", path, params=params, job_id=job_id)

    def _request(self, method: str, path: str, *, params: dict | None = None, job_id: str | None = None) -> Any:
        if not is_header_safe(self._api_key):
            raise TokenUnusable()
        config = self.config
        url = config.base_url + path
        deadline = time.monotonic() + config.total_timeout
        for attempt in range(config.retries + 1):
            backoff = config.backoff_seconds * 2**attempt
            if self._spend is not None:
                self._spend()  # every attempt is a request Token Factory counts, retries too
            started = time.monotonic()
            try:
                response, body = self._send(method, url, params=params, deadline=deadline)
            except AnswerTooLarge:
                self._log(method, path, job_id, "too_large", started, logging.WARNING)
                raise
            except requests.exceptions.RequestException as exc:
                if time.monotonic() >= deadline:
                    self._log(method, path, job_id, "deadline", started, logging.WARNING)
                    raise ApiUnavailable(
                        f"Token Factory answered too slowly (over {config.total_timeout:g} s)."
                    ) from None
                if _timed_out(exc):
                    # Not retried: a slow API would only get slower, and a person is waiting.
                    self._log(method, path, job_id, "timeout", started, logging.WARNING)
                    raise ApiUnavailable(f"Token Factory did not answer within {config.read_timeout:g} s.") from None
                self._log(method, path, job_id, type(exc).__name__, started, logging.WARNING)
                if self._try_again(attempt, backoff, deadline):
                    time.sleep(backoff)
                    continue
                raise ApiUnavailable(f"Could not connect to Token Factory at {config.base_url}.") from None
            self._log(method, path, job_id, response.status_code, started, logging.INFO)
            if response.status_code in RETRIED_STATUSES and self._try_again(attempt, backoff, deadline):
                time.sleep(backoff)
                continue
            return self._read(response, body, job_id=job_id)
        raise AssertionError("unreachable")  # the loop always returns or raises

    def _try_again(self, attempt: int, backoff: float, deadline: float) -> bool:
        """Whether to try again after `backoff`: not when no try is left, nor when that try
        would start after the call's deadline."""
        return attempt < self.config.retries and time.monotonic() + backoff < deadline

    def _send(self, method: str, url: str, *, params: dict | None, deadline: float) -> tuple[requests.Response, bytes]:
        """One attempt: the answer and its body, read by the deadline and within the size cap."""
        config = self.config
        left = deadline - time.monotonic()
        _current_call.deadline = deadline
        try:
            response = _shared_session().request(
                method,
                url,
                params=self._with_project(params),
                headers={"Authorization": f"Bearer {self._api_key}"},
                timeout=(min(config.connect_timeout, left), min(config.read_timeout, left)),
                allow_redirects=False,
                stream=True,
            )
            # Closing an answer that was not read to its end closes its connection too.
            with response:
                return response, self._body(response)
        finally:
            _current_call.deadline = None

    def _body(self, response: requests.Response) -> bytes:
        cap = self.config.max_answer_bytes
        declared = response.headers.get("Content-Length", "").strip()
        if declared.isascii() and declared.isdigit() and int(declared) > cap:
            raise AnswerTooLarge(cap)
        body = bytearray()
        for chunk in response.iter_content(chunk_size=READ_CHUNK_BYTES):  # decoded (gzip…)
            body += chunk
            if len(body) > cap:
                raise AnswerTooLarge(cap)
        return bytes(body)

    def _read(self, response: requests.Response, body: bytes, *, job_id: str | None) -> Any:
        status = response.status_code
        content_type = response.headers.get("Content-Type", "").split(";")[0].strip() or "no type"
        try:
            payload = storable_json(_json_of(body, response.encoding))
        except (ValueError, RecursionError):
            payload = None
        detail = _detail_text(payload)
        if status == 403 and job_id:
            raise JobForbidden(
                f"This token may not read job {job_id} (HTTP 403). The job may belong to another "
                "Token Factory project than the token.",
                status=status,
            )
        if status in (401, 403):
            raise TokenRejected(
                f"Token Factory rejected this API token (HTTP {status}). It may be mistyped, revoked or expired.",
                status=status,
            )
        if status == 404:
            what = f"job {job_id}" if job_id else "this resource"
            raise JobNotFound(
                f"Token Factory has no {what} visible to this token. "
                "Check the ID and that the token belongs to the project that ran the job.",
                status=status,
            )
        if status == 422:
            raise RequestRejected(
                "Token Factory did not accept the request" + (f": {detail}" if detail else "."),
                status=status,
            )
        if status == 429:
            retry_after = parse_retry_after(response.headers.get("Retry-After"), cap=self.config.retry_after_cap)
            raise RateLimited(
                f"Token Factory is rate-limiting this token; ftdash waits {retry_after} s before asking again.",
                retry_after=retry_after,
            )
        if status >= 500:
            raise ApiUnavailable(
                f"Token Factory is unavailable right now (HTTP {status}). ftdash keeps trying.",
                status=status,
            )
        if status != 200:
            raise UnreadableAnswer(f"Token Factory gave an unexpected answer (HTTP {status}).", status=status)
        if payload is None:
            raise UnreadableAnswer(
                f"Token Factory sent an answer ftdash cannot read (HTTP {status}, {content_type}, "
                "not JSON). A proxy or gateway in between may be failing.",
                status=status,
            )
        return payload

    @staticmethod
    def _log(method: str, path: str, job_id: str | None, outcome: Any, started: float, level: int) -> None:
        # Every attempt ends here, whatever its outcome: /metrics/instance counts it too.
        instrumentation.upstream_call(method, path, outcome, time.monotonic() - started)
        logger.log(
            level,
            "upstream %s %s job=%s status=%s duration_ms=%d",
            method,
            path,
            job_id or "-",
            outcome,
            (time.monotonic() - started) * 1000,
        )
