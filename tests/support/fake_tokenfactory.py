"""A fake Nebius Token Factory fine-tuning API, served over real HTTP on loopback.

Why a real server rather than mocking ``requests``: ftdash's client code (timeouts, retries,
connection errors, content-type sniffing, header parsing) is only exercised honestly when
bytes actually cross a socket. Tests start one of these on ``127.0.0.1:<ephemeral port>``,
point the app's base URL at ``fake.url`` and script the server's behaviour:

    with FakeTokenFactory() as fake:
        fake.add_token("tok")
        job = fake.add_job(token="tok", total_steps=100, steps_per_second=50)
        fake.fail_next("429", retry_after=3)
        ...
        assert [c.status for c in fake.calls_for(job["id"])] == [429, 200]

Tests that need a job to move do it on demand, never by racing the wall clock: ``steps_per_call``
advances a job on each GET, ``advance(job_id, steps)`` and ``update_job`` move it from the test,
and ``FakeTokenFactory(clock=ManualClock())`` makes ``steps_per_second``/``queued_for_seconds``
follow a clock the test turns by hand. Runs that go wrong: ``add_checkpoints(job_id, OVERFITTING)``
(or ``DIVERGING``, or any list of metrics), ``set_pace`` (a run slowing down, or stalling) and
``set_estimated_finish`` (an ETA that slips). Answers are HTTP/1.1 with keep-alive, like the real API
behind its gateway, so connection reuse (``connections_accepted``) and a server closing pooled
connections (``close_idle_connections``) can be tested.

It is also runnable by hand for trying ftdash without a real API key::

    python -m tests.support.fake_tokenfactory --port 8765

Only the standard library is used (and tests/support/payloads.py for its job bodies,
tests/support/loopback_server.py for its server), so it can be imported anywhere.
"""

from __future__ import annotations

import argparse
import copy
import json
import signal
import socket
import socketserver
import struct
import sys
import threading
import time
import traceback
import uuid
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from tests.support.loopback_server import PromptServer
from tests.support.payloads import default_hyperparameters, default_job_body, new_file_id, new_job_id

__all__ = [
    "ALIVE",
    "Call",
    "DIVERGING",
    "FakeTokenFactory",
    "FAIL_KINDS",
    "ManualClock",
    "OVERFITTING",
    "seed_demo_jobs",
]

JOBS_PREFIX = ["v1", "fine_tuning", "jobs"]
TERMINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})
DEFAULT_PAGE_LIMIT = 20
MAX_PAGE_LIMIT = 100

#: Every kind accepted by :meth:`FakeTokenFactory.fail_next`.
FAIL_KINDS = frozenset(
    {
        "401",
        "403",
        "404",
        "422",
        "429",
        "500",
        "502",
        "503",
        "504",
        "timeout",
        "html",
        "not_json",
        "wrong_shape",
        "missing_fields",
        "reset",
        "dribble_headers",
        "dribble_body",
        "huge",
        "huge_chunked",
        "huge_gzip",
    }
)

#: ``add_job(**ALIVE)``: a running job that moves on every GET and never finishes by itself.
ALIVE = {"steps_per_call": 1, "total_steps": 100_000}

#: ``add_checkpoints(job_id, OVERFITTING)``: five epochs whose validation loss is best at epoch 3
#: (0.81) and then rises twice (0.86, 0.93) while the training loss keeps falling.
OVERFITTING = [
    {"train_loss": 1.30, "valid_loss": 1.20},
    {"train_loss": 1.00, "valid_loss": 0.95},
    {"train_loss": 0.80, "valid_loss": 0.81},
    {"train_loss": 0.70, "valid_loss": 0.86},
    {"train_loss": 0.60, "valid_loss": 0.93},
]

#: ``add_checkpoints(job_id, DIVERGING[:n])``: a run whose training loss is NaN at epoch 3, sane
#: again at epoch 4 (0.85), then jumps ×3 (2.55) at epoch 5.
DIVERGING = [
    {"train_loss": 1.00, "valid_loss": 1.05},
    {"train_loss": 0.90, "valid_loss": 0.95},
    {"train_loss": float("nan"), "valid_loss": 0.94},
    {"train_loss": 0.85, "valid_loss": 0.92},
    {"train_loss": 2.55, "valid_loss": 0.93},
]

#: The size of a "huge" answer unless fail_next says otherwise: the 400 MB of issue 17.
HUGE_ANSWER_BYTES = 400 * 1024 * 1024

_REASONS = {
    502: "Bad Gateway",
    503: "Service Temporarily Unavailable",
    504: "Gateway Time-out",
}


def _nginx_page(status: int) -> bytes:
    """An HTML error page like the one a gateway in front of the API sends (not JSON!)."""
    title = f"{status} {_REASONS.get(status, 'Error')}"
    return (
        f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
        f"<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n"
        "</body>\r\n</html>\r\n"
    ).encode()


