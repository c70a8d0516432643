"""How people sign in: Django's model backend, with the signed-in user read more cheaply.

Every open page polls once per interval (jobs.live), and each poll loads its user. Built by the
ORM, that read cost more than the rest of an unchanged poll (bench/polls.py measures it; the
parts of a poll alone: bench/poll_cpu.py --pieces).
"""

from __future__ import annotations

import functools
from typing import Any

from django.contrib.auth import backends, get_user_model
from django.core.exceptions import PermissionDenied
from django.db import connections, router

#: What `login()` is told signed someone in (the path settings.AUTHENTICATION_BACKENDS lists).
BACKEND_PATH = "jobs.auth_backends.ModelBackend"


class ModelBackend(backends.ModelBackend):
    """Sessions signed in before it existed name Django's backend, which settings.py still lists
    after this one: an upgrade signs nobody out."""

    def get_user(self, user_id):
        user = _read_user(get_user_model(), user_id)
        return user if user is not None and self.user_can_authenticate(user) else None

    def authenticate(self, request, username=None, password=None, **kwargs):
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is None and password is not None:
            # Refused here is refused: Django's backend, listed after this one for older
            # sessions only, must not hash the same password a second time.
            raise PermissionDenied
        return user


def _read_user(model, user_id):
    """The user `user_id`, or None: the instance the ORM would build (every field loaded, each
    column through the converters the ORM applies), from one plain statement. Even through
    `raw()`, the ORM's share of this read cost more than the query itself."""
    database = router.db_for_read(model)
    sql, names, converters = _user_read(model, database)
    connection = connections[database]
    with connection.cursor() as cursor:
        cursor.execute(sql, [user_id])
        row = cursor.fetchone()
    if row is None:
        return None
    values = list(row)
    for at, column, column_converters in converters:  # as SQLCompiler.apply_converters does
        for convert in column_converters:
            values[at] = convert(values[at], column, connection)
    return model.from_db(database, names, values)


@functools.cache
def _user_read(model, database: str) -> tuple[str, list[str], list[tuple[int, Any, list]]]:
    """The statement (every concrete column, by primary key), the attribute names its columns
    fill in order, and the converters the ORM would apply to each column (position, column
    expression, converters; as SQLCompiler.get_converters finds them)."""
    connection = connections[database]
    quote = connection.ops.quote_name
    fields = model._meta.concrete_fields
    columns = ", ".join(quote(field.column) for field in fields)
    sql = f"SELECT {columns} FROM {quote(model._meta.db_table)} WHERE {quote(model._meta.pk.column)} = %s"
    converters = []
    for at, field in enumerate(fields):
        column = field.get_col(model._meta.db_table)
        found = connection.ops.get_db_converters(column) + column.get_db_converters(connection)
        if found:
            converters.append((at, column, found))
    return sql, [field.attname for field in fields], converters
