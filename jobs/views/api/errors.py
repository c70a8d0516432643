"""The JSON API's errors: every one is `{"message": "…"}` (and, for bad input, `errors`)."""

from __future__ import annotations

from ninja.errors import HttpError


class ApiError(HttpError):
    """An answer other than 2xx with a message for the person who wrote the script."""

    def __init__(self, status_code: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(status_code, message)
        self.headers = headers or {}


def unauthorized(message: str) -> ApiError:
    return ApiError(401, message, {"WWW-Authenticate": 'Bearer realm="ftdash"'})
