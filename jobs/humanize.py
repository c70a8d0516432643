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
