"""Keyset pagination: signed cursors, limit bounds, and index scans at any depth (10k rows)."""

import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from pydantic import BaseModel
from sqlalchemy import DateTime, Select, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from app.core.db import SessionDep
from app.core.pagination import (
    DEFAULT_LIMIT,
    CursorCodec,
    Page,
    PageRequest,
    PageRequestDep,
    fetch_page,
)
from app.factory import create_app
from tests.conftest import make_settings
from tests.core.support import assert_problem, captured_statements, serve

ROWS = 10_000
PAGE = 25
DEEP_PAGE = 400


class PagingBase(DeclarativeBase):
    """Own metadata: this table never belongs to the application schema."""


class Entry(PagingBase):
    """A row to page through."""

    __tablename__ = "paging_entry"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    rank: Mapped[int]


class EntryOut(BaseModel):
    """An entry as the test route returns it."""

    id: uuid.UUID
    created_at: datetime


def add_entries_route(app: FastAPI) -> None:
    """GET /entries lists entries, newest first."""

    @app.get("/entries")
    async def entries(session: SessionDep, page: PageRequestDep) -> Page[EntryOut]:
        rows, last = await fetch_page(
            session,
            statement=select(Entry),
            sort_column=Entry.created_at,
            id_column=Entry.id,
            page=page,
        )
        return Page(
            items=[EntryOut(id=row.id, created_at=row.created_at) for row in rows],
            next_cursor=page.cursor_after(last),
        )


@pytest.fixture(scope="module")
async def paging(scratch_url: str) -> AsyncIterator[tuple[FastAPI, AsyncClient]]:
    """An app on the scratch database holding 10k entries with many equal sort keys."""
    app = create_app(make_settings(scratch_url))
    add_entries_route(app)
    async with serve(app) as client:
        engine: AsyncEngine = app.state.engine
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "CREATE TABLE paging_entry (id uuid PRIMARY KEY, "
                    "created_at timestamptz NOT NULL, rank int NOT NULL)"
                )
            )
            # 2,000 distinct times for 10,000 rows: ties are broken by id.
            await connection.execute(
                text(
                    "INSERT INTO paging_entry SELECT gen_random_uuid(), "
                    "timestamptz '2026-01-01 00:00:00+00' + (i % 2000) * interval '1 minute', "
                    "i % 700 FROM generate_series(1, :rows) AS i"
                ),
                {"rows": ROWS},
            )
            await connection.execute(
                text("CREATE INDEX ix_paging_entry_created_at_id ON paging_entry (created_at, id)")
            )
            await connection.execute(
                text("CREATE INDEX ix_paging_entry_rank_id ON paging_entry (rank, id)")
            )
            await connection.execute(text("ANALYZE paging_entry"))
        yield app, client


async def test_walking_every_page_returns_every_row_once(
    paging: tuple[FastAPI, AsyncClient],
) -> None:
    app, client = paging
    engine: AsyncEngine = app.state.engine
    codec: CursorCodec = app.state.cursor_codec
    keys: list[tuple[datetime, uuid.UUID]] = []
    page = PageRequest(limit=100, after=None, codec=codec)
    pages = 0
    async with AsyncSession(engine) as session:
        while True:
            rows, last = await fetch_page(
                session,
                statement=select(Entry),
                sort_column=Entry.created_at,
                id_column=Entry.id,
                page=page,
            )
            keys.extend((row.created_at, row.id) for row in rows)
            pages += 1
            cursor = page.cursor_after(last)
            if cursor is None:
                assert len(rows) == 100
                break
            # Through the opaque cursor a client would send back.
            page = PageRequest(limit=100, after=codec.decode(cursor), codec=codec)
    assert pages == ROWS // 100
    assert len(keys) == ROWS
    assert len({row_id for _, row_id in keys}) == ROWS
    assert keys == sorted(keys, reverse=True)
    # The HTTP route resumes from the same cursors.
    response = await client.get(
        "/entries", params={"limit": 100, "cursor": codec.encode(*keys[99])}
    )
    assert [item["id"] for item in response.json()["items"]] == [str(i) for _, i in keys[100:200]]


