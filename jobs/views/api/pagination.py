"""Cursor pagination (django-ninja's CursorPagination) for the JSON API's lists: stable however
many jobs are tracked meanwhile, with `next` and `previous` as full URLs to follow."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pydantic
from django.db.models import QuerySet
from ninja import Field, Schema
from ninja.errors import ValidationError
from ninja.pagination import CursorPagination

BAD_CURSOR = "Not a cursor this API gave out: follow the `next` or `previous` URL of an earlier page."


class Cursor(CursorPagination):
    """ninja's cursor over the row ID (newest first unless told), whose cursor is checked before
    it reaches a query: a made-up one is a 422, never a 500."""

    class Input(Schema):
        # ninja's own two parameters, described for the schema and the docs page.
        page_size: int | None = Field(None, description="Items a page: 50 unless told, at most 100.")
        cursor: str | None = Field(
            None, description="Where a page starts: from an earlier answer's `next` or `previous`."
        )

    def __init__(self, *, ordering: tuple[str, ...] = ("-pk",), page_size: int = 50, **kwargs: Any) -> None:
        super().__init__(ordering=ordering, page_size=page_size, max_page_size=100, **kwargs)

    def paginate_queryset(self, queryset, pagination, request, **params):
        try:
            cursor = self.Cursor.from_encoded_param(pagination.cursor)
        except (pydantic.ValidationError, ValidationError):
            raise ValidationError([{"loc": ["query", "cursor"], "msg": BAD_CURSOR}]) from None
        # Positions are row IDs, so an offset given out counts rows at one position: at most a page
        # (ninja itself accepts any below 2**63 since 1.8).
        made_up_position = cursor.p is not None and not (
            cursor.p.isascii() and cursor.p.isdigit() and len(cursor.p) <= 19
        )
        if made_up_position or cursor.o > self.max_page_size:
            raise ValidationError([{"loc": ["query", "cursor"], "msg": BAD_CURSOR}])
        return super().paginate_queryset(queryset, pagination, request, **params)


class Row(dict):
    """An answer's item that still tells the paginator its row's ID."""

    def __init__(self, pk: int, document: dict) -> None:
        super().__init__(document)
        self.pk = pk


class Mapped:
    """A queryset the paginator orders, filters and slices, whose page of rows `shape` turns
    into answer items at once (so a page's costs are read together)."""

    def __init__(self, rows: QuerySet, shape: Callable[[list], list[Row]]) -> None:
        self.rows, self.shape = rows, shape

    def order_by(self, *fields: str) -> Mapped:
        return Mapped(self.rows.order_by(*fields), self.shape)

    def filter(self, **lookups: Any) -> Mapped:
        return Mapped(self.rows.filter(**lookups), self.shape)

    def __getitem__(self, window: slice) -> list[Row]:
        return self.shape(list(self.rows[window]))