class ManualClock:
    """A monotonic clock that only moves when a test says so, for time-based progress without sleeps."""

    def __init__(self, start: float = 1_000.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a monotonic clock never goes back")
        with self._lock:
            self._now += seconds


@dataclass(frozen=True)
class Call:
    """One request the fake received, so tests can assert on what the client actually sent."""

    method: str
    path: str  # as sent, still percent-encoded, without the query string
    query: dict[str, str]
    token: str | None  # the bearer token, if any
    job_id: str | None  # decoded {job_id} path segment, for /v1/fine_tuning/jobs/{job_id}[/...]
    status: int  # status answered; 0 when the connection was reset without an answer
    at: float  # time.monotonic() when the request was received


@dataclass
class _Failure:
    kind: str
    job_id: str | None
    remaining: int
    retry_after: int | None
    delay: float
    hold: threading.Event | None = None
    size: int = HUGE_ANSWER_BYTES
    dribble_for: float = 30.0


@dataclass
class _Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    hold: threading.Event | None = None  # answer only once this is set
    reset: bool = False
    # Made as it is sent, never all in memory: sent with Content-Length `length`, or chunked.
    chunks: Callable[[], Iterator[bytes]] | None = None
    length: int | None = None
    dribble: float = 0.0  # seconds between the bytes of a dribbled answer ...
    dribble_headers: bool = False  # ... from its status line on, or only its body
    dribble_for: float = 30.0  # after this long, the rest is sent at once


def _json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> _Response:
    return _Response(status, json.dumps(payload).encode(), "application/json", dict(headers or {}))


def _not_found(detail: str = "Not Found") -> _Response:
    return _json_response(404, {"detail": detail})


def _validation_error(loc: list[Any], msg: str) -> _Response:
    return _json_response(422, {"detail": [{"loc": loc, "msg": msg, "type": "value_error"}]})


@dataclass
class _Job:
    """Server-side state of one job: the stored body plus how it should progress."""

    body: dict[str, Any]
    token: str | None
    steps_per_second: float
    steps_per_call: int
    tokens_per_step: int
    fail_with: dict[str, Any] | None
    fail_at_step: int | None
    queued_until: float | None  # monotonic time at which a queued job starts running
    base_steps: int  # trained_steps at base_time ...
    base_time: float  # ... from which time-based progress is measured (monotonic)
    events: list[dict[str, Any]] = field(default_factory=list)
    checkpoints: list[dict[str, Any]] = field(default_factory=list)  # oldest first, as stored

    @property
    def progressing(self) -> bool:
        return self.steps_per_second > 0 or self.steps_per_call > 0


class FakeTokenFactory:
    """A scriptable, thread-safe fake of the Token Factory fine-tuning API on real HTTP."""

    def __init__(self, *, clock: Any = None, latency: float = 0.0, epoch: float | None = None) -> None:
        """Create a stopped server with no tokens, jobs or scripted failures.

        ``clock`` (a callable returning monotonic seconds, e.g. a :class:`ManualClock`) drives
        time-based progress; the default is ``time.monotonic``. ``epoch`` is the time (epoch
        seconds) that the clock's reading now stands for in the timestamps served (default: the
        real time now). ``latency`` (seconds) delays every answer, like a real API across the
        internet (see :meth:`set_latency`).
        """
        self._clock = clock or time.monotonic
        self._lock = threading.RLock()
        self._latency = 0.0
        self.set_latency(latency)
        self._list_supported = True
        self._events_newest_first = False
        self._training_log_supported = True
        self._list_fields: frozenset[str] | None = None
        self._tokens: set[str] = set()
        self._jobs: dict[str, _Job] = {}  # insertion order = creation order
        self._failures: list[_Failure] = []
        self._calls: list[Call] = []
        self._down = False
        # Files, custom models and cancelling (see add_file, add_model, set_cancel).
        self._files: dict[str, dict[str, Any]] = {}
        self._files_supported = True
        self._models: list[dict[str, Any]] = []
        self._models_status = 200
        self._cancel_status = 200
        # How jobs made by `POST /v1/fine_tuning/jobs` progress (add_job's options; see create_options).
        self._create_options: dict[str, Any] = {}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        # Anchor for converting monotonic instants (used for progress) into epoch seconds.
        self._wall0 = time.time() if epoch is None else float(epoch)
        self._mono0 = self._clock()
        # Keep-alive bookkeeping: how many connections were accepted, and which are open.
        self._connections_accepted = 0
        self._open_handlers: set[_Handler] = set()
        self._in_flight = 0
        self._max_in_flight = 0

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        """Base URL (``http://127.0.0.1:<port>``, no trailing slash) to give the client."""
        if self._server is None:
            raise RuntimeError("FakeTokenFactory is not started; call start() first")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self, host: str = "127.0.0.1", port: int = 0) -> FakeTokenFactory:
        """Bind (port 0 = an ephemeral port, so parallel tests never collide) and serve in a thread."""
        if self._server is not None:
            raise RuntimeError("FakeTokenFactory is already started")
        server = _Server((host, port), _Handler)
        server.fake = self
        thread = threading.Thread(
            target=server.serve_until_stopped, name=f"fake-tokenfactory:{server.server_address[1]}", daemon=True
        )
        thread.start()
        self._server, self._thread = server, thread
        return self

    def stop(self) -> None:
        """Stop serving and free the port; safe to call twice. In-flight delayed answers are abandoned."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.stop_serving()
            server.server_close()
        # Kept-alive connections would otherwise go on being answered after the server stopped.
        with self._lock:
            handlers = list(self._open_handlers)
        for handler in handlers:
            try:
                handler.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> FakeTokenFactory:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ auth

    def add_token(self, token: str) -> None:
        """Accept ``Authorization: Bearer <token>`` from now on."""
        with self._lock:
            self._tokens.add(token)

    def revoke_token(self, token: str) -> None:
        """Answer 401 to requests carrying ``token`` from now on (a key deleted in the console)."""
        with self._lock:
            self._tokens.discard(token)

    # ------------------------------------------------------------------ jobs

    def add_job(
        self,
        job_id: str | None = None,
        *,
        token: str | None = None,
        steps_per_second: float = 0,
        steps_per_call: int = 0,
        queued_for_seconds: float = 0,
        fail_with: dict[str, Any] | None = None,
        fail_at_step: int | None = None,
        tokens_per_step: int = 4096,
        **fields: Any,
    ) -> dict[str, Any]:
        """Create a job and return it as it would be served now.

        ``token`` restricts visibility to that key (None = every valid key); other keys get 404,
        as the real API does for another project's job. ``fields`` override the realistic default
        body; unknown fields are served verbatim (the real schema has additionalProperties).

        Progression (controls, not part of the body) so the dashboard's live updates can be tested:
        ``steps_per_second`` grows trained_steps with wall-clock time, ``steps_per_call`` grows it
        on each GET of the job, ``queued_for_seconds`` keeps the job "queued" first. trained_tokens
        follows as ``trained_steps * tokens_per_step``. On reaching total_steps the job succeeds
        (result_files + finished_at) or, with ``fail_with`` (an error dict), fails with that error;
        ``fail_at_step`` makes it fail earlier, at that step.
        """
        if fail_with is not None and not isinstance(fail_with, dict):
            raise TypeError("fail_with must be an error dict like {'code':..., 'message':..., 'param':...}")
        with self._lock:
            job_id = job_id or new_job_id()
            if job_id in self._jobs:
                raise ValueError(f"job {job_id!r} already exists")
            now = self._clock()
            body = default_job_body(job_id, int(self._wall(now)))
            body.update(copy.deepcopy(fields))
            if queued_for_seconds > 0:
                body["status"] = "queued"
            status = body.get("status")
            if status == "succeeded":
                if "finished_at" not in fields:
                    body["finished_at"] = int(self._wall(now))
                if "result_files" not in fields:
                    body["result_files"] = [new_file_id()]
            elif status in ("failed", "cancelled") and "finished_at" not in fields:
                body["finished_at"] = int(self._wall(now))
            if status == "failed" and "error" not in fields:
                body["error"] = copy.deepcopy(fail_with) or {
                    "code": "internal_error",
                    "message": "Fine-tuning job failed due to an internal error",
                    "param": None,
                }
            job = _Job(
                body=body,
                token=token,
                steps_per_second=float(steps_per_second),
                steps_per_call=int(steps_per_call),
                tokens_per_step=int(tokens_per_step),
                fail_with=copy.deepcopy(fail_with),
                fail_at_step=fail_at_step,
                queued_until=now + queued_for_seconds if queued_for_seconds > 0 else None,
                base_steps=int(body.get("trained_steps") or 0),
                base_time=now,
            )
            self._seed_events(job)
            self._jobs[job_id] = job
            self._advance(job, now, on_get=False)
            return copy.deepcopy(job.body)

    def add_jobs(self, n: int, **options: Any) -> list[dict[str, Any]]:
        """Create ``n`` jobs alike (the options and fields of :meth:`add_job`), oldest first."""
        return [self.add_job(**options) for _ in range(n)]

    def update_job(self, job_id: str, **fields: Any) -> dict[str, Any]:
        """Set body fields directly (e.g. ``status="failed", error={...}``) and return the served job.

        A status change is recorded as an event. Moving to a terminal status fills ``finished_at``
        (and ``result_files`` on success) unless given. Progress controls from ``add_job`` keep
        applying while the job is "running", continuing from the trained_steps now stored.
        """
        with self._lock:
            job = self._get(job_id)
            now = self._clock()
            self._advance(job, now, on_get=False)
            body = job.body
            old_status = body.get("status")
            body.update(copy.deepcopy(fields))
            new_status = body.get("status")
            if new_status != "queued":
                job.queued_until = None
            if new_status != old_status:
                if new_status in TERMINAL_STATUSES and "finished_at" not in fields and body.get("finished_at") is None:
                    body["finished_at"] = int(self._wall(now))
                if new_status == "succeeded" and "result_files" not in fields and not body.get("result_files"):
                    body["result_files"] = [new_file_id()]
                self._status_event(job, new_status, int(self._wall(now)))
            job.base_steps = int(body.get("trained_steps") or 0)
            job.base_time = now
            self._advance(job, now, on_get=False)
            return copy.deepcopy(body)

    def advance(self, job_id: str, steps: int = 1) -> dict[str, Any]:
        """Move a running job on by ``steps`` now (finishing it at total_steps); returns the served job.

        The explicit step control for tests that must act before, or after, a job finishes:
        nothing depends on how fast the machine is.
        """
        if steps < 0:
            raise ValueError("steps must be >= 0")
        with self._lock:
            job = self._get(job_id)
            now = self._clock()
            self._advance(job, now, on_get=False)
            if job.body.get("status") == "running":
                job.base_steps += steps
                if not job.progressing:  # a static job still moves when told to
                    job.body["trained_steps"] = job.base_steps
                    job.body["trained_tokens"] = job.base_steps * job.tokens_per_step
                    self._finish_if_done(job, now)
                self._advance(job, now, on_get=False)
            return copy.deepcopy(job.body)

    def add_checkpoint(
        self, job_id: str, *, step_number: int | None = None, metrics: dict[str, Any] | None = None, **fields: Any
    ) -> dict[str, Any]:
        """Record a checkpoint of the job (at its current step unless given) and return it as served.

        The shape follows the API notes: ``id`` (``ftckpt_<uuid>``), ``created_at``, ``step_number``,
        ``fine_tuned_model_checkpoint``, ``fine_tuning_job_id``, ``result_files`` and ``metrics``.
        """
        with self._lock:
            job = self._get(job_id)
            now = self._clock()
            self._advance(job, now, on_get=False)
            step = int(job.body.get("trained_steps") or 0) if step_number is None else int(step_number)
            checkpoint = {
                "id": f"ftckpt_{uuid.uuid4()}",
                "object": "fine_tuning.job.checkpoint",
                "created_at": int(self._wall(now)),
                "step_number": step,
                "fine_tuned_model_checkpoint": f"{job.body.get('model')}:{job.body.get('suffix') or ''}:{job_id}:ckpt-step-{step}",
                "fine_tuning_job_id": job_id,
                "result_files": [new_file_id()],
                "metrics": {
                    "step": step,
                    "train_loss": 1.0,
                    "train_mean_token_accuracy": 0.5,
                    "valid_loss": 1.1,
                    "valid_mean_token_accuracy": 0.45,
                    "full_valid_loss": 1.1,
                    "full_valid_mean_token_accuracy": 0.45,
                    **(metrics or {}),
                },
            }
            checkpoint.update(copy.deepcopy(fields))
            job.checkpoints.append(checkpoint)
            return copy.deepcopy(checkpoint)

    def add_checkpoints(
        self, job_id: str, series: list[dict[str, Any]], *, steps_apart: int | None = None
    ) -> list[dict[str, Any]]:
        """Give the job one checkpoint per entry of ``series`` (its metrics, served as given: no
        defaults added, so ``{"train_loss": None}`` is a checkpoint without losses), each at an
        epoch's end: the job moves on ``steps_apart`` steps (default: an epoch, total_steps //
        n_epochs) before each, as a run writes a checkpoint when an epoch ends. Returns them as
        served. For runs that go wrong, see ``OVERFITTING`` and ``DIVERGING``."""
        made = []
        with self._lock:
            job = self._get(job_id)
            if steps_apart is None:
                epochs = (job.body.get("hyperparameters") or {}).get("n_epochs") or 1
                steps_apart = max(1, int(job.body.get("total_steps") or epochs) // int(epochs))
            for metrics in series:
                self.advance(job_id, steps_apart)
                checkpoint = self.add_checkpoint(job_id)
                checkpoint["metrics"] = {"step": checkpoint["step_number"], **copy.deepcopy(metrics)}
                job.checkpoints[-1] = copy.deepcopy(checkpoint)
                made.append(checkpoint)
        return made

    def set_pace(self, job_id: str, steps_per_second: float) -> dict[str, Any]:
        """From now on, the running job moves ``steps_per_second`` (0: it stalls), from the step it
        is at; its estimated_finish follows the new pace (a slower pace slips it later, a stall
        leaves it where it was). Returns the served job."""
        with self._lock:
            job = self._get(job_id)
            now = self._clock()
            self._advance(job, now, on_get=False)
            job.base_steps = int(job.body.get("trained_steps") or 0)
            job.base_time = now
            job.steps_per_second = float(steps_per_second)
            self._advance(job, now, on_get=False)
            return copy.deepcopy(job.body)

    def set_estimated_finish(self, job_id: str, *, in_seconds: float) -> dict[str, Any]:
        """Serve estimated_finish ``in_seconds`` from the fake's now (its clock's, when it has one):
        for a job without a pace (``steps_per_second``), whose estimate nothing else moves."""
        with self._lock:
            return self.update_job(job_id, estimated_finish=int(self._wall(self._clock()) + in_seconds))

    def add_event(
        self, job_id: str, message: str, *, level: str = "info", created_at: int | None = None
    ) -> dict[str, Any]:
        """Record an event of the job (now, unless ``created_at`` is given) and return it as served."""
        with self._lock:
            job = self._get(job_id)
            at = int(self._wall(self._clock())) if created_at is None else created_at
            self._add_event(job, at, level, message)
            return copy.deepcopy(job.events[-1])

    def set_events_order(self, *, newest_first: bool) -> None:
        """Serve events newest first, as OpenAI does (Token Factory: oldest first, the default)."""
        with self._lock:
            self._events_newest_first = bool(newest_first)

    def set_training_log(self, *, supported: bool = True) -> None:
        """Without it, the events and checkpoints endpoints answer 404, as an API lacking them would."""
        with self._lock:
            self._training_log_supported = bool(supported)

    def get_job(self, job_id: str) -> dict[str, Any]:
        """The job as it would be served now, without counting as a GET (no steps_per_call advance)."""
        with self._lock:
            job = self._get(job_id)
            self._advance(job, self._clock(), on_get=False)
            return copy.deepcopy(job.body)

    # ------------------------------------------------------------------ failure scripting

    def fail_next(
        self,
        kind: str,
        *,
        job_id: str | None = None,
        count: int = 1,
        retry_after: int | None = None,
        delay: float = 2.0,
        size: int = HUGE_ANSWER_BYTES,
        dribble_for: float = 30.0,
    ) -> None:
        """Make the next ``count`` requests (for ``job_id`` only, or any) misbehave in the given way.

        Kinds: "401" "403" "404" "422" "429" "500" "503" (JSON detail bodies), "502" "504" (nginx
        HTML pages), "timeout" (answer normally after ``delay`` seconds), "html" (200 + HTML),
        "not_json" (200, application/json, invalid JSON), "wrong_shape" (200 + a JSON list),
        "missing_fields" (200 + a JSON object without id/status), "reset" (close without answering).
        ``retry_after`` adds a Retry-After header to the failing response. Rules are used in the
        order they were added; the first one matching a request is consumed.

        Slow and oversized answers: "dribble_headers" and "dribble_body" send the normal answer
        one byte every ``delay`` seconds, from its status line on or only its body, and the rest
        at once after ``dribble_for`` seconds (so that a client without a deadline ends too, and
        its test fails instead of hanging). "huge" is a 200 whose JSON job object is ``size``
        bytes, made as it is sent, with its Content-Length; "huge_chunked" is the same without
        one (chunked); "huge_gzip" is that body gzipped (chunked): small on the wire, ``size``
        bytes once decoded.
        """
        if kind not in FAIL_KINDS:
            raise ValueError(f"unknown fail kind {kind!r}; expected one of {sorted(FAIL_KINDS)}")
        if count < 1:
            raise ValueError("count must be >= 1")
        with self._lock:
            self._failures.append(_Failure(kind, job_id, count, retry_after, delay, size=size, dribble_for=dribble_for))

    def hold_next(self, *, job_id: str | None = None, longest: float = 120.0) -> threading.Event:
        """Keep the next request (for ``job_id`` only, or any) waiting for its normal answer until
        the returned event is set (or ``longest`` seconds pass): a call that is in flight for
        exactly as long as the test needs, on a fast machine or a slow one."""
        release = threading.Event()
        with self._lock:
            self._failures.append(_Failure("hold", job_id, 1, None, longest, release))
        return release

    def set_latency(self, seconds: float) -> None:
        """Delay every answer by ``seconds`` from now on (on top of any scripted delay)."""
        if seconds < 0:
            raise ValueError("latency must be >= 0")
        with self._lock:
            self._latency = float(seconds)

    def set_job_list(self, *, supported: bool = True, fields: Any = None) -> None:
        """Shape ``GET /v1/fine_tuning/jobs`` like other APIs do: ``supported=False`` answers 404
        (an API without the list); ``fields`` (names) keeps only those fields of each entry (a
        summary list). The defaults restore full job objects."""
        with self._lock:
            self._list_supported = bool(supported)
            self._list_fields = None if fields is None else frozenset(fields)

    def set_down(self, down: bool) -> None:
        """While down, answer every request with a 503 HTML gateway page (API unavailable)."""
        with self._lock:
            self._down = bool(down)

    # ------------------------------------------------------------------ files, models, cancel

    def add_file(
        self, file_id: str | None = None, *, filename: str = "train.jsonl", size: int = 1024, **fields: Any
    ) -> dict[str, Any]:
        """Serve ``GET /v1/files/{id}`` for this file (others answer 404); returns the file object."""
        with self._lock:
            file_id = file_id or new_file_id()
            body = {
                "id": file_id,
                "object": "file",
                "bytes": size,
                "created_at": int(time.time()),
                "filename": filename,
                "purpose": "fine-tune",
                "status": "processed",
                **fields,
            }
            self._files[file_id] = body
            return copy.deepcopy(body)

    def set_files(self, *, supported: bool = True) -> None:
        """``supported=False``: ``GET /v1/files/{id}`` answers 404 for every file (an API without it)."""
        with self._lock:
            self._files_supported = bool(supported)

    def add_model(
        self,
        *,
        job_id: str,
        checkpoint_id: str | None = None,
        status: str = "active",
        name: str | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """List a custom model deployed from a job's checkpoint in ``GET /v0/models``."""
        with self._lock:
            entry = {
                "id": f"model-{uuid.uuid4().hex[:12]}",
                "object": "model",
                "name": name or f"custom-{uuid.uuid4().hex[:6]}",
                "job_id": job_id,
                "checkpoint_id": checkpoint_id,
                "status": status,
                **fields,
            }
            self._models.append(entry)
            return copy.deepcopy(entry)

    def add_base_model(self, name: str, *, training_price_per_million_tokens: Any = None, **fields: Any) -> dict:
        """List a base model in ``GET /v0/models`` with its model information: where
        ``training_price_per_million_tokens`` is given (any value, garbage too), the entry carries
        ``fine_tune.training_price_per_million_tokens``, as Token Factory documents it."""
        with self._lock:
            entry: dict[str, Any] = {"id": name, "object": "model", "owned_by": "nebius", **fields}
            if training_price_per_million_tokens is not None:
                entry.setdefault("fine_tune", {})["training_price_per_million_tokens"] = (
                    training_price_per_million_tokens
                )
            self._models.append(entry)
            return copy.deepcopy(entry)

    def set_models(self, *, status: int = 200) -> None:
        """Answer ``GET /v0/models`` with this status: 404 or 405 is an API without the endpoint."""
        with self._lock:
            self._models_status = int(status)

    def set_create_options(self, **options: Any) -> None:
        """How a job made by ``POST /v1/fine_tuning/jobs`` (the OpenAI SDK's
        ``client.fine_tuning.jobs.create``) progresses: :meth:`add_job`'s options, e.g.
        ``steps_per_call=50, total_steps=100``. It is visible to the key that made it only."""
        with self._lock:
            self._create_options = dict(options)

    def set_cancel(self, *, status: int = 200) -> None:
        """Answer ``POST .../cancel`` with this status: 404 or 405 is an API that cannot cancel."""
        with self._lock:
            self._cancel_status = int(status)

    # ------------------------------------------------------------------ call log

    @property
    def calls(self) -> list[Call]:
        """Every request received, in order (a snapshot copy)."""
        with self._lock:
            return list(self._calls)

    @property
    def job_calls(self) -> list[Call]:
        """The requests for jobs themselves (one job, or the list): what refreshing costs, without
        what rides along with a refresh (events, checkpoints, file names, deployed models)."""
        with self._lock:
            return [
                c
                for c in self._calls
                if c.path.startswith("/v1/fine_tuning/jobs") and not c.path.endswith(("/events", "/checkpoints"))
            ]

    def calls_with(self, token: str) -> list[Call]:
        """The requests that carried ``token`` as their bearer token."""
        with self._lock:
            return [c for c in self._calls if c.token == token]

    def calls_for(self, job_id: str, *, training_log: bool = False) -> list[Call]:
        """The requests that addressed ``job_id`` (the job itself or its sub-resources).

        The reads of its events and checkpoints, which ride along with a refresh, count only
        with ``training_log=True``: a refresh is one call of the job however its log is kept.
        """
        with self._lock:
            return [
                c
                for c in self._calls
                if c.job_id == job_id and (training_log or not c.path.endswith(("/events", "/checkpoints")))
            ]

    def reset_calls(self) -> None:
        """Forget recorded calls (and the in-flight high-water mark), e.g. after a test's setup phase."""
        with self._lock:
            self._calls.clear()
            self._max_in_flight = self._in_flight

    @property
    def max_in_flight(self) -> int:
        """The most requests the server was answering at the same moment (since reset_calls)."""
        with self._lock:
            return self._max_in_flight

    def _request_started(self) -> None:
        with self._lock:
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)

    def _request_ended(self) -> None:
        with self._lock:
            self._in_flight -= 1

    # ------------------------------------------------------------------ connections

    @property
    def connections_accepted(self) -> int:
        """How many TCP connections the server has accepted since it started."""
        with self._lock:
            return self._connections_accepted

    def close_idle_connections(self) -> int:
        """Close every kept-alive connection that is waiting for its next request, as a server
        does when its keep-alive timeout runs out; returns how many were closed."""
        with self._lock:
            idle = [handler for handler in self._open_handlers if handler.idle]
        for handler in idle:
            try:
                handler.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        return len(idle)

    def _connection_opened(self, handler: _Handler) -> None:
        with self._lock:
            self._connections_accepted += 1
            self._open_handlers.add(handler)

    def _connection_closed(self, handler: _Handler) -> None:
        with self._lock:
            self._open_handlers.discard(handler)

    # ------------------------------------------------------------------ internals: state

    def _wall(self, mono: float) -> float:
        """Epoch seconds corresponding to a monotonic instant."""
        return self._wall0 + (mono - self._mono0)

    def _get(self, job_id: str) -> _Job:
        try:
            return self._jobs[job_id]
        except KeyError:
            raise KeyError(f"no job {job_id!r} in the fake") from None

    def _add_event(self, job: _Job, created_at: int, level: str, message: str) -> None:
        job.events.append(
            {
                "id": "ftevent-" + uuid.uuid4().hex,
                "object": "fine_tuning.job.event",
                "created_at": int(created_at),
                "level": level,
                "message": message,
            }
        )

    def _status_event(self, job: _Job, status: str | None, at: int) -> None:
        """Record the event for a status change that happened at epoch second ``at``."""
        if status == "validating_files":
            self._add_event(job, at, "info", f"Validating training file: {job.body.get('training_file')}")
        elif status == "queued":
            self._add_event(job, at, "info", "Fine-tuning job queued")
        elif status == "running":
            self._add_event(job, at, "info", "Fine-tuning job started")
        elif status == "succeeded":
            self._add_event(job, at, "info", "Fine-tuning job successfully completed")
        elif status == "failed":
            error = job.body.get("error")
            message = error.get("message") if isinstance(error, dict) else None
            self._add_event(job, at, "error", f"Fine-tuning job failed: {message or 'unknown error'}")
        elif status == "cancelled":
            self._add_event(job, at, "warn", "Fine-tuning job cancelled")
        else:
            self._add_event(job, at, "info", f"Fine-tuning job status changed to {status}")

    def _seed_events(self, job: _Job) -> None:
        """A plausible history leading to the job's initial status (oldest first)."""
        body = job.body
        created = body["created_at"] if isinstance(body.get("created_at"), int) else int(time.time())
        status = body.get("status")
        self._add_event(job, created, "info", f"Created fine-tuning job: {body['id']}")
        if status == "validating_files":
            self._status_event(job, status, created)
            return
        self._status_event(job, "queued", created)
        if status in ("running", "succeeded", "failed"):
            self._status_event(job, "running", created)
        if status not in ("queued", "running"):
            finished = body.get("finished_at")
            self._status_event(job, status, finished if isinstance(finished, int) else created)

    def _advance(self, job: _Job, now: float, *, on_get: bool) -> None:
        """Bring a job's body up to date with its progression controls at monotonic time ``now``."""
        body = job.body
        if job.queued_until is not None:
            if now < job.queued_until:
                return
            started = job.queued_until
            job.queued_until = None
            body["status"] = "running"
            job.base_steps = int(body.get("trained_steps") or 0)
            job.base_time = started
            self._status_event(job, "running", int(self._wall(started)))
        if body.get("status") != "running" or not job.progressing:
            return
        if on_get:
            job.base_steps += job.steps_per_call
        steps = job.base_steps
        if job.steps_per_second > 0:
            steps += int(max(0.0, now - job.base_time) * job.steps_per_second)
        total = body.get("total_steps")
        stop_at = total if isinstance(total, int) else None
        if job.fail_with is not None and job.fail_at_step is not None:
            stop_at = job.fail_at_step if stop_at is None else min(stop_at, job.fail_at_step)
        finished = stop_at is not None and steps >= stop_at
        if finished:
            steps = stop_at
        body["trained_steps"] = steps
        body["trained_tokens"] = steps * job.tokens_per_step
        if not finished:
            if job.steps_per_second > 0 and isinstance(total, int):
                body["estimated_finish"] = int(self._wall(now) + (total - steps) / job.steps_per_second)
            return
        if job.steps_per_second > 0:
            finish_time = job.base_time + max(0, stop_at - job.base_steps) / job.steps_per_second
            finish_time = min(max(finish_time, job.base_time), now)
        else:
            finish_time = now
        self._end(job, finished_at=int(self._wall(finish_time)))

    def _finish_if_done(self, job: _Job, now: float) -> None:
        """End a job without progress controls that ``advance`` moved to its total (or failing) step."""
        body = job.body
        total = body.get("total_steps")
        stop_at = total if isinstance(total, int) else None
        if job.fail_with is not None and job.fail_at_step is not None:
            stop_at = job.fail_at_step if stop_at is None else min(stop_at, job.fail_at_step)
        if stop_at is None or body["trained_steps"] < stop_at:
            return
        body["trained_steps"] = job.base_steps = stop_at
        body["trained_tokens"] = stop_at * job.tokens_per_step
        self._end(job, finished_at=int(self._wall(now)))

    def _end(self, job: _Job, *, finished_at: int) -> None:
        """The job reached its last step: it fails if told to, else succeeds with a result file."""
        body = job.body
        body["finished_at"] = finished_at
        body["estimated_finish"] = None
        if job.fail_with is not None:
            body["status"] = "failed"
            body["error"] = copy.deepcopy(job.fail_with)
        else:
            body["status"] = "succeeded"
            if not body.get("result_files"):
                body["result_files"] = [new_file_id()]
        self._status_event(job, body["status"], body["finished_at"])

    def _cancel(self, job_id: str, token: str, *, now: float) -> _Response:
        if self._cancel_status != 200:
            detail = "Method Not Allowed" if self._cancel_status == 405 else "Not Found"
            return _json_response(self._cancel_status, {"detail": detail})
        job = self._jobs.get(job_id)
        if job is None or not self._visible(job, token):
            return _not_found("Fine-tuning job not found")
        self._advance(job, now, on_get=False)
        if job.body.get("status") not in TERMINAL_STATUSES:
            job.body["status"] = "cancelled"
            job.body["finished_at"] = int(self._wall(now))
            job.body["estimated_finish"] = None
            job.queued_until = None
            self._status_event(job, "cancelled", job.body["finished_at"])
        return _json_response(200, job.body)

    def _create(self, body: bytes, token: str) -> _Response:
        """``POST /v1/fine_tuning/jobs``: a new job from ``model`` and ``training_file`` (required,
        as the API has them), with the request's other fields served back."""
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            return _validation_error(["body"], "Input should be a valid JSON object")
        if not isinstance(request, dict):
            return _validation_error(["body"], "Input should be a valid JSON object")
        for required in ("model", "training_file"):
            if not isinstance(request.get(required), str) or not request[required]:
                return _validation_error(["body", required], "Field required")
        fields = {
            k: request[k]
            for k in ("model", "training_file", "validation_file", "suffix", "seed", "method")
            if k in request
        }
        if isinstance(request.get("hyperparameters"), dict):
            fields["hyperparameters"] = request["hyperparameters"]
        options = {"total_steps": 100, "trained_steps": 0, **self._create_options}
        job = self.add_job(token=token, **options, **fields)
        return _json_response(200, job)

    def _visible(self, job: _Job, token: str) -> bool:
        return job.token is None or job.token == token

    # ------------------------------------------------------------------ internals: HTTP

    def _handle(self, method: str, target: str, headers: Any, body: bytes = b"") -> _Response:
        """Turn one request into a response and record it; called from handler threads."""
        received = time.monotonic()
        now = self._clock()
        split = urlsplit(target)
        raw_path = split.path or "/"
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        token = _bearer_token(headers.get("Authorization"))
        # Split before decoding so that an encoded "/" (%2F) stays inside its segment.
        stripped = raw_path.strip("/")
        parts = [unquote(p) for p in stripped.split("/")] if stripped else []
        job_id: str | None = None
        route: str | None = None
        if parts[:3] == JOBS_PREFIX:
            if len(parts) == 3:
                route = "list"
            else:
                job_id = parts[3]
                if len(parts) == 4:
                    route = "job"
                elif len(parts) == 5 and parts[4] in ("events", "checkpoints", "cancel"):
                    route = parts[4]
        elif parts[:2] == ["v1", "files"] and len(parts) == 3:
            # Recorded like a job's ID, so calls_for(file_id) and fail_next(job_id=file_id) work.
            job_id, route = parts[2], "file"
        elif parts == ["v0", "models"]:
            route = "models"

        with self._lock:
            if self._down:
                response = _Response(503, _nginx_page(503), "text/html")
            else:
                failure = self._take_failure(job_id)
                if failure is not None and failure.kind not in ANSWERED_NORMALLY:
                    response = _failure_response(failure)
                else:
                    response = self._serve(method, route, job_id, query, token, now=now, body=body)
                    if failure is not None and failure.kind.startswith("dribble_"):
                        response.dribble = failure.delay
                        response.dribble_headers = failure.kind == "dribble_headers"
                        response.dribble_for = failure.dribble_for
                    elif failure is not None:
                        response.delay = failure.delay
                        response.hold = failure.hold
            if response.hold is None:
                response.delay += self._latency
            self._calls.append(
                Call(
                    method=method,
                    path=raw_path,
                    query=query,
                    token=token,
                    job_id=job_id,
                    status=0 if response.reset else response.status,
                    at=received,
                )
            )
        return response

    def _take_failure(self, job_id: str | None) -> _Failure | None:
        for failure in self._failures:
            if failure.job_id is None or failure.job_id == job_id:
                failure.remaining -= 1
                if failure.remaining <= 0:
                    self._failures.remove(failure)
                return failure
        return None

    def _serve(
        self,
        method: str,
        route: str | None,
        job_id: str | None,
        query: dict[str, str],
        token: str | None,
        *,
        now: float,
        body: bytes = b"",
    ) -> _Response:
        auth_headers = {"WWW-Authenticate": "Bearer"}
        if token is None:
            return _json_response(401, {"detail": "Not authenticated"}, auth_headers)
        if token not in self._tokens:
            return _json_response(401, {"detail": "Invalid API key"}, auth_headers)
        if route == "cancel" and method == "POST":
            return self._cancel(job_id or "", token, now=now)
        if route == "list" and method == "POST":
            return self._create(body, token)
        if method not in ("GET", "HEAD") or route in (None, "cancel"):
            return _not_found()
        if route == "file":
            file = self._files.get(job_id or "") if self._files_supported else None
            return _json_response(200, file) if file else _not_found("File not found")
        if route == "models":
            if self._models_status != 200:
                return _json_response(self._models_status, {"detail": "Not Found"})
            return _json_response(200, {"object": "list", "data": copy.deepcopy(self._models)})
        if route == "list":
            if not self._list_supported:
                return _not_found()
            visible = [j for j in reversed(self._jobs.values()) if self._visible(j, token)]  # newest first
            page = _paginate(visible, query, key=lambda j: j.body["id"])
            if isinstance(page, _Response):
                return page
            items, has_more = page
            for job in items:
                self._advance(job, now, on_get=False)
            fields = self._list_fields
            data = [{k: v for k, v in j.body.items() if fields is None or k in fields} for j in items]
            return _json_response(200, {"object": "list", "data": copy.deepcopy(data), "has_more": has_more})
        job = self._jobs.get(job_id or "")
        if job is None or not self._visible(job, token):
            return _not_found("Fine-tuning job not found")
        if route == "job":
            self._advance(job, now, on_get=True)
            return _json_response(200, job.body)
        self._advance(job, now, on_get=False)
        if not self._training_log_supported:
            return _not_found()
        if route == "checkpoints":
            # Newest first, as OpenAI lists them; first_id/last_id name the ends of this page.
            page = _paginate(list(reversed(job.checkpoints)), query, key=lambda c: c["id"])
            if isinstance(page, _Response):
                return page
            checkpoints, has_more = page
            return _json_response(
                200,
                {
                    "object": "list",
                    "data": checkpoints,
                    "first_id": checkpoints[0]["id"] if checkpoints else None,
                    "last_id": checkpoints[-1]["id"] if checkpoints else None,
                    "has_more": has_more,
                },
            )
        events = list(reversed(job.events)) if self._events_newest_first else job.events
        page = _paginate(events, query, key=lambda e: e["id"])
        if isinstance(page, _Response):
            return page
        events, has_more = page
        return _json_response(200, {"object": "list", "data": events, "has_more": has_more})


