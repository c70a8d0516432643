"""What every answer of ftdash carries against framing and injected scripts, even one made
before any view runs (a bad Host, a missing page): for the in-process and the real-server tests."""

from __future__ import annotations


def assert_framing_and_policy(response) -> None:
    assert response.headers["X-Frame-Options"] == "DENY"
    policy = response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in policy and "script-src 'self'" in policy
