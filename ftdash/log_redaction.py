"""Keeping invite secrets out of request logs (Django's loggers and gunicorn's access log).

An invite link's path *is* the invite: whoever reads `/invite/<secret>/` in a log can join
the team. Every line that would carry one shows `/invite/[id=12]/` instead, when the view
has recognised the invite (it leaves the ID in the WSGI environ, which gunicorn's access log
reads after the response), or `/invite/[redacted]/` for a secret that matched nothing.
The Referer of the request after an invite page carries the same path, so it is redacted too.

A read-only share link's path is a secret the same way (`/share/<key>/` opens its job's page,
`/share/<key>/live/` its poll): it always shows as `/share/[redacted]/`. (Status badge keys,
`/badge/<key>.svg`, are meant to be pasted in public places and are left as they are.)

A workspace's Prometheus metrics key in a scrape's path (`/metrics/<key>`) is shown as
`/metrics/[redacted]` the same way.
"""

from __future__ import annotations

import logging
import re

from gunicorn.glogging import Logger as GunicornLogger

# Set by jobs.views.accounts.invite_accept in request.META, which is the WSGI environ itself.
INVITE_ID_KEY = "ftdash.invite_id"
_INVITE_PATH = re.compile(r"(/invite/)([^/?#\s\"']+)")
_SHARE_PATH = re.compile(r"(/share/)([^/?#\s\"']+)")


# A Prometheus metrics key in the path (`/metrics/<key>`) is a secret too; /metrics/instance is not.
_METRICS_PATH = re.compile(r"(/metrics/)(?!instance(?:[?#\s\"']|$))([^/?#\s\"']+)")


def redact(text: str, invite_id: int | None = None) -> str:
    if "/share/" in text:
        text = _SHARE_PATH.sub(lambda match: match.group(1) + "[redacted]", text)
    if "/metrics/" in text:
        text = _METRICS_PATH.sub(lambda match: match.group(1) + "[redacted]", text)
    if "/invite/" not in text:
        return text
    shown = f"[id={invite_id}]" if invite_id is not None else "[redacted]"
    return _INVITE_PATH.sub(lambda match: match.group(1) + shown, text)


class RedactInviteSecrets(logging.Filter):
    """For handlers: rewrites any log line that quotes an invite link's path."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "/invite/" in message or "/share/" in message or "/metrics/" in message:
            meta = getattr(getattr(record, "request", None), "META", None) or {}
            record.msg, record.args = redact(message, meta.get(INVITE_ID_KEY)), ()
        return True


class RedactingGunicornLogger(GunicornLogger):
    """gunicorn's logger, with invite secrets taken out of every access-log field."""

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        invite_id = environ.get(INVITE_ID_KEY)
        return {key: redact(value, invite_id) if isinstance(value, str) else value for key, value in atoms.items()}
