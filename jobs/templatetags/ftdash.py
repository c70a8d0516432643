"""Filters for times and for a job's live state (how old, how often polled, whether due): pure
functions of what the template already holds, never a query."""

from __future__ import annotations

import datetime as dt

from django import template
from django.utils import timezone

from jobs.humanize import span
from jobs.live import job_version
from jobs.sync.refresh import base_interval, is_due, refresh_interval

register = template.Library()


@register.filter
def ago(value: dt.datetime | None) -> str:
    """“12 s ago”, “5 min ago”: precise enough to see that a live view is live."""
    if not value:
        return "never"
    return f"{span((timezone.now() - value).total_seconds())} ago"


@register.filter
def relative(value: dt.datetime | None) -> str:
    """“in 12 min” for the future, “5 min ago” for the past."""
    if not value:
        return ""
    seconds = (value - timezone.now()).total_seconds()
    return f"in {span(seconds)}" if seconds > 0 else f"{span(seconds)} ago"


@register.filter
def duration(value: dt.timedelta | None) -> str:
    if value is None:
        return "—"
    return span(value.total_seconds())


@register.filter
def poll_seconds(job) -> int:
    """How often a page asks for this job's fragment: as often as its snapshot may change."""
    interval = base_interval(job.status)
    return int(interval.total_seconds()) if interval else 0


@register.filter
def refresh_due(job) -> bool:
    return is_due(job)


@register.filter
def live_version(job) -> str:
    return job_version(job)


@register.filter
def retry_wait(job) -> str:
    interval = refresh_interval(job)
    return span(interval.total_seconds()) if interval else "—"
