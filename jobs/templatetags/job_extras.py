"""Looking up one file among those a job page was handed (jobs.selectors.job_page reads them
from the shared cache, never from the network)."""

from __future__ import annotations

from django import template

register = template.Library()


@register.filter
def file_of(known: dict, file_id):
    return known.get(file_id) if isinstance(known, dict) else None
