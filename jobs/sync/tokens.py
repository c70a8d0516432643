"""A stored API token as every caller of the API uses it: opened into a client, and told what an answer says about it.

- `open_token`: load the token (by primary key, or as given), decrypt its key and build its
  client. A deleted token or a key the vault cannot decrypt is no exception here: the caller
  gets what is missing and decides what that means for it (a job's refresh error, an import
  that stops, a watch that ends, a message on the page).
- `record_upstream_error`: what an API error does to the token, whoever made the call. A 429
  pauses it (no call with it, whatever it asks about, until Retry-After has passed); a
  401/403 on the key marks it rejected, which the tokens page shows. What else the error means
  (a job's failure, a stopped import or watch) stays with the caller.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.utils import timezone

from jobs import vault
from jobs.models import ApiToken
from jobs.tokenfactory import RateLimited, TokenFactoryClient, TokenFactoryError, TokenRejected


@dataclass(frozen=True)
class OpenedToken:
    """A token and its client, or what is missing: the token (deleted), or its key (`vault_error`)."""

    token: ApiToken | None
    client: TokenFactoryClient | None = None
    vault_error: vault.VaultError | None = None

    @property
    def problem(self) -> str:
        """Why there is no client, said for a person ("" when there is one or no token at all)."""
        return str(self.vault_error) if self.vault_error else ""

    def require_client(self) -> TokenFactoryClient:
        """The client, for callers that let a key the vault cannot decrypt raise its VaultError."""
        if self.vault_error is not None:
            raise self.vault_error
        if self.client is None:
            raise ApiToken.DoesNotExist("The API token was deleted.")
        return self.client


def open_token(token: ApiToken | int | None) -> OpenedToken:
    """`token` (or the token with that primary key, if any is left) with a client for its key."""
    if not isinstance(token, ApiToken):
        token = ApiToken.objects.filter(pk=token).first() if token else None
    if token is None:
        return OpenedToken(token=None)
    try:
        return OpenedToken(token=token, client=token.client())
    except vault.VaultError as exc:
        return OpenedToken(token=token, vault_error=exc)


def record_upstream_error(token: ApiToken, exc: TokenFactoryError) -> None:
    """What `exc`, an answer to a call made with `token`, says about the token: a 429 pauses it
    until Retry-After, a rejected key is recorded as rejected; any other error leaves it alone."""
    if isinstance(exc, RateLimited):
        _pause(token, exc)
    elif isinstance(exc, TokenRejected):
        record_token_check(token, ok=False, message=exc.message)


def _pause(token: ApiToken, exc: RateLimited) -> None:
    """No call with this token until the API's Retry-After has passed, whatever it asks about."""
    token.rate_limited_until = timezone.now() + dt.timedelta(seconds=exc.retry_after)
    token.save(update_fields=["rate_limited_until"])


def record_token_check(token: ApiToken, *, ok: bool, message: str) -> None:
    """Keep the API's latest verdict on the token, for the tokens page."""
    token.last_checked_at = timezone.now()
    token.last_check_ok = ok
    token.last_check_message = message[:300]
    token.save(update_fields=["last_checked_at", "last_check_ok", "last_check_message"])