async def test_default_limit_and_envelope(paging: tuple[FastAPI, AsyncClient]) -> None:
    _, client = paging
    response = await client.get("/entries")
    body = response.json()
    assert set(body) == {"items", "next_cursor"}
    assert len(body["items"]) == DEFAULT_LIMIT
    assert isinstance(body["next_cursor"], str)
    following = await client.get("/entries", params={"cursor": body["next_cursor"]})
    first_ids = {item["id"] for item in body["items"]}
    assert first_ids.isdisjoint(item["id"] for item in following.json()["items"])


@pytest.mark.parametrize("limit", [0, -1, 101])
async def test_limit_out_of_bounds_is_422(paging: tuple[FastAPI, AsyncClient], limit: int) -> None:
    _, client = paging
    response = await client.get("/entries", params={"limit": limit})
    body = assert_problem(response, status=422, code="validation-failed", instance="/entries")
    assert [e["field"] for e in body["errors"]] == ["limit"]


async def test_limit_at_the_bounds_is_accepted(paging: tuple[FastAPI, AsyncClient]) -> None:
    _, client = paging
    one = await client.get("/entries", params={"limit": 1})
    hundred = await client.get("/entries", params={"limit": 100})
    assert len(one.json()["items"]) == 1
    assert len(hundred.json()["items"]) == 100


def tamper(cursor: str) -> str:
    """Flip one character in the middle of a cursor."""
    middle = len(cursor) // 2
    flipped = "A" if cursor[middle] != "A" else "B"
    return cursor[:middle] + flipped + cursor[middle + 1 :]


@pytest.mark.parametrize("kind", ["tampered", "garbage", "foreign", "too-long", "empty-json"])
async def test_bad_cursor_is_422_naming_cursor(
    paging: tuple[FastAPI, AsyncClient], kind: str
) -> None:
    _, client = paging
    first = (await client.get("/entries", params={"limit": 5})).json()["next_cursor"]
    foreign = CursorCodec(b"another-deployment-key").encode(datetime.now(UTC), uuid.uuid4())
    cursor = {
        "tampered": tamper(first),
        "garbage": "!!not base64!!",
        "foreign": foreign,
        "too-long": "A" * 513,
        "empty-json": base64.urlsafe_b64encode(b"{}").decode(),
    }[kind]
    response = await client.get("/entries", params={"cursor": cursor})
    body = assert_problem(response, status=422, code="validation-failed", instance="/entries")
    assert [e["field"] for e in body["errors"]] == ["cursor"]
    assert cursor not in response.text


async def explain(engine: AsyncEngine, statement: str, parameters: Any) -> dict[str, Any]:
    """The server's plan (JSON format) for a captured statement."""
    async with engine.connect() as connection:
        result = await connection.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {statement}", parameters)
        plan = result.scalar_one()
    document = json.loads(plan) if isinstance(plan, str) else plan
    top: dict[str, Any] = document[0]["Plan"]
    return top


def nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every node of a plan tree."""
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


async def planned_page(
    engine: AsyncEngine, codec: CursorCodec, after: tuple[datetime, uuid.UUID] | None
) -> tuple[str, dict[str, Any]]:
    """Fetch one page of 25 as a route would; return its SQL and the server's plan for it."""
    page = PageRequest(limit=PAGE, after=after, codec=codec)
    with captured_statements(engine) as statements:
        async with AsyncSession(engine) as session:
            rows, _ = await fetch_page(
                session,
                statement=select(Entry),
                sort_column=Entry.created_at,
                id_column=Entry.id,
                page=page,
            )
    assert len(rows) == PAGE
    if after is not None:
        assert (rows[0].created_at, rows[0].id) < after
    [(statement, parameters)] = statements
    return statement, await explain(engine, statement, parameters)


