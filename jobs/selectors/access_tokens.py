"""Access tokens to the JSON API: a person's list, one to revoke, and the one a secret names."""

from __future__ import annotations

import hmac

from django.http import Http404

from jobs.models import AccessToken


def access_tokens_of(*, user) -> list[AccessToken]:
    """The user's tokens, newest first, revoked ones too (they say so): one query."""
    return list(AccessToken.objects.filter(user=user).order_by("-created_at", "-pk"))


def access_token_for_owner(*, user, pk: int) -> AccessToken:
    """One of the user's own tokens; anyone else's is a 404."""
    token = AccessToken.objects.filter(user=user, pk=pk).select_related("user").first()
    if token is None:
        raise Http404("No such access token.")
    return token


def access_token_for_secret(secret: str) -> AccessToken | None:
    """The token whose secret this is (revoked and expired ones too: the caller says why it is
    refused), or None. Looked up by the secret's hash, compared in constant time: one query."""
    if not secret or len(secret) > 200 or not secret.startswith(AccessToken.PREFIX):
        return None
    digest = AccessToken.hash_secret(secret)
    token = AccessToken.objects.filter(secret_hash=digest).select_related("user").first()
    if token is None or not hmac.compare_digest(token.secret_hash, digest):
        return None
    return token
