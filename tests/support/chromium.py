"""Debian's Chromium, driven by Playwright: shared by the browser and proxy end-to-end tests."""

from __future__ import annotations

import os

import pytest

CHROMIUM = "/usr/bin/chromium"
# Headless as root, with nothing that phones home (the machine has no network beyond loopback).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 10_000


def unavailable(message: str) -> None:
    """Skip locally; fail in CI (FTDASH_REQUIRE_BROWSER=1), where a skipped test counts as missing."""
    if os.environ.get("FTDASH_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{message} (FTDASH_REQUIRE_BROWSER=1, so this is an error)", pytrace=False)
    pytest.skip(message)
