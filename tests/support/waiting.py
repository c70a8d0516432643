"""Waiting for something another thread or process does: `wait_for(condition)`, with a deadline."""

from __future__ import annotations

import time


def wait_for(condition, timeout: float = 30.0, what: str = "condition"):
    """Poll `condition` until it returns something truthy, and return that.

    The deadline is generous on purpose: it only matters when something is broken, and a
    loaded 2-core CI machine can be many times slower than a laptop."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
