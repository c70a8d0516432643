"""Who calls the JSON API: the owner of the access token in `Authorization: Bearer <token>`, and
nothing else (no session cookie, so no CSRF either), at most FTDASH_API_REQUESTS_PER_MINUTE
calls a minute per token (a sliding minute, kept in the default cache)."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest
from ninja.security import HttpBearer
from ninja.throttling import AuthRateThrottle

from jobs import selectors, services
from jobs.models import AccessToken
from jobs.views.api.errors import unauthorized

HOW_TO = "Send `Authorization: Bearer <token>` with an access token from ftdash's Access tokens page."


class AccessTokenAuth(HttpBearer):
    """`Authorization: Bearer ftd_…`: a missing, unknown, revoked or expired token is a 401 that says which."""

    def __call__(self, request: HttpRequest) -> AccessToken:
        header = request.headers.get(self.header, "")
        scheme, _, secret = header.partition(" ")
        if not header:
            raise unauthorized(f"No access token. {HOW_TO}")
        if scheme.lower() != "bearer" or not secret.strip():
            raise unauthorized(f"The Authorization header is not a Bearer token. {HOW_TO}")
        return self.authenticate(request, secret.strip())

    def authenticate(self, request: HttpRequest, token: str) -> AccessToken:
        found = selectors.access_token_for_secret(token)
        if found is None or not found.user.is_active:
            raise unauthorized("This access token is not valid.")
        if found.revoked_at is not None:
            raise unauthorized("This access token was revoked.")
        if found.is_expired:
            raise unauthorized(f"This access token expired on {found.expires_at:%Y-%m-%d}.")
        services.access_token_used(found)
        return found


class PerTokenThrottle(AuthRateThrottle):
    """django-ninja's sliding-window throttle, keyed by the access token (never its secret)."""

    scope = "access_token"

    def __init__(self) -> None:
        super().__init__(rate="120/min")  # replaced by the setting on each call, so tests can change it

    def allow_request(self, request: HttpRequest) -> bool:
        self.num_requests, self.duration = settings.FTDASH_API_REQUESTS_PER_MINUTE, 60
        return super().allow_request(request)

    def get_cache_key(self, request: HttpRequest) -> str | None:
        token = getattr(request, "auth", None)
        return f"api-rate:{token.pk}" if isinstance(token, AccessToken) else None

    def wait(self) -> float:
        """Seconds until the oldest call of the minute leaves it (at least one)."""
        if not self.history:
            return 1.0
        return max(1.0, self.duration - (self.now - self.history[-1]))
