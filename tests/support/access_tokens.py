"""Access tokens to ftdash's JSON API, as the tests hold them: made through the service (as the
Access tokens page does), and a test client that sends one the way a script does."""

from __future__ import annotations

from django.test import Client

from jobs import services
from jobs.models import AccessToken


def access_token(user, *, scope: str = AccessToken.Scope.WRITE, days: int | None = None, name: str = "script") -> str:
    """A new access token of `user`'s; returns its secret."""
    _token, secret = services.access_token_create(user=user, name=name, scope=scope, expires_in_days=days)
    return secret


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


class ApiClient:
    """Django's test client with no session, sending `Authorization: Bearer <secret>` on every call."""

    def __init__(self, secret: str | None, **client_options) -> None:
        self.client = Client(**client_options)
        self.headers = bearer(secret) if secret else {}

    def get(self, path: str, headers: dict[str, str] | None = None, **params):
        return self.client.get(path, params, headers={**self.headers, **(headers or {})})

    def post(self, path: str, body, headers: dict[str, str] | None = None):
        return self.client.post(
            path, body, content_type="application/json", headers={**self.headers, **(headers or {})}
        )

    def delete(self, path: str, headers: dict[str, str] | None = None):
        return self.client.delete(path, headers={**self.headers, **(headers or {})})