async def test_deep_pages_use_the_index_without_offset(
    paging: tuple[FastAPI, AsyncClient],
) -> None:
    """Pages 200 and 400 of 25 are planned like page 1: index reads bounded by the cursor."""
    app, _ = paging
    engine: AsyncEngine = app.state.engine
    codec: CursorCodec = app.state.cursor_codec
    cursors: list[tuple[datetime, uuid.UUID] | None] = [None]
    async with engine.connect() as connection:
        for page_number in (DEEP_PAGE // 2, DEEP_PAGE):
            key = (
                await connection.execute(
                    text(
                        "SELECT created_at, id FROM paging_entry "
                        "ORDER BY created_at DESC, id DESC OFFSET :skip LIMIT 1"
                    ),
                    {"skip": (page_number - 1) * PAGE - 1},
                )
            ).one()
            cursors.append((key[0], key[1]))
    planned = [await planned_page(engine, codec, after) for after in cursors]
    (_, first), *deep = planned
    # Reading the whole index in order is what an OFFSET walk to the last page would cost.
    [full_walk] = [n for n in nodes(first) if n["Node Type"] == "Index Scan"]
    assert full_walk["Index Name"] == "ix_paging_entry_created_at_id"
    assert full_walk["Scan Direction"] == "Backward"
    assert [n["Node Type"] for n in nodes(first)] == ["Limit", "Index Scan"]
    for statement, plan in planned:
        assert "OFFSET" not in statement.upper()
        types = [n["Node Type"] for n in nodes(plan)]
        assert "Seq Scan" not in types, types
        assert any(n.get("Index Name") == "ix_paging_entry_created_at_id" for n in nodes(plan))
    for _, plan in deep:
        # The cursor is an index condition (a seek), not a filter applied while scanning.
        conditions = [n["Index Cond"] for n in nodes(plan) if "Index Cond" in n]
        assert conditions, plan
        assert conditions[0].startswith("(ROW(created_at, id) < ROW(")
        assert plan["Total Cost"] < full_walk["Total Cost"] / 4, (plan, full_walk)
    # In the middle of the list the plan has exactly page 1's shape.
    assert [n["Node Type"] for n in nodes(deep[0][1])] == ["Limit", "Index Scan"]


async def test_ascending_pages_over_an_integer_key(
    paging: tuple[FastAPI, AsyncClient],
) -> None:
    app, _ = paging
    engine: AsyncEngine = app.state.engine
    codec: CursorCodec = app.state.cursor_codec
    statement: Select[Entry] = select(Entry).where(Entry.rank < 3)
    seen: list[tuple[int, uuid.UUID]] = []
    async with AsyncSession(engine) as session:
        page = PageRequest(limit=7, after=None, codec=codec)
        while True:
            rows, last = await fetch_page(
                session,
                statement=statement,
                sort_column=Entry.rank,
                id_column=Entry.id,
                page=page,
                descending=False,
            )
            seen.extend((row.rank, row.id) for row in rows)
            cursor = page.cursor_after(last)
            if cursor is None:
                break
            page = PageRequest(limit=7, after=codec.decode(cursor), codec=codec)
        expected = (
            await session.execute(text("SELECT count(*) FROM paging_entry WHERE rank < 3"))
        ).scalar_one()
    assert len(seen) == expected
    assert seen == sorted(seen)
    assert len(set(seen)) == expected


def signed(codec: CursorCodec, payload: bytes) -> str:
    """A cursor with a valid signature over any payload, as a key holder could make."""
    mac = hmac.new(codec._key, payload, hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(mac + payload).decode().rstrip("=")


@pytest.mark.parametrize(
    "value", ["alice", 42, datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)]
)
def test_cursor_round_trip(value: str | int | datetime) -> None:
    codec = CursorCodec(b"key")
    row_id = uuid.uuid4()
    cursor = codec.encode(value, row_id)
    assert "=" not in cursor
    assert codec.decode(cursor) == (value, row_id)


@pytest.mark.parametrize(
    "payload",
    [
        json.dumps({"a": 1}),
        json.dumps([{"x": 1}, "1a0fd1c1-f484-4a9b-8a36-ff5097d41ce0"]),
        json.dumps([{"t": 5}, "61f28091-7af4-4ed0-bc34-dfcb52885521"]),
        json.dumps([1, "not-a-uuid"]),
        json.dumps([1, 2, 3]),
        "not json",
    ],
)
def test_well_signed_but_malformed_cursor_is_rejected(payload: str) -> None:
    codec = CursorCodec(b"key")
    with pytest.raises(Exception, match="request contains invalid fields") as caught:
        codec.decode(signed(codec, payload.encode()))
    assert caught.value.errors == [  # type: ignore[attr-defined]
        {"field": "cursor", "message": "Invalid or tampered cursor.", "type": "cursor"}
    ]


def test_last_page_has_no_cursor() -> None:
    page = PageRequest(limit=10, after=None, codec=CursorCodec(b"key"))
    assert page.cursor_after(None) is None
