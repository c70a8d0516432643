"""Training prices on pages: written as people write them (jobs.pricing.price_text)."""

from __future__ import annotations

from django import template

from jobs.pricing import price_text as _price_text

register = template.Library()


@register.filter
def price_text(value) -> str:
    """ "0.4", "10", "0.0035": a price per 1M tokens as written, or "" for none."""
    if value is None or value == "":
        return ""
    return _price_text(value)
