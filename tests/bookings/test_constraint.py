"""The database itself refuses double bookings and malformed ranges, whatever the code does.

Rows go straight into the table (no service, no rules), each in a savepoint, so these
tests show what `bookings_no_overlap` and the range check guarantee on their own.
"""

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.bookings.models import OVERLAP_CONSTRAINT, Booking, BookingKind, BookingStatus, Room
from app.core.db_errors import sqlstate_of
from tests.bookings.conftest import CreateRoom
from tests.factories import BookingFactory

EXCLUSION_VIOLATION = "23P01"
CHECK_VIOLATION = "23514"
DATA_EXCEPTION = "22000"
NINE = datetime(2030, 1, 7, 9, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


async def insert(
    session: AsyncSession,
    *,
    room: Room,
    owner_id: uuid.UUID,
    starts_at: datetime,
    ends_at: datetime,
    buffer: timedelta = timedelta(0),
    **fields: Any,
) -> Booking:
    """Insert one row in a savepoint, so a refusal leaves the test's transaction usable."""
    booking = BookingFactory.build(
        room_id=room.id,
        owner_id=owner_id,
        starts_at=starts_at,
        ends_at=ends_at,
        blocked_until=ends_at + buffer,
        **fields,
    )
    async with session.begin_nested():
        session.add(booking)
        await session.flush()
    return booking


async def refusal(session: AsyncSession, **row: Any) -> tuple[str | None, str | None]:
    """The SQLSTATE and constraint name with which the database refuses a row."""
    with pytest.raises(IntegrityError) as refused:
        await insert(session, **row)
    cause = refused.value.orig.__cause__ if refused.value.orig else None
    return sqlstate_of(refused.value), getattr(cause, "constraint_name", None)


@pytest.fixture
async def room(create_room: CreateRoom) -> Room:
    """The room most tests book."""
    return await create_room()


HOLDING = [BookingStatus.PENDING, BookingStatus.CONFIRMED]


@pytest.mark.parametrize("statuses", [(a, b) for a in HOLDING for b in HOLDING])
@pytest.mark.parametrize(
    "span",
    [
        (NINE, NINE + HOUR),  # the same slot
        (NINE + timedelta(minutes=30), NINE + 2 * HOUR),  # starts inside
        (NINE - timedelta(minutes=30), NINE + timedelta(minutes=1)),  # ends inside
        (NINE + timedelta(minutes=15), NINE + timedelta(minutes=45)),  # contained
        (NINE - HOUR, NINE + 2 * HOUR),  # contains
    ],
)
async def test_overlapping_rows_holding_one_room_are_refused(
    db_session: AsyncSession,
    room: Room,
    owner_id: uuid.UUID,
    statuses: tuple[BookingStatus, BookingStatus],
    span: tuple[datetime, datetime],
) -> None:
    first, second = statuses
    await insert(
        db_session, room=room, owner_id=owner_id, starts_at=NINE, ends_at=NINE + HOUR, status=first
    )

    refused = await refusal(
        db_session, room=room, owner_id=owner_id, starts_at=span[0], ends_at=span[1], status=second
    )

    assert refused == (EXCLUSION_VIOLATION, OVERLAP_CONSTRAINT)


async def test_back_to_back_rows_are_fine(
    db_session: AsyncSession, room: Room, owner_id: uuid.UUID
) -> None:
    for start in (NINE, NINE + HOUR, NINE - HOUR):
        await insert(
            db_session, room=room, owner_id=owner_id, starts_at=start, ends_at=start + HOUR
        )

    rows = await db_session.scalars(select(Booking.starts_at).where(Booking.room_id == room.id))
    assert sorted(rows) == [NINE - HOUR, NINE, NINE + HOUR]


@pytest.mark.parametrize("inactive", [BookingStatus.CANCELLED, BookingStatus.REJECTED])
async def test_cancelled_and_rejected_rows_block_nothing(
    db_session: AsyncSession, room: Room, owner_id: uuid.UUID, inactive: BookingStatus
) -> None:
    slot: dict[str, Any] = {
        "room": room,
        "owner_id": owner_id,
        "starts_at": NINE,
        "ends_at": NINE + HOUR,
    }
    await insert(db_session, **slot, status=inactive)
    await insert(db_session, **slot, status=inactive)
    await insert(db_session, **slot)

    assert await refusal(db_session, **slot) == (EXCLUSION_VIOLATION, OVERLAP_CONSTRAINT)


async def test_cancelling_a_row_frees_its_slot(
    db_session: AsyncSession, room: Room, owner_id: uuid.UUID
) -> None:
    slot: dict[str, Any] = {
        "room": room,
        "owner_id": owner_id,
        "starts_at": NINE,
        "ends_at": NINE + HOUR,
    }
    first = await insert(db_session, **slot)
    await db_session.execute(
        update(Booking).where(Booking.id == first.id).values(status=BookingStatus.CANCELLED.value)
    )

    second = await insert(db_session, **slot)

    assert second.status == BookingStatus.CONFIRMED


async def test_moving_a_row_onto_another_is_refused(
    db_session: AsyncSession, room: Room, owner_id: uuid.UUID
) -> None:
    await insert(db_session, room=room, owner_id=owner_id, starts_at=NINE, ends_at=NINE + HOUR)
    later = await insert(
        db_session, room=room, owner_id=owner_id, starts_at=NINE + HOUR, ends_at=NINE + 2 * HOUR
    )
    move = (
        update(Booking)
        .where(Booking.id == later.id)
        .values(starts_at=NINE + timedelta(minutes=30), blocked_until=Booking.ends_at)
    )

    with pytest.raises(IntegrityError) as refused:
        async with db_session.begin_nested():
            await db_session.execute(move)

    assert sqlstate_of(refused.value) == EXCLUSION_VIOLATION


async def test_the_buffer_after_a_row_blocks_the_room(
    db_session: AsyncSession, room: Room, owner_id: uuid.UUID
) -> None:
    buffer = timedelta(minutes=15)
    await insert(
        db_session,
        room=room,
        owner_id=owner_id,
        starts_at=NINE,
        ends_at=NINE + HOUR,
        buffer=buffer,
    )
    next_slot: dict[str, Any] = {"room": room, "owner_id": owner_id, "ends_at": NINE + 2 * HOUR}

    assert await refusal(db_session, **next_slot, starts_at=NINE + HOUR) == (
        EXCLUSION_VIOLATION,
        OVERLAP_CONSTRAINT,
    )
    after_buffer = await insert(db_session, **next_slot, starts_at=NINE + HOUR + buffer)
    # A row's own buffer may reach into the next row's: only `blocked` ranges are compared,
    # and a row ending at another's start overlaps nothing before it.
    assert after_buffer.blocked.lower == NINE + HOUR + buffer


async def test_a_buffer_reaching_into_the_next_row_is_refused(
    db_session: AsyncSession, room: Room, owner_id: uuid.UUID
) -> None:
    await insert(
        db_session, room=room, owner_id=owner_id, starts_at=NINE + HOUR, ends_at=NINE + 2 * HOUR
    )

    refused = await refusal(
        db_session,
        room=room,
        owner_id=owner_id,
        starts_at=NINE,
        ends_at=NINE + HOUR,
        buffer=timedelta(minutes=10),
    )

    assert refused == (EXCLUSION_VIOLATION, OVERLAP_CONSTRAINT)


async def test_a_blackout_blocks_bookings_and_bookings_block_blackouts(
    db_session: AsyncSession, room: Room, owner_id: uuid.UUID
) -> None:
    blackout: dict[str, Any] = {
        "kind": BookingKind.BLACKOUT.value,
        "attendees": 0,
        "title": "Repainting",
    }
    await insert(
        db_session,
        room=room,
        owner_id=owner_id,
        starts_at=NINE,
        ends_at=NINE + 4 * HOUR,
        **blackout,
    )
    await insert(
        db_session, room=room, owner_id=owner_id, starts_at=NINE + 5 * HOUR, ends_at=NINE + 6 * HOUR
    )

    inside = await refusal(
        db_session, room=room, owner_id=owner_id, starts_at=NINE + HOUR, ends_at=NINE + 2 * HOUR
    )
    over_booking = await refusal(
        db_session,
        room=room,
        owner_id=owner_id,
        starts_at=NINE + 4 * HOUR,
        ends_at=NINE + 8 * HOUR,
        **blackout,
    )

    assert inside == over_booking == (EXCLUSION_VIOLATION, OVERLAP_CONSTRAINT)


async def test_other_rooms_are_independent(
    db_session: AsyncSession, create_room: CreateRoom, owner_id: uuid.UUID
) -> None:
    rooms = [await create_room() for _ in range(3)]

    for room in rooms:
        await insert(db_session, room=room, owner_id=owner_id, starts_at=NINE, ends_at=NINE + HOUR)

    held = await db_session.scalars(
        select(Booking.room_id).where(Booking.room_id.in_([room.id for room in rooms]))
    )
    assert sorted(held) == sorted(room.id for room in rooms)


@pytest.mark.parametrize(
    "bounds",
    [
        ("2030-01-07 09:00Z", "2030-01-07 09:00Z", "2030-01-07 09:00Z"),  # empty
        ("2030-01-07 09:00Z", "2030-01-07 10:00Z", "2030-01-07 09:30Z"),  # buffer ends early
        ("-infinity", "2030-01-07 10:00Z", "2030-01-07 10:00Z"),  # unbounded start
        ("2030-01-07 09:00Z", "infinity", "infinity"),  # unbounded end
        ("2030-01-07 09:00Z", "2030-01-07 10:00Z", "infinity"),  # unbounded buffer
    ],
)
async def test_empty_and_unbounded_ranges_fail_the_check(
    db_session: AsyncSession,
    room: Room,
    owner_id: uuid.UUID,
    bounds: tuple[str, str, str],
) -> None:
    start, end, blocked_until = bounds
    # Raw SQL: Python datetimes cannot say "infinity".
    statement = text(
        "INSERT INTO bookings (id, room_id, kind, owner_id, title, attendees, starts_at, "
        "ends_at, blocked_until, status) VALUES (:id, :room_id, 'booking', :owner_id, 'x', 1, "
        "CAST(CAST(:start AS text) AS timestamptz), CAST(CAST(:end AS text) AS timestamptz), "
        "CAST(CAST(:blocked_until AS text) AS timestamptz), 'confirmed')"
    )
    values = {
        "id": uuid.uuid4(),
        "room_id": room.id,
        "owner_id": owner_id,
        "start": start,
        "end": end,
        "blocked_until": blocked_until,
    }

    with pytest.raises(IntegrityError) as refused:
        async with db_session.begin_nested():
            await db_session.execute(statement, values)

    assert sqlstate_of(refused.value) == CHECK_VIOLATION
    assert "ck_bookings_range_valid" in str(refused.value.orig)


async def test_a_reversed_range_cannot_even_be_computed(
    db_session: AsyncSession, room: Room, owner_id: uuid.UUID
) -> None:
    # The generated `during` range is computed before any check runs, and PostgreSQL
    # refuses a range whose bounds are reversed: a data exception, not a stored row.
    with pytest.raises(DBAPIError) as refused:
        await insert(db_session, room=room, owner_id=owner_id, starts_at=NINE, ends_at=NINE - HOUR)

    assert sqlstate_of(refused.value) == DATA_EXCEPTION
    assert await db_session.scalar(select(Booking.id).where(Booking.room_id == room.id)) is None


async def test_a_blackout_has_no_attendees_and_no_buffer(
    db_session: AsyncSession, room: Room, owner_id: uuid.UUID
) -> None:
    blackout: dict[str, Any] = {
        "room": room,
        "owner_id": owner_id,
        "kind": BookingKind.BLACKOUT.value,
    }
    slot: dict[str, Any] = {"starts_at": NINE, "ends_at": NINE + HOUR}

    with_attendees = await refusal(db_session, **blackout, **slot, attendees=3)
    with_buffer = await refusal(
        db_session, **blackout, **slot, attendees=0, buffer=timedelta(minutes=5)
    )

    assert with_attendees == with_buffer == (CHECK_VIOLATION, "ck_bookings_blackout_shape")
