"""Django's database sessions, with the one read every request makes done by a plain statement.

Every open page polls once per interval (jobs.live), and each poll reads its session. Built by
the ORM, that read cost several times the query itself (bench/polls.py measures it). Everything
else (saving, expiry, cycling keys, clearing) is Django's database store, unchanged. With Redis
configured, settings.py uses jobs.cached_sessions, which reads through this one on a miss.
"""

from __future__ import annotations

import functools

from django.contrib.sessions.backends import db
from django.db import connections, router
from django.utils import timezone


class SessionStore(db.SessionStore):
    def _get_session_from_db(self):
        database = router.db_for_read(self.model)
        connection = connections[database]
        with connection.cursor() as cursor:
            cursor.execute(
                _read_sql(self.model, database),
                [self.session_key, connection.ops.adapt_datetimefield_value(timezone.now())],
            )
            row = cursor.fetchone()
        if row is None:  # no such session, or it expired: a new one on save, as in Django's
            self._session_key = None
            return None
        # With its expiry, so that jobs.cached_sessions keeps it in Redis only for the time it has
        # left (without one, Django's cached_db store keeps it for SESSION_COOKIE_AGE).
        session_data, expire_date = row
        if timezone.is_naive(expire_date):  # SQLite's come back naive, in the connection's zone
            expire_date = timezone.make_aware(expire_date, connection.timezone)
        return self.model(session_key=self.session_key, session_data=session_data, expire_date=expire_date)


@functools.cache
def _read_sql(model, database: str) -> str:
    quote = connections[database].ops.quote_name

    def column(name: str) -> str:
        return quote(model._meta.get_field(name).column)

    return (
        f"SELECT {column('session_data')}, {column('expire_date')} FROM {quote(model._meta.db_table)}"
        f" WHERE {column('session_key')} = %s AND {column('expire_date')} > %s"
    )
