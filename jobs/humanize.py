"""Lengths of time in words short enough for a card: "12 s", "5 min", "3 h 20 min", "2 d 4 h"."""


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
    round to zero cents without being zero (so a cheap run never reads as free)."""
    if amount is None:
        return ""
    if 0 < amount < 0.005:
        return "< $0.01"
    return f"${amount:,.2f}"
