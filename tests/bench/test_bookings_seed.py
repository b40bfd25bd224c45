"""The bench's rooms and bookings, seeded at small scale inside the test's transaction.

The seed must keep every room's bookings apart (the exclusion constraint checks them as
they go in), inside weekday opening hours in the room's zone, over a year, with a share
pending and cancelled; and it must leave the evenings free that the `POST /bookings`
scenarios book: the requests the harness builds for them are booked (201) by the API.
"""

import uuid
from datetime import timedelta

import asyncpg
import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.chain import ChainKeys
from app.core.config import AuditSettings
from app.core.idempotency import REPLAYED_HEADER
from benchmarks import seed
from benchmarks.bookings_bench import (
    DistinctSlots,
    SameSlot,
    evenings,
    free_rooms_path,
    next_monday,
    read_bookings_data,
    week_paths,
    weekdays_ahead,
)
from tests.conftest import AuthHeaders

ROOMS = 8
PER_ROOM = 40
USERS = 30

pytestmark = pytest.mark.usefixtures("seeded")


@pytest.fixture
def plan() -> seed.SeedPlan:
    """A small data set of the bench's shape."""
    audit = AuditSettings()
    return seed.SeedPlan(
        password_hash="unused",
        chain_keys=ChainKeys.from_settings(audit),
        users=USERS,
        token_users=3,
        audit_events=0,
        rooms=ROOMS,
        bookings=ROOMS * PER_ROOM,
    )


@pytest.fixture
async def raw(db_session: AsyncSession) -> asyncpg.Connection:
    """The asyncpg connection under the test's session (its transaction included)."""
    connection = await db_session.connection()
    fairy = await connection.get_raw_connection()
    driver: asyncpg.Connection = fairy.driver_connection
    return driver


@pytest.fixture
async def seeded(raw: asyncpg.Connection, plan: seed.SeedPlan) -> None:
    """Users, rooms and bookings as the bench seeds them, rolled back after the test."""
    for step in (seed.seed_users, seed.seed_rooms, seed.seed_bookings):
        await step(raw, plan)


async def test_bookings_spread_over_a_year_in_opening_hours_with_a_share_not_confirmed(
    raw: asyncpg.Connection, plan: seed.SeedPlan
) -> None:
    shape = await raw.fetchrow(
        "SELECT count(*) AS total, count(DISTINCT room_id) AS rooms, "
        "count(*) FILTER (WHERE status = 'cancelled') AS cancelled, "
        "count(*) FILTER (WHERE status = 'pending') AS pending, "
        "count(*) FILTER (WHERE status = 'cancelled' AND cancelled_at IS NULL) AS unexplained, "
        "min(starts_at) AS first, max(starts_at) AS last FROM bookings"
    )
    assert shape is not None
    assert (shape["total"], shape["rooms"]) == (ROOMS * PER_ROOM, ROOMS)
    assert shape["cancelled"] == ROOMS * PER_ROOM // 10
    assert shape["pending"] == ROOMS * PER_ROOM // 20
    assert shape["unexplained"] == 0
    assert shape["last"] - shape["first"] > timedelta(days=340)
    assert shape["first"].date() <= plan.today - timedelta(days=170)
    zones = await raw.fetchval("SELECT count(DISTINCT time_zone) FROM rooms")
    assert zones == len(seed.ROOM_TIME_ZONES)
    outside = await raw.fetchval(
        "SELECT count(*) FROM bookings b JOIN rooms r ON r.id = b.room_id "
        "WHERE extract(isodow FROM b.starts_at AT TIME ZONE r.time_zone) > 5 "
        "OR (b.starts_at AT TIME ZONE r.time_zone)::time < '08:00' "
        "OR (b.blocked_until AT TIME ZONE r.time_zone)::time > '18:15'"
    )
    assert outside == 0


async def test_no_two_holding_bookings_of_a_room_overlap(raw: asyncpg.Connection) -> None:
    overlapping = await raw.fetchval(
        "SELECT count(*) FROM bookings a JOIN bookings b ON a.room_id = b.room_id "
        "AND a.id < b.id AND a.blocked && b.blocked "
        "WHERE a.status IN ('pending', 'confirmed') AND b.status IN ('pending', 'confirmed')"
    )
    buffered = await raw.fetchval("SELECT count(*) FROM bookings WHERE blocked_until > ends_at")

    assert overlapping == 0
    assert buffered > 0