def _bearer_token(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def _paginate(items: list[Any], query: dict[str, str], *, key: Any) -> tuple[list[Any], bool] | _Response:
    """OpenAI-style ``after`` (an id) + ``limit`` pagination; an unknown ``after`` gives an empty page."""
    raw_limit = query.get("limit")
    limit = DEFAULT_PAGE_LIMIT
    if raw_limit is not None:
        try:
            limit = int(raw_limit)
        except ValueError:
            return _validation_error(["query", "limit"], "Input should be a valid integer")
        if not 1 <= limit <= MAX_PAGE_LIMIT:
            return _validation_error(["query", "limit"], f"Input should be between 1 and {MAX_PAGE_LIMIT}")
    after = query.get("after")
    if after:
        ids = [key(item) for item in items]
        items = items[ids.index(after) + 1 :] if after in ids else []
    return items[:limit], len(items) > limit


#: The kinds whose answer is the normal one, sent late or slowly.
ANSWERED_NORMALLY = frozenset({"timeout", "hold", "dribble_headers", "dribble_body"})


def _huge_job(size: int) -> Iterator[bytes]:
    """A JSON job object of exactly ``size`` bytes (at least 100), padded with one long field."""
    head = b'{"id": "ftjob-huge", "object": "fine_tuning.job", "status": "running", "padding": "'
    tail = b'"}'
    yield head
    left = size - len(head) - len(tail)
    block = b"x" * 65536
    while left > 0:
        yield block[:left]
        left -= len(block)
    yield tail


def _gzipped(chunks: Iterator[bytes]) -> Iterator[bytes]:
    compressor = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)  # the gzip format
    for chunk in chunks:
        if out := compressor.compress(chunk):
            yield out
    yield compressor.flush()


