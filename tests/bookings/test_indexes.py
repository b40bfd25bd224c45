"""Availability queries stay index scans on a realistically sized, analysed data set.

500 rooms and 50,000 bookings over a year (one in ten cancelled) are inserted with bulk
SQL and analysed inside the test's transaction; then the exact statements the
repository sends are EXPLAINed. The same plans at 200,000 bookings are in the README.
"""

import re
import uuid
from collections.abc import Coroutine, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import event, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession

from app.bookings.models import OVERLAP_CONSTRAINT, Room
from app.bookings.repository import AvailabilityRepository

ROOMS = 500
BOOKINGS_PER_ROOM = 100
START = datetime(2027, 1, 4, 8, 0, tzinfo=UTC)
SEED_ROOMS = """
INSERT INTO rooms (id, name, building, floor, capacity, amenities, time_zone)
SELECT gen_random_uuid(), 'Seeded room ' || lpad(n::text, 4, '0'), 'Building ' || n % 7,
       (n % 12)::text, 2 + n % 40,
       CASE n % 3 WHEN 0 THEN ARRAY['projector', 'whiteboard'] WHEN 1 THEN ARRAY['projector']
                  ELSE ARRAY['video'] END::varchar[],
       'Europe/Berlin'
FROM generate_series(1, :rooms) AS n
"""
SEED_BOOKINGS = """
INSERT INTO bookings (id, room_id, kind, owner_id, title, attendees, starts_at, ends_at,
                      blocked_until, status)
SELECT gen_random_uuid(), room.id, 'booking', :owner, 'Seeded', 2, slot.starts_at,
       slot.starts_at + interval '1 hour', slot.starts_at + interval '1 hour 15 minutes',
       CASE WHEN i % 10 = 0 THEN 'cancelled' ELSE 'confirmed' END
FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM rooms) AS room,
     generate_series(0, :per_room - 1) AS i,
     LATERAL (SELECT CAST(:start AS timestamptz) + i * interval '84 hours'
                     + (room.n % 5) * interval '1 hour' AS starts_at) AS slot
"""

INDEX_SCAN = re.compile(
    f"(Index Scan|Index Only Scan|Bitmap Index Scan) (using|on) {OVERLAP_CONSTRAINT}\\b"
)
"""A plain, index-only or bitmap scan of the gist index behind the exclusion constraint."""

Captured = list[tuple[str, Any]]


@pytest.fixture
def captured(app: FastAPI) -> Iterator[Captured]:
    """The SQL statements and parameters the engine sends, in order."""
    statements: Captured = []

    def capture(_conn: Connection, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        statements.append((statement, parameters))

    event.listen(app.state.engine.sync_engine, "before_cursor_execute", capture)
    yield statements
    event.remove(app.state.engine.sync_engine, "before_cursor_execute", capture)


@pytest.fixture
async def seeded(db_session: AsyncSession, owner_id: uuid.UUID) -> None:
    """The rooms and bookings, with planner statistics gathered for them."""
    # Checking 200,000 rows against the exclusion constraint outlasts the tests' timeout.
    await db_session.execute(text("SET LOCAL statement_timeout = 0"))
    await db_session.execute(text(SEED_ROOMS), {"rooms": ROOMS})
    await db_session.execute(
        text(SEED_BOOKINGS),
        {"owner": owner_id, "per_room": BOOKINGS_PER_ROOM, "start": START},
    )
    await db_session.execute(text("ANALYZE rooms"))
    await db_session.execute(text("ANALYZE bookings"))


async def plan_of(
    session: AsyncSession, captured: Captured, query: Coroutine[Any, Any, Any]
) -> str:
    """The plan of the last statement `query` sends (it runs only when awaited here)."""
    captured.clear()
    await query
    statement, parameters = captured[-1]
    connection = await session.connection()
    result = await connection.exec_driver_sql(f"EXPLAIN {statement}", parameters)
    return "\n".join(row[0] for row in result)


FREE_ROOM_FILTERS = [(None, ()), (20, ()), (None, ("projector", "whiteboard")), (10, ("video",))]
"""`(min_capacity, amenities)`: none, a common and a rare capacity, common and rare tags."""


@pytest.mark.usefixtures("seeded")
async def test_availability_queries_are_index_scans(
    db_session: AsyncSession, captured: Captured
) -> None:
    repository = AvailabilityRepository(db_session)
    room_id = await db_session.scalar(select(Room.id).order_by(Room.name).limit(1))
    assert room_id is not None
    week = START + timedelta(days=90)
    hour = week + timedelta(hours=2)

    blocking = await plan_of(
        db_session,
        captured,
        repository.blocking_rows(
            room_id=room_id, window_start=week, window_end=week + timedelta(days=7)
        ),
    )
    free_rooms = [
        await plan_of(
            db_session,
            captured,
            repository.unblocked_rooms(
                starts_at=hour,
                ends_at=hour + timedelta(hours=1),
                default_buffer_minutes=15,
                min_capacity=min_capacity,
                amenities=amenities,
                after=None,
                limit=21,
            ),
        )
        for min_capacity, amenities in FREE_ROOM_FILTERS
    ]

    # One room's rows in the window: a lookup in the gist index of the exclusion constraint.
    assert INDEX_SCAN.search(blocking), blocking
    assert "Seq Scan" not in blocking, blocking
    # Free rooms: rooms in name order, each probing the same index once (NOT EXISTS).
    for plan in free_rooms:
        assert "Nested Loop Anti Join" in plan, plan
        assert "Index Scan using ix_rooms_name_id on rooms" in plan, plan
        assert INDEX_SCAN.search(plan), plan
        assert "Seq Scan" not in plan, plan
