"""Keyset pagination: opaque, HMAC-signed cursors over `(sort key, id)`; no OFFSET anywhere."""

import base64
import binascii
import hashlib
import hmac
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Query, Request
from pydantic import BaseModel
from sqlalchemy import Result, Select, bindparam, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from app.core.errors import ValidationFailed
from app.core.types import SingleLine

DEFAULT_LIMIT = 20
MAX_LIMIT = 100

ItemT = TypeVar("ItemT")
RowT = TypeVar("RowT")

SortValue = str | int | datetime


class Page(BaseModel, Generic[ItemT]):
    """One page of a list and the cursor to the next one (`null` on the last page)."""

    items: list[ItemT]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class PageRequest:
    """Where a page starts and how long it is, decoded from the query string."""

    limit: int
    after: tuple[SortValue, uuid.UUID] | None
    codec: "CursorCodec"

    def cursor_after(self, key: tuple[SortValue, uuid.UUID] | None) -> str | None:
        """Encode the key of a page's last row as the next cursor (None on the last page)."""
        return None if key is None else self.codec.encode(*key)


class CursorCodec:
    """Encode and verify cursors; a cursor changed by a client fails the HMAC check."""

    def __init__(self, key: bytes) -> None:
        self._key = hashlib.sha256(b"roombook-cursor:" + key).digest()

    def encode(self, sort_value: SortValue, row_id: uuid.UUID) -> str:
        """Make the cursor that resumes after this row."""
        value: Any = (
            {"t": sort_value.isoformat()} if isinstance(sort_value, datetime) else sort_value
        )
        payload = json.dumps([value, str(row_id)], separators=(",", ":")).encode()
        mac = hmac.new(self._key, payload, hashlib.sha256).digest()[:16]
        return base64.urlsafe_b64encode(mac + payload).decode().rstrip("=")

    def _verified_payload(self, raw: bytes) -> bytes:
        mac, payload = raw[:16], raw[16:]
        expected = hmac.new(self._key, payload, hashlib.sha256).digest()[:16]
        if not hmac.compare_digest(mac, expected):
            raise ValueError("cursor signature mismatch")
        return payload

    def decode(self, cursor: str) -> tuple[SortValue, uuid.UUID]:
        """Verify and unpack a cursor, or raise a 422 naming the `cursor` field."""
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
            value, row_id = json.loads(self._verified_payload(raw))
            if isinstance(value, dict):
                value = datetime.fromisoformat(value["t"])
            return value, uuid.UUID(row_id)
        except (ValueError, TypeError, KeyError, binascii.Error) as exc:
            raise ValidationFailed(
                [{"field": "cursor", "message": "Invalid or tampered cursor.", "type": "cursor"}]
            ) from exc


async def get_page_request(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[SingleLine | None, Query(max_length=512)] = None,
) -> PageRequest:
    """Read `limit` and `cursor` from the query string."""
    codec: CursorCodec = request.app.state.cursor_codec
    return PageRequest(limit=limit, after=codec.decode(cursor) if cursor else None, codec=codec)


PageRequestDep = Annotated[PageRequest, Depends(get_page_request)]


async def fetch_page(
    session: AsyncSession,
    *,
    statement: Select[RowT],
    sort_column: InstrumentedAttribute[Any],
    id_column: InstrumentedAttribute[uuid.UUID],
    page: PageRequest,
    descending: bool = True,
) -> tuple[Sequence[RowT], tuple[SortValue, uuid.UUID] | None]:
    """Run a keyset-paginated select built for this call; return the rows and the resume key.

    Needs an index on `(sort_column, id_column)` to stay an index scan at any depth. A
    route asked for often keeps its statement instead (`keyset_statement`).
    """
    keyed = keyset_statement(
        statement,
        sort_column=sort_column,
        id_column=id_column,
        after=page.after is not None,
        descending=descending,
    )
    return await fetch_prebuilt_page(
        session,
        statement=keyed,
        parameters={},
        sort_key=sort_column.key,
        id_key=id_column.key,
        page=page,
    )


def filters_given(parameters: Mapping[str, Any]) -> frozenset[str]:
    """The names of the filters that have a value: the shape a page statement is kept by."""
    return frozenset(name for name, value in parameters.items() if value is not None)


def keyset_statement(
    statement: Select[RowT],
    *,
    sort_column: InstrumentedAttribute[Any],
    id_column: InstrumentedAttribute[uuid.UUID],
    after: bool,
    descending: bool = True,
) -> Select[RowT]:
    """`statement` as a page: in key order, from after a cursor when `after`, limit bound.

    For statements built once per filter shape and kept (see `fetch_prebuilt_page`): the
    cursor's key and the limit are parameters, not values written into the statement.
    """
    if after:
        key = tuple_(sort_column, id_column)
        bound = tuple_(
            bindparam("after_sort", type_=sort_column.type),
            bindparam("after_id", type_=id_column.type),
        )
        statement = statement.where(key < bound if descending else key > bound)
    order = (sort_column.desc(), id_column.desc()) if descending else (sort_column, id_column)
    return statement.order_by(*order).limit(bindparam("page_limit"))


async def fetch_prebuilt_page(
    session: AsyncSession,
    *,
    statement: Select[RowT],
    parameters: Mapping[str, Any],
    sort_key: str,
    id_key: str,
    page: PageRequest,
) -> tuple[Sequence[RowT], tuple[SortValue, uuid.UUID] | None]:
    """Run a page made by `keyset_statement` (with `after` as `page` has a cursor or not).

    Building a statement costs its construction and its cache key on every request; a
    statement kept per filter shape costs neither (in-process, about 175 us of CPU per
    statement).
    """
    bound = {**parameters, "page_limit": page.limit + 1}
    if page.after is not None:
        bound["after_sort"], bound["after_id"] = page.after
    result = await session.execute(statement, bound)
    return _page_of(result, statement=statement, page=page, sort_key=sort_key, id_key=id_key)


def _page_of(
    result: Result[Any], *, statement: Select[Any], page: PageRequest, sort_key: str, id_key: str
) -> tuple[Sequence[Any], tuple[SortValue, uuid.UUID] | None]:
    """The page's rows (one more was asked for) and the key to resume after, if any."""
    # One entity (or column) per row comes back as itself; several columns as a row.
    rows: Sequence[Any] = (
        result.scalars().all() if len(statement.column_descriptions) == 1 else result.all()
    )
    if len(rows) <= page.limit:
        return rows, None
    last = rows[page.limit - 1]
    return rows[: page.limit], (getattr(last, sort_key), getattr(last, id_key))