def _failure_response(failure: _Failure) -> _Response:
    kind = failure.kind
    if kind == "reset":
        return _Response(0, reset=True)
    if kind in ("huge", "huge_chunked", "huge_gzip"):
        size = max(failure.size, 100)
        if kind == "huge":
            return _Response(200, chunks=lambda: _huge_job(size), length=size)
        if kind == "huge_chunked":
            return _Response(200, chunks=lambda: _huge_job(size))
        return _Response(200, chunks=lambda: _gzipped(_huge_job(size)), headers={"Content-Encoding": "gzip"})
    if kind == "401":
        response = _json_response(401, {"detail": "Invalid API key"}, {"WWW-Authenticate": "Bearer"})
    elif kind == "403":
        response = _json_response(403, {"detail": "Invalid API key: not allowed to access this project"})
    elif kind == "404":
        response = _json_response(404, {"detail": "Not found"})
    elif kind == "422":
        response = _validation_error(["path", "job_id"], "Invalid fine-tuning job id")
    elif kind == "429":
        response = _json_response(429, {"detail": "Rate limit exceeded"}, {"x-ratelimit-remaining-requests": "0"})
    elif kind == "500":
        response = _json_response(500, {"detail": "Internal Server Error"})
    elif kind == "503":
        response = _json_response(503, {"detail": "Service temporarily unavailable"})
    elif kind in ("502", "504"):
        response = _Response(int(kind), _nginx_page(int(kind)), "text/html")
    elif kind == "html":
        response = _Response(
            200,
            b"<html><head><title>Gateway</title></head><body><h1>API gateway</h1>"
            b"<p>Please sign in to continue.</p></body></html>",
            "text/html; charset=utf-8",
        )
    elif kind == "not_json":
        response = _Response(200, b'{"id": "ftjob-', "application/json")
    elif kind == "wrong_shape":
        response = _json_response(200, [{"object": "fine_tuning.job"}])
    elif kind == "missing_fields":
        response = _json_response(200, {"object": "fine_tuning.job", "message": "ok"})
    else:  # pragma: no cover - guarded by fail_next
        raise ValueError(kind)
    if failure.retry_after is not None:
        response.headers["Retry-After"] = str(failure.retry_after)
    return response


