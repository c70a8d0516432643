from __future__ import annotations

import datetime as dt

from django.http import HttpRequest
from django.utils import timezone
from django.utils.functional import SimpleLazyObject


def csp_nonce(request: HttpRequest) -> dict:
    """The request's CSP nonce ({% htmx_script %} puts it on its script tags)."""
    return {"csp_nonce": getattr(request, "csp_nonce", "")}


def worker_status(request: HttpRequest) -> dict:
    """Whether a `poll_jobs` worker checked in lately; queried only if a page shows it."""

    def status() -> dict:
        from jobs.selectors import worker_last_seen

        seen = worker_last_seen()
        return {"seen": seen, "active": bool(seen and timezone.now() - seen < dt.timedelta(minutes=2))}

    return {"worker": SimpleLazyObject(status)}
