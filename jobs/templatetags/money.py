"""Money on pages: sums of US dollars and training prices, written the one way
(`jobs.humanize.usd`, `jobs.pricing.price_text`). They only format what views hand them."""

from __future__ import annotations

from django import template

from jobs.humanize import usd as _usd
from jobs.pricing import price_text as _price_text

register = template.Library()


@register.filter
def usd(amount) -> str:
    """US dollars as jobs.humanize.usd writes them ("$1,234.56"); "$0.00" for nothing spent."""
    return _usd(amount) or "$0.00"


@register.filter
def price_text(value) -> str:
    """ "0.40", "10.00", "0.0035": a price per 1M tokens, or "" for none."""
    if value is None or value == "":
        return ""
    return _price_text(value)


@register.filter
def plain_number(amount) -> str:
    """A number for an HTML attribute (a <meter>'s value): no thousands separator, no locale."""
    return "" if amount is None else f"{amount:f}" if hasattr(amount, "as_tuple") else str(amount)


@register.filter
def percent_of(amount, percent) -> str:
    """`percent`% of `amount`, for an HTML attribute (a <meter>'s `high` mark)."""
    if amount is None:
        return ""
    return plain_number(amount * int(percent) / 100)
