"""Accounts as the pages see them: whether there is any yet (first-run setup until there is)."""

from __future__ import annotations

from django.contrib.auth import get_user_model


def accounts_exist() -> bool:
    return get_user_model().objects.exists()
