"""Every filter of the room list, first page and deep, is an index scan over 500 rooms.

The rooms are inserted with one SQL statement and analysed inside the test's
transaction; then the exact statement the repository runs is EXPLAINed. 500 rooms fill
about a dozen 8 kB pages, and for unselective filters PostgreSQL rightly reads them all
rather than an index: sequential scans are priced out (`enable_seqscan = off`), so the
plan shows the index each filter has, and a filter no index could serve would still show
a sequential scan.
"""

import uuid

import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.bookings.repository import RoomRepository
from app.bookings.room_schemas import RoomFilter
from app.core.pagination import PageRequest
from tests.plans import Captured, plan_of

ROOMS = 500
SEED_ROOMS = """
INSERT INTO rooms (id, name, description, building, floor, capacity, amenities, time_zone)
SELECT gen_random_uuid(), 'Seeded room ' || lpad(n::text, 4, '0'),
       CASE WHEN n % 50 = 0 THEN 'Quiet corner by the atrium' ELSE 'Meeting room' END,
       'Building ' || n % 7, (n % 12)::text, 2 + n % 40,
       CASE n % 3 WHEN 0 THEN ARRAY['projector', 'whiteboard'] WHEN 1 THEN ARRAY['projector']
                  ELSE ARRAY['video'] END::varchar[],
       'Europe/Berlin'
FROM generate_series(1, :rooms) AS n
"""


@pytest.fixture
async def seeded(db_session: AsyncSession) -> None:
    """The rooms, with planner statistics gathered for them."""
    await db_session.execute(text(SEED_ROOMS), {"rooms": ROOMS})
    await db_session.execute(text("ANALYZE rooms"))
    await db_session.execute(text("SET LOCAL enable_seqscan = off"))


async def _plan(
    session: AsyncSession, captured: Captured, filters: RoomFilter, page: PageRequest
) -> str:
    return await plan_of(
        session, captured, RoomRepository(session).list_page(filters=filters, page=page)
    )


BY_NAME = "ix_rooms_name_id"
"""Walked in list order, the other conditions filtering, until the page is full."""
BY_CAPACITY = "ix_rooms_capacity_name_id"
"""Only the rooms large enough, then sorted; at 500 rooms walking by name costs about the
same, and PostgreSQL 15 and 18 choose differently (both are index scans)."""
BY_BUILDING = "ix_rooms_lower_building_name_id"
CASES = [
    ("every room", RoomFilter(), (BY_NAME,)),
    ("a large capacity", RoomFilter(min_capacity=38), (BY_CAPACITY, BY_NAME)),
    ("a small capacity", RoomFilter(min_capacity=3), (BY_NAME,)),
    ("common amenities", RoomFilter(amenities=("projector",)), (BY_NAME,)),
    ("all of two amenities", RoomFilter(amenities=("projector", "whiteboard")), (BY_NAME,)),
    ("a building", RoomFilter(location="building 3"), (BY_BUILDING,)),
    ("text in the name", RoomFilter(q="room 012"), (BY_NAME,)),
    ("text in a description", RoomFilter(q="atrium"), (BY_NAME,)),
    (
        "everything",
        RoomFilter(min_capacity=10, amenities=("video",), location="Building 2"),
        (BY_BUILDING,),
    ),
]


@pytest.mark.usefixtures("seeded")
@pytest.mark.parametrize(("name", "filters", "indexes"), CASES, ids=[case[0] for case in CASES])
async def test_every_filter_of_the_room_list_is_an_index_scan_at_any_depth(
    *,
    app: FastAPI,
    db_session: AsyncSession,
    captured: Captured,
    name: str,
    filters: RoomFilter,
    indexes: tuple[str, ...],
) -> None:
    first = PageRequest(limit=20, after=None, codec=app.state.cursor_codec)
    deep = PageRequest(
        limit=20, after=("Seeded room 0400", uuid.uuid4()), codec=app.state.cursor_codec
    )

    for page in (first, deep):
        plan = await _plan(db_session, captured, filters, page)
        # "Index Scan on" also matches a bitmap index scan of the index.
        assert any(
            f"Index Scan using {index}" in plan or f"Index Scan on {index}" in plan
            for index in indexes
        ), f"{name}:\n{plan}"
        assert "Seq Scan" not in plan, f"{name}:\n{plan}"
        if page.after is not None:
            assert "ROW((name)::text, id) >" in plan, f"{name}:\n{plan}"
