"""Status badges: their keys, and what a job's or a workspace's badge says.

A badge's URL (`/badge/<key>.svg`, `.json`, `.shields`) is public by design (a README, a chat
topic), so its key must be unguessable, yet stable enough to paste once: it is an HMAC, as
healthchecks' badge keys are, over the object's ID and a rotation counter kept on the row,
keyed by a key derived from SECRET_KEY (`salted_hmac` with a salt of its own). Nothing about
the key is stored; "Rotate badge key" bumps the counter and every old URL stops answering.
The key starts with the object's kind and ID (`j12-…`, `w3-…`), so that a badge costs one
query, and is checked against SECRET_KEY and SECRET_KEY_FALLBACKS (keys keep working through
a rotation of SECRET_KEY that keeps the old one as a fallback) in constant time.

A badge shows a label, a message and a colour, and nothing else: no job ID, no token, no cost.
"""

from __future__ import annotations

import dataclasses
import re

from django.conf import settings
from django.utils.crypto import constant_time_compare, salted_hmac

from jobs.finetuning import FineTuningJob

_SALT = "ftdash.badges"
# 32 hex digits: 128 bits of the HMAC-SHA256.
_MAC_LENGTH = 32
_KEY = re.compile(rf"([jw])([0-9]{{1,18}})-([0-9a-f]{{{_MAC_LENGTH}}})")
JOB, WORKSPACE = "j", "w"
FORMATS = ("svg", "json", "shields")


def _mac(kind: str, pk: int, rotation: int, secret: str) -> str:
    return salted_hmac(_SALT, f"{kind}:{pk}:{rotation}", secret=secret, algorithm="sha256").hexdigest()[:_MAC_LENGTH]


def key_for(kind: str, pk: int, rotation: int) -> str:
    """The badge key of the job (`JOB`) or workspace (`WORKSPACE`) with this ID and counter."""
    return f"{kind}{pk}-{_mac(kind, pk, rotation, settings.SECRET_KEY)}"


def job_key(job) -> str:
    return key_for(JOB, job.pk, job.badge_rotation)


def workspace_key(workspace) -> str:
    return key_for(WORKSPACE, workspace.pk, workspace.badge_rotation)


@dataclasses.dataclass(frozen=True)
class ParsedKey:
    kind: str
    pk: int
    mac: str

    def matches(self, rotation: int) -> bool:
        """Whether the key is the one of its object with this rotation counter (constant time)."""
        secrets = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
        # Every secret is tried, whichever matches: the time does not tell which one did.
        found = [constant_time_compare(self.mac, _mac(self.kind, self.pk, rotation, secret)) for secret in secrets]
        return any(found)


def parse_key(key: str) -> ParsedKey | None:
    """The kind, ID and MAC of a badge key, or None if it is not shaped like one."""
    match = _KEY.fullmatch(key)
    if match is None:
        return None
    return ParsedKey(kind=match[1], pk=int(match[2]), mac=match[3])


# shields.io's named colours, and the hex values its flat style draws them with.
COLOURS = {
    "brightgreen": "#4c1",
    "blue": "#007ec6",
    "yellow": "#dfb317",
    "orange": "#fe7d37",
    "red": "#e05d44",
    "lightgrey": "#9f9f9f",
}
STATUS_COLOURS = {
    "succeeded": "brightgreen",
    "running": "blue",
    "validating_files": "yellow",
    "queued": "yellow",
    "failed": "red",
    "cancelled": "lightgrey",
    "canceled": "lightgrey",
}
LABEL_MAX = 60  # characters of a label drawn in the SVG (the JSON formats carry it whole)


@dataclasses.dataclass(frozen=True)
class Badge:
    label: str
    message: str
    colour: str  # one of COLOURS
    status: str
    progress: int | None = None
    extra: dict = dataclasses.field(default_factory=dict)

    def as_json(self) -> dict:
        return {"status": self.status, "progress": self.progress, "label": self.label, **self.extra}

    def as_shields(self) -> dict:
        """shields.io's endpoint badge format (https://shields.io/badges/endpoint-badge)."""
        return {"schemaVersion": 1, "label": self.label, "message": self.message, "color": self.colour}

    def drawing(self) -> dict:
        """What templates/badges/badge.svg draws: the texts and the widths they need."""
        label = self.label if len(self.label) <= LABEL_MAX else self.label[: LABEL_MAX - 1] + "…"
        left, right = text_width(label) + 10, text_width(self.message) + 10
        return {
            "label": label,
            "message": self.message,
            "fill": COLOURS[self.colour],
            "left": left,
            "right": right,
            "width": left + right,
            "label_x": left / 2,
            "message_x": left + right / 2,
        }


_NARROW = set("fijlrtI.,:;!|'()[] ")
_WIDE = set("mwMW%@")


def text_width(text: str) -> int:
    """About how wide `text` is in 11 px Verdana, shields' font (wide enough, never clipped)."""
    width = 0.0
    for char in text:
        if char in _NARROW:
            width += 4.0
        elif char in _WIDE:
            width += 10.5
        elif char.isupper() or char.isdigit():
            width += 7.5
        else:
            width += 7.0
    return int(width + 0.999)


def job_badge(*, label: str, details: FineTuningJob) -> Badge:
    """A job's badge: its label (else its suffix, else "fine-tuning"), status and percent."""
    status = details.status or "unknown"
    percent = details.progress_percent
    message = details.status_label or "unknown"
    if percent is not None and not details.is_terminal:
        message += f" {percent}%"
    return Badge(
        label=label or details.suffix or "fine-tuning",
        message=message,
        colour=STATUS_COLOURS.get(status, "lightgrey"),
        status=status,
        progress=percent,
    )


def workspace_badge(*, name: str, running: int, failed: int) -> Badge:
    """A workspace's badge: how many of its jobs run, and how many failed."""
    status = "failed" if failed else "running" if running else "idle"
    colour = "red" if failed else "blue" if running else "brightgreen"
    return Badge(
        label=name,
        message=f"{running} running, {failed} failed",
        colour=colour,
        status=status,
        extra={"running": running, "failed": failed},
    )
