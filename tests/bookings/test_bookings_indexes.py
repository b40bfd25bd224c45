"""Every filter of the booking list, first page and deep, is an index scan on a seeded table.

500 rooms with 100 non-overlapping bookings each (50,000 rows over about 200 days, 40
owners) are inserted with one SQL statement and analysed inside the test's transaction;
then the exact statement the repository runs is EXPLAINed.
"""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.bookings.models import BookingStatus
from app.bookings.repository import BookingRepository
from app.bookings.schemas import BookingFilter
from app.core.pagination import PageRequest
from tests.conftest import CreateUser
from tests.plans import Captured, plan_of

ROOMS = 500
PER_ROOM = 100
OWNERS = 40
START = datetime(2030, 1, 1, tzinfo=UTC)
MIDDLE = START + timedelta(days=100)


@pytest.fixture
async def owners(create_user: CreateUser) -> list[uuid.UUID]:
    """The people the seeded bookings belong to."""
    return [await create_user() for _ in range(OWNERS)]


@pytest.fixture
async def seeded(db_session: AsyncSession, owners: list[uuid.UUID]) -> uuid.UUID:
    """Rooms and bookings in bulk, analysed; returns one room's id."""
    # On a busy machine, checking 50,000 rows against the exclusion constraint can outlast
    # the tests' statement timeout.
    await db_session.execute(text("SET LOCAL statement_timeout = 0"))
    await db_session.execute(
        text(
            "INSERT INTO rooms (id, name, building, capacity, time_zone) "
            "SELECT gen_random_uuid(), 'Seeded ' || i, 'Main', 8, 'Europe/Berlin' "
            "FROM generate_series(1, :rooms) AS i"
        ),
        {"rooms": ROOMS},
    )
    await db_session.execute(
        text(
            "INSERT INTO bookings (id, room_id, owner_id, title, attendees, starts_at, ends_at, "
            "blocked_until, status) "
            "SELECT gen_random_uuid(), room_id, owner_id, 'Seeded', 2, starts_at, "
            "starts_at + interval '1 hour', starts_at + interval '1 hour', status FROM ("
            "  SELECT r.id AS room_id, "
            "  (CAST(:owners AS uuid[]))[1 + (r.n * :per_room + s) % :count] AS owner_id, "
            "  CAST(:start AS timestamptz) + s * interval '2 days' + r.n * interval '1 minute' "
            "    AS starts_at, "
            "  CASE WHEN s % 10 = 0 THEN 'cancelled' ELSE 'confirmed' END AS status "
            "  FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM rooms) AS r, "
            "  generate_series(0, :per_room - 1) AS s"
            ") AS seed"
        ),
        {"owners": owners, "per_room": PER_ROOM, "count": len(owners), "start": START},
    )
    await db_session.execute(text("ANALYZE rooms"))
    await db_session.execute(text("ANALYZE bookings"))
    room_id = await db_session.scalar(text("SELECT id FROM rooms ORDER BY id LIMIT 1"))
    assert isinstance(room_id, uuid.UUID)
    return room_id


async def _plan(
    session: AsyncSession, captured: Captured, filters: BookingFilter, page: PageRequest
) -> str:
    return await plan_of(
        session, captured, BookingRepository(session).list_page(filters=filters, page=page)
    )


async def test_every_filter_of_the_list_is_an_index_scan_at_any_depth(
    app: FastAPI,
    db_session: AsyncSession,
    captured: Captured,
    owners: list[uuid.UUID],
    seeded: uuid.UUID,
) -> None:
    owner = owners[0]
    cases = [
        ("everyone", BookingFilter(), "ix_bookings_starts_at_id"),
        ("a member's own", BookingFilter(owner_id=owner), "ix_bookings_owner_id_starts_at_id"),
        (
            "a member's upcoming",
            BookingFilter(owner_id=owner, starts_from=MIDDLE),
            "ix_bookings_owner_id_starts_at_id",
        ),
        ("one room", BookingFilter(room_id=seeded), "ix_bookings_room_id_starts_at_id"),
        (
            "a window",
            BookingFilter(starts_from=MIDDLE, starts_before=MIDDLE + timedelta(days=7)),
            "ix_bookings_starts_at_id",
        ),
        (
            "a status",
            BookingFilter(status=BookingStatus.CANCELLED),
            "ix_bookings_starts_at_id",
        ),
    ]
    first = PageRequest(limit=20, after=None, codec=app.state.cursor_codec)
    deep = PageRequest(limit=20, after=(MIDDLE, uuid.uuid4()), codec=app.state.cursor_codec)

    for name, filters, index in cases:
        for page in (first, deep):
            plan = await _plan(db_session, captured, filters, page)
            assert f"Index Scan using {index}" in plan, f"{name}:\n{plan}"
            assert "Seq Scan" not in plan, f"{name}:\n{plan}"
            assert "Sort" not in plan, f"{name}:\n{plan}"
    deep_plan = await _plan(db_session, captured, BookingFilter(owner_id=owner), deep)
    assert "ROW(starts_at, id) >" in deep_plan
