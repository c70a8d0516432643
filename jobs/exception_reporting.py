"""Error reports (the debug page, error emails) that never show an API key.

Django hides settings and POST data it recognises as secret, and the locals of functions
marked `sensitive_variables`. A key on its way to Token Factory also sits in frames of
`requests`, `urllib3` and `http.client` (a headers dict, a prepared request, the header line
being written); any local whose text holds an Authorization header is hidden too.
"""

from __future__ import annotations

import re

from django.views.debug import SafeExceptionReporterFilter

CREDENTIAL_PATTERN = re.compile(r"bearer\s|authorization", re.IGNORECASE)


class CredentialScrubbingFilter(SafeExceptionReporterFilter):
    def get_traceback_frame_variables(self, request, tb_frame):
        return [
            (name, self.cleansed_substitute if _carries_credentials(value) else value)
            for name, value in super().get_traceback_frame_variables(request, tb_frame)
        ]


def _carries_credentials(value) -> bool:
    try:
        text = value.decode("latin-1") if isinstance(value, (bytes, bytearray)) else repr(value)
    except Exception:
        return True  # what cannot be inspected is not shown
    return bool(CREDENTIAL_PATTERN.search(text))
