"""Every query over blocked ranges is a gist index scan on a realistically sized data set.

500 rooms and 50,000 bookings over a year (one in ten cancelled) are inserted with bulk
SQL and analysed inside the test's transaction; then the exact statements the
repositories send are EXPLAINed: a room's availability, free rooms, and the booking
service's overlap and alternatives queries. The same plans at 200,000 bookings are in the
README; the booking list's plans are in `test_bookings_indexes.py`.
"""

import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.bookings.models import OVERLAP_CONSTRAINT, Room
from app.bookings.repository import AvailabilityRepository, BookingRepository
from tests.plans import Captured, plan_of

ROOMS = 500
BOOKINGS_PER_ROOM = 100
START = datetime(2027, 1, 4, 8, 0, tzinfo=UTC)
WEEK = START + timedelta(days=90)
"""Monday of a week in the middle of the seeded year."""
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


@pytest.fixture
async def seeded(db_session: AsyncSession, owner_id: uuid.UUID) -> None:
    """The rooms and bookings, with planner statistics gathered for them."""
    # Checking this many rows against the exclusion constraint can outlast the tests' timeout.
    await db_session.execute(text("SET LOCAL statement_timeout = 0"))
    await db_session.execute(text(SEED_ROOMS), {"rooms": ROOMS})
    await db_session.execute(
        text(SEED_BOOKINGS),
        {"owner": owner_id, "per_room": BOOKINGS_PER_ROOM, "start": START},
    )
    await db_session.execute(text("ANALYZE rooms"))
    await db_session.execute(text("ANALYZE bookings"))


FREE_ROOM_FILTERS = [(None, ()), (20, ()), (None, ("projector", "whiteboard")), (10, ("video",))]
"""`(min_capacity, amenities)`: none, a common and a rare capacity, common and rare tags."""


@pytest.mark.usefixtures("seeded")
async def test_every_query_over_blocked_ranges_is_a_gist_index_scan(
    db_session: AsyncSession, captured: Captured
) -> None:
    room_id = await db_session.scalar(select(Room.id).order_by(Room.name).limit(1))
    assert room_id is not None
    availability = AvailabilityRepository(db_session)
    bookings = BookingRepository(db_session)
    hour = WEEK + timedelta(hours=2)

    one_room = {
        "a room's week": availability.blocking_rows(
            room_id=room_id, window_start=WEEK, window_end=WEEK + timedelta(days=7)
        ),
        "kinds in the way": bookings.kinds_in_the_way(
            room_id=room_id,
            starts_at=hour,
            blocked_until=hour + timedelta(hours=1),
            other_than=None,
        ),
        "alternative times": bookings.blocked_ranges(
            room_id=room_id,
            window_start=WEEK,
            window_end=WEEK + timedelta(days=14),
            other_than=uuid.uuid4(),
        ),
    }
    rooms = {
        f"free rooms {filters}": availability.unblocked_rooms(
            starts_at=hour,
            ends_at=hour + timedelta(hours=1),
            default_buffer_minutes=15,
            min_capacity=filters[0],
            amenities=filters[1],
            after=None,
            limit=21,
        )
        for filters in FREE_ROOM_FILTERS
    } | {
        "free rooms, a deep page": availability.unblocked_rooms(
            starts_at=hour,
            ends_at=hour + timedelta(hours=1),
            default_buffer_minutes=15,
            min_capacity=None,
            amenities=(),
            after=("Seeded room 0250", uuid.uuid4()),
            limit=21,
        ),
        "alternative rooms": bookings.free_rooms(
            starts_at=hour,
            ends_at=hour + timedelta(hours=1),
            attendees=4,
            default_buffer_minutes=15,
            other_room=room_id,
            other_than=None,
            limit=9,
        ),
    }
    one_room_plans = {name: await plan_of(db_session, captured, q) for name, q in one_room.items()}
    rooms_plans = {name: await plan_of(db_session, captured, q) for name, q in rooms.items()}

    # One room's rows in a range: a lookup in the gist index of the exclusion constraint.
    for name, plan in one_room_plans.items():
        assert INDEX_SCAN.search(plan), f"{name}:\n{plan}"
        assert "Seq Scan" not in plan, f"{name}:\n{plan}"
    # Rooms in the order asked for, from an index, each probing the gist index once (NOT
    # EXISTS) until the page is full: never a hash of every booking.
    for name, plan in rooms_plans.items():
        assert "Nested Loop Anti Join" in plan, f"{name}:\n{plan}"
        assert "Index Scan using ix_rooms_" in plan, f"{name}:\n{plan}"
        assert INDEX_SCAN.search(plan), f"{name}:\n{plan}"
        assert "Seq Scan" not in plan, f"{name}:\n{plan}"
    assert "ix_rooms_capacity_name_id" in rooms_plans["alternative rooms"]
    # A deep page starts from the cursor's key in the (name, id) index.
    assert "Index Cond: (ROW((name)::text, id) >" in rooms_plans["free rooms, a deep page"]