class _Server(PromptServer):
    daemon_threads = True  # a hung or sleeping handler never blocks stop() or interpreter exit
    block_on_close = False
    request_queue_size = 128  # the default backlog of 5 stalls concurrent clients for a 1 s SYN retry
    fake: FakeTokenFactory

    def server_bind(self) -> None:
        # Skip HTTPServer.server_bind's socket.getfqdn(), which can stall on a badly set up resolver.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = host, port

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return  # the client went away (e.g. it timed out first); nothing to report
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    # Keep-alive, as the real API behind its gateway: the client's pooled connections are
    # reused, and every answer carries a Content-Length so the client knows where it ends.
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle's algorithm the body would then wait
    # for the client's delayed ACK (40 ms) on every reused connection.
    disable_nagle_algorithm = True
    server_version = "fake-tokenfactory"
    sys_version = ""
    timeout = 30  # an idle kept-alive connection is closed after this long
    server: _Server
    idle = True  # waiting for the next request on this connection

    def setup(self) -> None:
        super().setup()
        self.server.fake._connection_opened(self)

    def finish(self) -> None:
        self.server.fake._connection_closed(self)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced so test output stays clean."""

    def _dispatch(self) -> None:
        self.idle = False
        self.server.fake._request_started()
        try:
            self._answer()
        finally:
            self.server.fake._request_ended()
            self.idle = True

    def _answer(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(min(length, 10_000_000)) if length > 0 else b""
            response = self.server.fake._handle(self.command, self.path, self.headers, body)
        except Exception:  # a bug in the fake must not look like a network problem
            traceback.print_exc()
            response = _json_response(500, {"detail": "fake_tokenfactory crashed:\n" + traceback.format_exc()})
        if response.reset:
            self.close_connection = True
            try:  # SO_LINGER 0 makes close() send an RST: the client sees "connection reset"
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
            self.connection.close()
            return
        if response.hold is not None:
            response.hold.wait(timeout=response.delay)
        elif response.delay > 0:
            time.sleep(response.delay)
        if response.dribble or response.chunks is not None:
            self._send_as_made(response)
            return
        try:
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(response.body)
        except (ConnectionError, TimeoutError):
            self.close_connection = True

    def _send_as_made(self, response: _Response) -> None:
        """A dribbled or a made-as-sent answer, written byte by byte or chunk by chunk."""
        headers = {"Content-Type": response.content_type, **response.headers}
        if response.chunks is None:
            headers["Content-Length"] = str(len(response.body))
        elif response.length is not None:
            headers["Content-Length"] = str(response.length)
        else:
            headers["Transfer-Encoding"] = "chunked"
        head = f"HTTP/1.1 {response.status} {self.responses[response.status][0]}\r\n"
        head += "".join(f"{name}: {value}\r\n" for name, value in headers.items()) + "\r\n"
        dribble_until = time.monotonic() + response.dribble_for

        def send(data: bytes, *, dribbled: bool) -> None:
            for at in range(len(data)):
                if not (dribbled and response.dribble and time.monotonic() < dribble_until):
                    self.wfile.write(data[at:])
                    return
                self.wfile.write(data[at : at + 1])
                time.sleep(response.dribble)

        try:
            send(head.encode("latin-1"), dribbled=response.dribble_headers)
            if self.command == "HEAD":
                return
            if response.chunks is None:
                send(response.body, dribbled=True)
            elif response.length is not None:
                for chunk in response.chunks():
                    send(chunk, dribbled=True)
            else:
                for chunk in response.chunks():
                    send(b"%x\r\n%s\r\n" % (len(chunk), chunk), dribbled=True)
                send(b"0\r\n\r\n", dribbled=True)
        except (ConnectionError, TimeoutError):
            self.close_connection = True  # the client gave up, as it should

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _dispatch


# ---------------------------------------------------------------------- standalone demo

DEMO_TOKEN = "demo-token"


def seed_demo_jobs(fake: FakeTokenFactory, *, token: str | None = None) -> dict[str, str]:
    """Seed a varied set of jobs (for trying ftdash by hand, and the README screenshots);
    returns {description: job_id}. Descriptions start with the job's status."""
    now = int(time.time())
    # Model information with training prices (Qwen3-32B has none: its jobs say "No training price").
    fake.add_base_model("Qwen/Qwen3-4B", training_price_per_million_tokens=0.4)
    fake.add_base_model("meta-llama/Llama-3.1-8B-Instruct", training_price_per_million_tokens=0.4)
    supervised_lora = {
        "type": "supervised",
        "supervised": {"hyperparameters": default_hyperparameters()},
    }
    jobs: dict[str, str] = {}
    jobs["running (40% done, finishes in ~2 minutes, W&B + HF)"] = fake.add_job(
        token=token,
        model="Qwen/Qwen3-4B",
        suffix="support-bot",
        created_at=now - 1_260,
        total_steps=360,
        trained_steps=144,
        steps_per_second=2,
        method=supervised_lora,
        integrations=[
            {
                "type": "wandb",
                "wandb": {
                    "project": "ftdash-demo",
                    "entity": "acme-ml",
                    "name": "support-bot-qwen3-4b",
                    "tags": ["demo"],
                },
            },
            {"type": "hf", "hf": {"output_repo_name": "acme-ml/support-bot-qwen3-4b"}},
        ],
    )["id"]
    jobs["queued for 30 s, then running for ~2 minutes"] = fake.add_job(
        token=token,
        model="meta-llama/Llama-3.1-8B-Instruct",
        suffix="faq-v2",
        total_steps=120,
        queued_for_seconds=30,
        steps_per_second=1,
        method=supervised_lora,
        from_checkpoint={"type": "hf", "repo": "acme-ml/faq-v1", "revision": "main"},
    )["id"]
    jobs["succeeded (MLflow)"] = fake.add_job(
        token=token,
        model="meta-llama/Llama-3.1-8B-Instruct",
        suffix="summarizer",
        status="succeeded",
        created_at=now - 86_400,
        finished_at=now - 86_400 + 5_400,
        total_steps=500,
        trained_steps=500,
        trained_tokens=500 * 4096,
        integrations=[
            {
                "type": "mlflow",
                "mlflow": {
                    "tracking_uri": "https://mlflow.example.com",
                    "experiment_name": "summarizer",
                    "run_name": "llama-8b-lora",
                    "tags": {"team": "ml"},
                },
            }
        ],
    )["id"]
    jobs["failed with an error"] = fake.add_job(
        token=token,
        model="Qwen/Qwen3-4B",
        suffix="broken-data",
        status="failed",
        created_at=now - 3_600,
        finished_at=now - 3_300,
        total_steps=None,
        trained_steps=0,
        error={
            "code": "invalid_training_file",
            "message": "Line 17 of the training file: expected a 'messages' list",
            "param": "training_file",
        },
    )["id"]
    jobs["spec-draft (speculative decoding drafter)"] = fake.add_job(
        token=token,
        model="Qwen/Qwen3-32B",
        suffix="drafter",
        status="running",
        total_steps=200,
        trained_steps=40,
        steps_per_second=0.5,
        hyperparameters=None,
        method={
            "type": "spec-draft",
            "spec_draft": {
                "hyperparameters": {
                    "batch_size": 8,
                    "learning_rate": 0.0075,
                    "n_epochs": 1,
                    "warmup_ratio": 0.0,
                    "weight_decay": 0.0,
                    "packing": True,
                    "max_grad_norm": 1.0,
                    "context_length": 8192,
                    "architecture": "eagle3_original",
                    "num_decoding_heads": 3,
                    "loss": {"type": "kl"},
                }
            },
        },
    )["id"]
    return jobs


def main(argv: list[str] | None = None) -> int:
    """Run the fake in the foreground with demo jobs until Ctrl-C."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.support.fake_tokenfactory",
        description="A fake Token Factory fine-tuning API for trying ftdash without a real API key.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    args = parser.parse_args(argv)
    # Ctrl-C stops it even when a script started it in the background, which ignores SIGINT
    # (and so would Python, which then installs no KeyboardInterrupt handler of its own).
    signal.signal(signal.SIGINT, signal.default_int_handler)

    fake = FakeTokenFactory()
    fake.add_token(DEMO_TOKEN)
    jobs = seed_demo_jobs(fake)
    fake.start(host=args.host, port=args.port)
    print(f"Fake Token Factory listening on {fake.url}", flush=True)
    print(f"API key (bearer token): {DEMO_TOKEN}", flush=True)
    for description, job_id in jobs.items():
        print(f"  {job_id}  {description}", flush=True)
    print("Press Ctrl-C to stop.", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print("\nStopping.", flush=True)
    finally:
        fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
