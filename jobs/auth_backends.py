"""How people sign in: Django's model backend, with the signed-in user read more cheaply.

Every open page polls once per interval (jobs.live), and each poll loads its user. Built by the
ORM, that read cost more than the rest of an unchanged poll (bench/polls.py measures it).
"""

from __future__ import annotations

import functools

from django.contrib.auth import backends, get_user_model
from django.core.exceptions import PermissionDenied
from django.db import connections, router

#: What `login()` is told signed someone in (the path settings.AUTHENTICATION_BACKENDS lists).
BACKEND_PATH = "jobs.auth_backends.ModelBackend"


class ModelBackend(backends.ModelBackend):
    """Sessions signed in before it existed name Django's backend, which settings.py still lists
    after this one: an upgrade signs nobody out."""

    def get_user(self, user_id):
        model = get_user_model()
        user = next(iter(model._default_manager.raw(_user_sql(model), [user_id])), None)
        return user if user is not None and self.user_can_authenticate(user) else None

    def authenticate(self, request, username=None, password=None, **kwargs):
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is None and password is not None:
            # Refused here is refused: Django's backend, listed after this one for older
            # sessions only, must not hash the same password a second time.
            raise PermissionDenied
        return user


@functools.cache
def _user_sql(model) -> str:
    quote = connections[router.db_for_read(model)].ops.quote_name
    return f"SELECT * FROM {quote(model._meta.db_table)} WHERE {quote(model._meta.pk.column)} = %s"
