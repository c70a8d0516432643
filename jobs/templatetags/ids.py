"""Long upstream IDs that wrap where a reader would split them, never mid-token.

``ftjob-`` + 32 hex digits or ``file-<uuid>`` is wider than a phone's screen at heading size.
Left alone the browser either overflows the page or, with ``overflow-wrap: anywhere``, cuts the
ID at an arbitrary character. A ``<wbr>`` after each separator lets it break between the parts
instead; it adds no text, so copying or reading the ID gives it unchanged.
"""

from __future__ import annotations

import re

from django import template
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

register = template.Library()

_AFTER_SEPARATOR = re.compile(r"(?<=[-_/@.])")


@register.filter
def breakable_id(value) -> SafeString:
    """The ID, escaped, with a line-break opportunity after each ``- _ / @ .``."""
    parts = _AFTER_SEPARATOR.split(str(value if value is not None else ""))
    return mark_safe("<wbr>".join(escape(part) for part in parts))
