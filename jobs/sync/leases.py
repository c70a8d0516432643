"""Leases: how several workers share rows out, so that no two work on the same row at once.

A lease is a nullable "claimed until" column. A row is free when it is empty or in the past.
Taking a row is one conditional UPDATE (`SET until = … WHERE pk = … AND (until IS NULL OR
until < now)`), and only one worker's UPDATE can match: the database serialises writes to a
row, and whoever comes second sees the new time and updates nothing. So the guarantee holds on
SQLite and PostgreSQL alike, whichever rows a worker picked as candidates (the candidate query
only saves losing races; on PostgreSQL, `skip_locked` makes concurrent workers pick different
rows without waiting). A worker that dies holding a lease loses it when the lease runs out,
and the row is free again: the lease's length is the longest its work may take.

Giving a lease back is conditional too: only where the row still holds the lease this worker
took, so a lease that ran out and was taken by another worker is that worker's, and stays.

What is due and for how long is each caller's: a tracked job's refresh (`jobs.sync.refresh`),
a watched token's look (`jobs.sync.discovery`), an import's reading (`jobs.sync.imports`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Any

from django.db import connection, models, transaction
from django.db.models import Q, QuerySet


@dataclass
class Quota:
    """At most `left[key(row)]` rows per key, spent as rows are won (none of a key not in `left`)."""

    key: Callable[[Any], Hashable]
    left: dict[Hashable, int]


@dataclass(frozen=True)
class Lease:
    """The lease column `field` of `model`'s rows."""

    model: type[models.Model]
    field: str

    def free(self, now: dt.datetime) -> Q:
        """Rows nobody holds a lease on at `now`."""
        return Q(**{f"{self.field}__isnull": True}) | Q(**{f"{self.field}__lt": now})

    def take(self, rows: QuerySet, *, until: dt.datetime, now: dt.datetime) -> bool:
        """Lease `rows` (one row, by primary key) until `until` if it is free at `now`: the
        conditional UPDATE only one worker can win. Whether this one did."""
        return bool(rows.filter(self.free(now)).update(**{self.field: until}))

    def give_back(self, rows: QuerySet, *, held: dt.datetime | None, **also: Any) -> int:
        """Clear the lease of `rows` where it is still `held` (the one this worker took),
        writing `also` with it; how many rows were given back."""
        return rows.filter(**{self.field: held}).update(**{self.field: None}, **also)

    def claim(
        self,
        candidates: QuerySet,
        *,
        seconds: float,
        now: dt.datetime,
        limit: int | None = None,
        still: Q | None = None,
        quota: Quota | None = None,
        skip_locked: bool = False,
    ) -> list:
        """Lease the free rows among `candidates` (up to `limit` of them, in their order) for
        `seconds`: the rows won, their lease set. `still` is checked again in each row's UPDATE.
        With `skip_locked` the claim is one transaction whose candidates are row-locked with SKIP
        LOCKED where the database can (PostgreSQL); without it, each row's UPDATE commits alone."""
        until = now + dt.timedelta(seconds=seconds)
        candidates = candidates.filter(self.free(now))
        won = []
        with transaction.atomic() if skip_locked else contextlib.nullcontext():
            if skip_locked and connection.features.has_select_for_update_skip_locked:
                candidates = candidates.select_for_update(skip_locked=True, of=("self",))
            for row in candidates[:limit] if limit is not None else candidates:
                if quota is not None and quota.left.get(quota.key(row), 0) < 1:
                    continue
                rows = self.model.objects.filter(pk=row.pk)
                if self.take(rows.filter(still) if still is not None else rows, until=until, now=now):
                    setattr(row, self.field, until)
                    won.append(row)
                    if quota is not None:
                        quota.left[quota.key(row)] -= 1
        return won

    def release(self, rows: Iterable[models.Model], **also: Any) -> None:
        """Give back the leases these rows held when this worker took them, writing `also`
        with each (a row that held none is written only if it still holds none, and only if
        there is something to write)."""
        by_lease: dict[dt.datetime | None, list[models.Model]] = {}
        for row in rows:
            by_lease.setdefault(getattr(row, self.field), []).append(row)
        for held, group in by_lease.items():
            if held is None and not also:
                continue
            self.give_back(self.model.objects.filter(pk__in=[row.pk for row in group]), held=held, **also)
            for row in group:
                setattr(row, self.field, None)
