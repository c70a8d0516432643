"""Short words for a card: lengths of time ("12 s", "5 min", "3 h 20 min", "2 d 4 h") and sums of US dollars."""

from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")


def span(seconds: float) -> str:
    seconds = int(abs(seconds))
    if seconds < 90:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 90:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{hours // 24} d {hours % 24} h"


def usd(amount) -> str:
    """A sum of US dollars for a page: "$1,234.56", "$0.51", and "< $0.01" for a sum that would
    round to zero cents without being zero (so a cheap run never reads as free). Cents are
    rounded half up, as money is ($0.125 is $0.13), whatever the type of `amount`."""
    if amount is None:
        return ""
    value = amount if isinstance(amount, Decimal) else Decimal(str(amount))
    if not value.is_finite():
        return ""
    cents = value.quantize(CENT, rounding=ROUND_HALF_UP)
    if value > 0 and cents == 0:
        return "< $0.01"
    return f"-${-cents:,.2f}" if cents < 0 else f"${cents:,.2f}"