async def test_the_evenings_the_scenarios_book_are_free(
    raw: asyncpg.Connection, plan: seed.SeedPlan, db_session: AsyncSession, app: FastAPI
) -> None:
    rooms = [
        (r["id"], r["time_zone"])
        for r in await raw.fetch("SELECT id, time_zone FROM rooms ORDER BY name")
    ]
    free = evenings(rooms, days=weekdays_ahead(plan.today))
    taken = await raw.fetchval(
        "SELECT count(*) FROM bookings b, unnest($1::uuid[], $2::timestamptz[]) AS e(room, at) "
        "WHERE b.room_id = e.room AND b.status IN ('pending', 'confirmed') "
        "AND b.blocked && tstzrange(e.at, e.at + interval '90 minutes')",
        [e.room_id for e in free],
        [e.starts_at for e in free],
    )

    assert len(free) > ROOMS * 100
    assert taken == 0


async def test_distinct_slot_requests_are_booked_and_a_retry_replays(
    client: AsyncClient, auth_headers: AuthHeaders, plan: seed.SeedPlan, raw: asyncpg.Connection
) -> None:
    tokens = [
        (await auth_headers(seed.user_id(n)))["Authorization"].removeprefix("Bearer ")
        for n in (1, 2)
    ]
    rooms = [(r["id"], r["time_zone"]) for r in await raw.fetch("SELECT id, time_zone FROM rooms")]
    # 16 evenings (8 rooms, 2 days) of 3 slots: two runs of 24 numbers use them all; run 1
    # reaches the second slots and, at its number 8, the third.
    slots = DistinctSlots(
        evenings=evenings(rooms, days=weekdays_ahead(plan.today)[:2]), tokens=tokens, stride=24
    )
    requests = [slots.request(run=run, number=n) for run in (0, 1) for n in (0, 1, 7, 8)]

    answers = [await client.send(r.build(str(client.base_url))) for r in requests]
    again = await client.send(requests[0].build(str(client.base_url)))

    assert [a.status_code for a in answers] == [201] * len(requests)
    assert len({a.json()["id"] for a in answers}) == len(requests)
    assert (again.status_code, again.headers[REPLAYED_HEADER]) == (201, "true")
    assert again.json()["id"] == answers[0].json()["id"]


async def test_one_slot_requests_get_one_201_and_then_409(
    client: AsyncClient, auth_headers: AuthHeaders, plan: seed.SeedPlan, raw: asyncpg.Connection
) -> None:
    token = (await auth_headers(seed.user_id(1)))["Authorization"].removeprefix("Bearer ")
    data = await read_bookings_data(raw, owners=[], per_owner=0)
    contended = evenings(data.rooms, days=weekdays_ahead(plan.today)[:1])
    same = SameSlot(evenings=contended, tokens=[token])
    requests = [same.request(run=3, number=n) for n in range(3)]

    answers = [await client.send(r.build(str(client.base_url))) for r in requests]

    assert [a.status_code for a in answers] == [201, 409, 409]
    assert {a.json()["code"] for a in answers[1:]} == {"booking-refused"}


async def test_harness_reads_each_members_own_bookings(raw: asyncpg.Connection) -> None:
    owners = [seed.user_id(n) for n in (1, 2, 3)]

    data = await read_bookings_data(raw, owners=owners, per_owner=4)

    assert [room for room, _ in data.rooms] == [seed.room_id(n) for n in range(1, ROOMS + 1)]
    assert set(data.own_bookings) == set(owners)
    for owner, ids in data.own_bookings.items():
        assert len(ids) == 4
        found = await raw.fetchval(
            "SELECT count(*) FROM bookings WHERE id = ANY($1::uuid[]) AND owner_id = $2",
            ids,
            owner,
        )
        assert found == 4
    assert isinstance(next(iter(data.own_bookings.values()))[0], uuid.UUID)


async def test_availability_scenarios_answer_on_the_seeded_rooms(
    client: AsyncClient, auth_headers: AuthHeaders, plan: seed.SeedPlan, raw: asyncpg.Connection
) -> None:
    headers = await auth_headers(seed.user_id(1))
    data = await read_bookings_data(raw, owners=[], per_owner=0)
    monday = next_monday(plan.today)
    _, path = week_paths(data.rooms, ["unused"], monday=monday)[0].split(" ")

    week = await client.get(path, headers=headers)
    free = await client.get(free_rooms_path(monday), headers=headers)

    assert week.status_code == 200
    assert len(week.json()["free"]) >= 5  # an evening at least on each weekday
    assert free.status_code == 200
    zones = {room["time_zone"] for room in free.json()["items"]}
    assert zones == set(seed.ROOM_TIME_ZONES)  # the hour is inside opening hours in each
