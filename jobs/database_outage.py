"""What ftdash does while its database cannot be reached (PostgreSQL restarting, a file gone).

Pages and polls answer 503 with a short page that needs no database (`DatabaseOutageMiddleware`),
and the worker waits and resumes (`poll_jobs` goes on to its next round). The log hears of it
once per outage and process, not once per request, round or job: the first failure is logged
as one line, every later log record whose exception is the same outage is dropped
(`OneLinePerOutage`, a filter on the log handler, so the modules that catch database errors
keep logging them plainly), and the first connection that works again (Django's
`connection_created` signal) logs that the database is back.

Only a database that cannot be reached counts as an outage: a lost or refused connection, a
server shutting down or starting up, an SQLite file that cannot be opened. A deadlock or a
bad query is a bug or a conflict, and stays an error like any other.
"""

from __future__ import annotations

import logging
import sqlite3
import sys
import threading
import time

from django.db import InterfaceError, OperationalError
from django.db.backends.signals import connection_created
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string

logger = logging.getLogger(__name__)

# How long a browser (static/js/live.js) or a proxy should wait before asking again.
RETRY_AFTER_SECONDS = 10

# SQLSTATE classes of a server that is gone or not there yet: 08 connection exceptions, and
# 57P01-57P03 (shut down by an administrator, crashed, cannot connect now).
_UNREACHABLE_SQLSTATES = ("08", "57P01", "57P02", "57P03")


def is_outage(exc: BaseException) -> bool:
    """Whether `exc` says the database cannot be reached right now."""
    # Only a process that uses PostgreSQL has imported psycopg (10 MB resident a process), and
    # only such a process can meet its errors.
    psycopg = sys.modules.get("psycopg")
    if isinstance(exc, InterfaceError) or (psycopg and isinstance(exc, psycopg.InterfaceError)):
        return True  # a connection already closed under us
    if isinstance(exc, OperationalError) and exc.__cause__ is not None:
        exc = exc.__cause__  # Django wraps the driver's error; the driver's own says what happened
    if isinstance(exc, sqlite3.OperationalError):
        return "unable to open database" in str(exc)
    if psycopg and isinstance(exc, psycopg.OperationalError):
        # No SQLSTATE: libpq's own failures (refused, reset, "server closed the connection").
        return exc.sqlstate is None or exc.sqlstate.startswith(_UNREACHABLE_SQLSTATES)
    return False


class _Outage:
    """This process's view of the current outage, shared by its threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._since: float | None = None

    def noticed(self, exc: BaseException) -> None:
        with self._lock:
            if self._since is not None:
                return
            self._since = time.monotonic()
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        logger.warning(
            "ftdash cannot reach its database (%s); pages answer 503 and the worker waits until it is back", reason
        )

    def connected(self, **kwargs) -> None:
        with self._lock:
            since, self._since = self._since, None
        if since is not None:
            logger.info("the database answers again after %.0f s", time.monotonic() - since)


_outage = _Outage()
connection_created.connect(_outage.connected, dispatch_uid="jobs.database_outage")


class OneLinePerOutage(logging.Filter):
    """Turns log records about an unreachable database into one line per outage."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is None or not is_outage(exc):
            return True
        _outage.noticed(exc)
        return False


def outage_answer(exc: BaseException) -> HttpResponse | None:
    """The 503 page if `exc` shows the database unreachable (logged once per outage), else None.

    The page is rendered with no request, so it needs no session, user or query."""
    if not is_outage(exc):
        return None
    _outage.noticed(exc)
    response = HttpResponse(render_to_string("database_unavailable.html"), status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    response["Cache-Control"] = "no-store"
    # Logged once per outage above, not once per request by django.request.
    response._has_been_logged = True
    return response


class DatabaseOutageMiddleware:
    """Answer 503 instead of 500 to a request that failed because the database is unreachable.

    Django turns an exception into a response at each middleware layer, so this works through
    `process_exception`: it sees what the view raised, and the view is where the session and the
    user are first read (they are lazy), as are the queries of the page and its template. A
    middleware that reads the database itself answers with `outage_answer` (see
    jobs.middleware.ProxyRemoteUserMiddleware).
    """

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        return outage_answer(exception)
