"""Invite links are secrets: the redaction of the request logs shows an invite's ID, never the
secret in its path, and leaves every other path alone. A real server's logs:
tests/processes/test_request_logs.py.
"""

from __future__ import annotations

from ftdash.log_redaction import redact


def test_redaction_leaves_other_paths_alone():
    assert redact("GET /teams/3/invites/ HTTP/1.1") == "GET /teams/3/invites/ HTTP/1.1"
    assert redact("GET /ftdash/invite/abc_DEF-123/?x=1", 7) == "GET /ftdash/invite/[id=7]/?x=1"
    assert redact('"https://h/ftdash/invite/abc"') == '"https://h/ftdash/invite/[redacted]"'
