"""Fixtures of the bookings tests: rooms and rows inserted straight into the test's transaction."""

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from app.bookings.models import Booking, BookingKind, Room
from app.bookings.repository import RoomRepository
from app.core.clock import utc_now
from tests.conftest import CreateUser
from tests.factories import BookingFactory, RoomFactory


class CreateRoom(Protocol):
    """Signature of the `create_room` fixture."""

    async def __call__(self, **fields: Any) -> Room: ...


@pytest.fixture
def create_room(db_session: AsyncSession) -> CreateRoom:
    """Insert a room in the test's transaction; `fields` override the factory's values."""

    async def create(**fields: Any) -> Room:
        return await RoomRepository(db_session).add(room=RoomFactory.build(**fields))

    return create


@pytest.fixture
async def owner_id(create_user: CreateUser) -> uuid.UUID:
    """A member who owns the bookings a test inserts."""
    return await create_user()


BOOKINGS = "/api/v1/bookings"
BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2030, 1, 7, 8, 0, tzinfo=BERLIN)
"""The fixed "now" of booking tests: Monday 7 January 2030, 08:00 in Berlin (07:00 UTC)."""


def local(day: int, hour: int, minute: int = 0) -> datetime:
    """An instant of January 2030 on Berlin's wall clock (UTC+1 all month)."""
    return datetime(2030, 1, day, hour, minute, tzinfo=BERLIN)


def body(room: Room, start: datetime, end: datetime, **fields: Any) -> dict[str, Any]:
    """A `BookingCreate` body for the room and times; `fields` add or replace members."""
    return {
        "room_id": str(room.id),
        "title": "Planning",
        "attendees": 2,
        "starts_at": start.isoformat(),
        "ends_at": end.isoformat(),
        **fields,
    }


def if_match(headers: dict[str, str], version: int) -> dict[str, str]:
    """The headers with `If-Match` naming the version."""
    return {**headers, "If-Match": f'"{version}"'}


@pytest.fixture
def fixed_clock(app: FastAPI) -> Iterator[datetime]:
    """Requests see `NOW` as the current time (`pytestmark = usefixtures("fixed_clock")`)."""

    app.state.clock = lambda: NOW.astimezone(UTC)
    yield NOW
    app.state.clock = utc_now


class InsertBooking(Protocol):
    """Signature of the `insert_booking` fixture."""

    async def __call__(
        self, *, room: Room, owner_id: uuid.UUID, start: datetime, end: datetime, **fields: Any
    ) -> Booking: ...


@pytest.fixture
def insert_booking(db_session: AsyncSession) -> InsertBooking:
    """Insert a booking row (or a blackout, `kind="blackout"`) straight into the table."""

    async def insert(
        *, room: Room, owner_id: uuid.UUID, start: datetime, end: datetime, **fields: Any
    ) -> Booking:
        blackout = fields.get("kind") == BookingKind.BLACKOUT.value
        row = BookingFactory.build(
            room_id=room.id,
            owner_id=owner_id,
            starts_at=start,
            ends_at=end,
            blocked_until=fields.pop("blocked_until", end),
            **({"attendees": 0} if blackout else {}),
            **fields,
        )
        db_session.add(row)
        await db_session.flush()
        return row

    return insert


@pytest.fixture
async def room(create_room: CreateRoom) -> Room:
    """A room for eight in Berlin with every default rule: weekdays 08:00 to 20:00."""
    return await create_room()


@pytest.fixture
def booking_settings(app: FastAPI) -> Iterator[Callable[..., None]]:
    """Change `BOOKINGS__` settings of the app for this test: `booking_settings(field=value)`."""
    settings = app.state.settings

    def change(**fields: Any) -> None:
        bookings = settings.bookings.model_copy(update=fields)
        app.state.settings = settings.model_copy(update={"bookings": bookings})

    yield change
    app.state.settings = settings
