"""Availability on PostgreSQL: free and busy time of a room, and the rooms free for a time.

Rows go straight into the tables in the test's transaction; the service reads them back
through the same queries the API runs.
"""

import uuid
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from app.bookings.availability import (
    AvailabilityService,
    BusyInterval,
    RoomAvailability,
    build_availability_service,
)
from app.bookings.intervals import Interval
from app.bookings.models import Booking, BookingKind, BookingStatus, Room
from app.core.config import Settings
from app.core.errors import ValidationFailed
from app.core.pagination import PageRequest
from tests.bookings.conftest import CreateRoom, InsertBooking
from tests.bookings.policies import BERLIN, NEW_YORK, local, utc, wall
from tests.conftest import CreateUser

MONDAY = "2027-03-29"
"""A work day in Berlin summer time (UTC+2)."""
SATURDAY = "2027-04-03"
"""A day the default opening hours keep rooms closed."""
EVERY_DAY_8_TO_20 = {
    day: [{"opens": "08:00", "closes": "20:00"}]
    for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
}


def at(text: str, zone: ZoneInfo = BERLIN) -> datetime:
    """The instant of a wall-clock reading in the zone, `2027-03-29 10:00`."""
    return local(text, zone)


def monday(clock: str) -> datetime:
    """The Monday at this Berlin wall-clock time."""
    return at(f"{MONDAY} {clock}")


def walls(intervals: Sequence[Interval], zone: ZoneInfo = BERLIN) -> list[tuple[str, str]]:
    """Intervals as wall-clock readings with their offset, `2027-03-29 08:00+02:00`."""
    return [(wall(start, zone), wall(end, zone)) for start, end in intervals]


def clocks(intervals: Sequence[Interval], zone: ZoneInfo = BERLIN) -> list[tuple[str, str]]:
    """Intervals as `HH:MM` wall-clock times of one day."""
    return [
        (f"{start.astimezone(zone):%H:%M}", f"{end.astimezone(zone):%H:%M}")
        for start, end in intervals
    ]


@pytest.fixture
def availability(app: FastAPI, db_session: AsyncSession) -> AvailabilityService:
    """The service as requests build it, with the test settings (31-day cap, 15-minute slots)."""
    settings: Settings = app.state.settings
    return build_availability_service(db_session, settings=settings.bookings)


class Insert:
    """Rows for one owner through `insert_booking`, in the order the tests read them."""

    def __init__(self, insert_booking: InsertBooking, owner_id: uuid.UUID) -> None:
        self.insert_booking = insert_booking
        self.owner_id = owner_id

    async def booking(
        self,
        room: Room,
        starts_at: datetime,
        ends_at: datetime,
        *,
        buffer_minutes: int = 0,
        **fields: Any,
    ) -> Booking:
        """A booking (confirmed unless `status` says otherwise) blocking its buffer after it."""
        return await self.insert_booking(
            room=room,
            owner_id=fields.pop("owner_id", self.owner_id),
            start=starts_at,
            end=ends_at,
            blocked_until=ends_at + timedelta(minutes=buffer_minutes),
            **fields,
        )

    async def blackout(self, room: Room, starts_at: datetime, ends_at: datetime) -> Booking:
        """A blackout declared by the owner."""
        return await self.insert_booking(
            room=room,
            owner_id=self.owner_id,
            start=starts_at,
            end=ends_at,
            kind=BookingKind.BLACKOUT.value,
            title="Works",
        )


@pytest.fixture
def insert(insert_booking: InsertBooking, owner_id: uuid.UUID) -> Insert:
    """Row inserter for the test's transaction."""
    return Insert(insert_booking, owner_id)


async def of_monday(
    availability: AvailabilityService,
    room: Room,
    viewer_id: uuid.UUID,
    start: str = "00:00",
    end: str = "23:59",
) -> RoomAvailability:
    """The room's availability on the Monday between two Berlin wall-clock times."""
    return await availability.of_room(
        room=room, window_start=monday(start), window_end=monday(end), viewer_id=viewer_id
    )


def busy_times(busy: Sequence[BusyInterval]) -> list[tuple[str, str, str, str, str]]:
    """Busy intervals as `(start, end, blocked until, kind, status)`, Berlin `HH:MM`."""
    return [
        (
            f"{item.starts_at.astimezone(BERLIN):%H:%M}",
            f"{item.ends_at.astimezone(BERLIN):%H:%M}",
            f"{item.blocked_until.astimezone(BERLIN):%H:%M}",
            item.kind.value,
            item.status.value,
        )
        for item in busy
    ]


# --- a room's free and busy time -------------------------------------------------------


async def test_an_empty_room_is_free_through_its_opening_hours(
    availability: AvailabilityService, room: Room, owner_id: uuid.UUID
) -> None:
    result = await of_monday(availability, room, owner_id)

    assert walls(result.free) == [(f"{MONDAY} 08:00+02:00", f"{MONDAY} 20:00+02:00")]
    assert result.free == [(utc(f"{MONDAY} 06:00"), utc(f"{MONDAY} 18:00"))]
    assert result.busy == []
    assert result.policy.slot_minutes == 15
    assert (result.window_start, result.window_end) == (monday("00:00"), monday("23:59"))


async def test_bookings_and_their_buffers_are_busy(
    availability: AvailabilityService, create_room: CreateRoom, insert: Insert, owner_id: uuid.UUID
) -> None:
    room = await create_room(policy={"buffer_minutes": 15})
    await insert.booking(room, monday("10:00"), monday("11:00"), buffer_minutes=15)
    await insert.booking(room, monday("14:00"), monday("15:30"), buffer_minutes=15)

    result = await of_monday(availability, room, owner_id)

    assert busy_times(result.busy) == [
        ("10:00", "11:00", "11:15", "booking", "confirmed"),
        ("14:00", "15:30", "15:45", "booking", "confirmed"),
    ]
    # A new booking must end 15 minutes before the next one starts: its own buffer follows it.
    assert clocks(result.free) == [("08:00", "09:45"), ("11:15", "13:45"), ("15:45", "20:00")]


async def test_a_blackout_is_busy_and_never_free(
    availability: AvailabilityService, room: Room, insert: Insert, owner_id: uuid.UUID
) -> None:
    await insert.blackout(room, monday("06:00"), monday("12:00"))

    result = await of_monday(availability, room, owner_id)

    assert busy_times(result.busy) == [("06:00", "12:00", "12:00", "blackout", "confirmed")]
    assert clocks(result.free) == [("12:00", "20:00")]


@pytest.mark.parametrize("status", [BookingStatus.CANCELLED, BookingStatus.REJECTED])
async def test_cancelled_and_rejected_bookings_block_nothing(
    availability: AvailabilityService,
    room: Room,
    insert: Insert,
    owner_id: uuid.UUID,
    status: BookingStatus,
) -> None:
    await insert.booking(room, monday("09:00"), monday("10:00"), status=status.value)
    await insert.booking(room, monday("09:00"), monday("10:00"), status=status.value)

    result = await of_monday(availability, room, owner_id)

    assert result.busy == []
    assert clocks(result.free) == [("08:00", "20:00")]


async def test_a_pending_booking_holds_the_room_and_says_so(
    availability: AvailabilityService, room: Room, insert: Insert, owner_id: uuid.UUID
) -> None:
    await insert.booking(room, monday("09:00"), monday("10:00"), status="pending")
    await insert.booking(room, monday("10:00"), monday("11:00"))

    result = await of_monday(availability, room, owner_id)

    assert [item.status for item in result.busy] == [
        BookingStatus.PENDING,
        BookingStatus.CONFIRMED,
    ]
    assert clocks(result.free) == [("08:00", "09:00"), ("11:00", "20:00")]


async def test_free_time_starts_and_ends_on_the_slot_grid(
    availability: AvailabilityService, create_room: CreateRoom, insert: Insert, owner_id: uuid.UUID
) -> None:
    room = await create_room(policy={"slot_minutes": 30})
    # Rows off the grid (a manager overriding the rules, or an older grid) round free time in.
    await insert.booking(room, monday("10:05"), monday("10:20"))
    await insert.booking(room, monday("13:00"), monday("13:40"))

    result = await of_monday(availability, room, owner_id, start="08:10", end="19:45")

    assert clocks(result.free) == [
        ("08:30", "10:00"),
        ("10:30", "13:00"),
        ("14:00", "19:30"),
    ]


async def test_gaps_shorter_than_the_minimum_duration_are_not_free(
    availability: AvailabilityService, create_room: CreateRoom, insert: Insert, owner_id: uuid.UUID
) -> None:
    room = await create_room(policy={"min_duration_minutes": 60, "max_duration_minutes": 480})
    await insert.booking(room, monday("09:00"), monday("10:00"))
    await insert.booking(room, monday("10:45"), monday("12:00"))
    await insert.booking(room, monday("13:00"), monday("19:15"))

    result = await of_monday(availability, room, owner_id)

    assert clocks(result.free) == [("08:00", "09:00"), ("12:00", "13:00")]


async def test_rows_reaching_past_the_window_are_shown_whole(
    availability: AvailabilityService, create_room: CreateRoom, insert: Insert, owner_id: uuid.UUID
) -> None:
    room = await create_room(policy={"buffer_minutes": 30})
    await insert.booking(room, monday("09:00"), monday("10:30"), buffer_minutes=30)
    # Starts at the window's end: not shown, but the free time before it leaves room for
    # a new booking's buffer.
    await insert.booking(room, monday("15:00"), monday("16:00"), buffer_minutes=30)

    result = await of_monday(availability, room, owner_id, start="10:00", end="15:00")

    assert busy_times(result.busy) == [("09:00", "10:30", "11:00", "booking", "confirmed")]
    assert clocks(result.free) == [("11:00", "14:30")]


async def test_a_deactivated_room_has_busy_but_no_free_time(
    availability: AvailabilityService, create_room: CreateRoom, insert: Insert, owner_id: uuid.UUID
) -> None:
    room = await create_room(is_active=False)
    await insert.booking(room, monday("09:00"), monday("10:00"))

    result = await of_monday(availability, room, owner_id)

    assert result.free == []
    assert busy_times(result.busy) == [("09:00", "10:00", "10:00", "booking", "confirmed")]


async def test_only_the_viewers_own_bookings_are_marked_mine(
    availability: AvailabilityService,
    room: Room,
    insert: Insert,
    owner_id: uuid.UUID,
    create_user: CreateUser,
) -> None:
    other = await create_user()
    await insert.booking(room, monday("09:00"), monday("10:00"))
    await insert.booking(room, monday("10:00"), monday("11:00"), owner_id=other)
    await insert.blackout(room, monday("12:00"), monday("13:00"))

    mine = await of_monday(availability, room, owner_id)
    theirs = await of_monday(availability, room, other)

    assert [item.mine for item in mine.busy] == [True, False, False]
    assert [item.mine for item in theirs.busy] == [False, True, False]


async def test_the_window_may_span_the_configured_days_and_no_more(
    availability: AvailabilityService, room: Room, owner_id: uuid.UUID
) -> None:
    start = monday("00:00")
    longest = await availability.of_room(
        room=room, window_start=start, window_end=start + timedelta(days=31), viewer_id=owner_id
    )
    assert len(longest.free) == 23  # the work days of 31 days from a Monday

    with pytest.raises(ValidationFailed) as too_long:
        await availability.of_room(
            room=room,
            window_start=start,
            window_end=start + timedelta(days=31, seconds=1),
            viewer_id=owner_id,
        )
    assert too_long.value.errors == [
        {
            "field": "to",
            "message": "Must be at most 31 days after `from`.",
            "type": "window_too_long",
        }
    ]


@pytest.mark.parametrize("length", [timedelta(0), timedelta(hours=-1)])
async def test_an_empty_or_reversed_window_is_refused(
    availability: AvailabilityService, room: Room, owner_id: uuid.UUID, length: timedelta
) -> None:
    start = monday("09:00")
    with pytest.raises(ValidationFailed) as refused:
        await availability.of_room(
            room=room, window_start=start, window_end=start + length, viewer_id=owner_id
        )
    assert refused.value.errors == [
        {"field": "to", "message": "Must be after `from`.", "type": "range"}
    ]


# --- time zones ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        (BERLIN, "2027-03-28", "+01:00", "+02:00"),
        (BERLIN, "2027-10-31", "+02:00", "+01:00"),
        (NEW_YORK, "2027-03-14", "-05:00", "-04:00"),
        (NEW_YORK, "2027-11-07", "-04:00", "-05:00"),
    ],
    ids=["berlin-spring", "berlin-autumn", "new-york-spring", "new-york-autumn"],
)
async def test_opening_hours_keep_their_wall_clock_times_through_a_dst_week(
    availability: AvailabilityService,
    create_room: CreateRoom,
    insert: Insert,
    owner_id: uuid.UUID,
    change: tuple[ZoneInfo, str, str, str],
) -> None:
    zone, day_of_change, before, after = change
    room = await create_room(time_zone=zone.key, policy={"opening_hours": EVERY_DAY_8_TO_20})
    changed = date.fromisoformat(day_of_change)
    days = [changed + timedelta(days=offset) for offset in range(-3, 4)]
    # A booking at 12:00-13:00 local each day, inserted as the UTC instants it stands for.
    for day in days:
        await insert.booking(room, at(f"{day} 12:00", zone), at(f"{day} 13:00", zone))

    result = await availability.of_room(
        room=room,
        window_start=at(f"{days[0]} 00:00", zone),
        window_end=at(f"{days[-1]} 23:59", zone),
        viewer_id=owner_id,
    )

    offsets = [before if day < changed else after for day in days]
    expected = []
    for day, offset in zip(days, offsets, strict=True):
        expected += [
            (f"{day} 08:00{offset}", f"{day} 12:00{offset}"),
            (f"{day} 13:00{offset}", f"{day} 20:00{offset}"),
        ]
    assert walls(result.free, zone) == expected
    assert [wall(item.starts_at, zone)[-6:] for item in result.busy] == offsets
    # The same local hours lie an hour apart in UTC on either side of the change.
    first_open, last_open = result.free[0][0], result.free[-2][0]
    shift = (last_open - first_open) - (days[-1] - days[0])
    assert abs(shift) == timedelta(hours=1)


async def test_a_room_open_all_day_has_23_hours_on_the_spring_forward_day(
    availability: AvailabilityService, create_room: CreateRoom, owner_id: uuid.UUID
) -> None:
    room = await create_room(
        policy={"opening_hours": {"sun": [{"opens": "00:00", "closes": "00:00"}]}}
    )

    result = await availability.of_room(
        room=room,
        window_start=at("2027-03-27 00:00"),
        window_end=at("2027-03-29 00:00"),
        viewer_id=owner_id,
    )

    assert walls(result.free) == [("2027-03-28 00:00+01:00", "2027-03-29 00:00+02:00")]
    assert result.free[0][1] - result.free[0][0] == timedelta(hours=23)


# --- rooms free for a time -------------------------------------------------------------


async def free_rooms(
    app: FastAPI,
    availability: AvailabilityService,
    starts_at: datetime,
    ends_at: datetime,
    *,
    min_capacity: int | None = None,
    amenities: tuple[str, ...] = (),
    limit: int = 20,
    after: tuple[Any, uuid.UUID] | None = None,
) -> tuple[list[Room], tuple[Any, uuid.UUID] | None]:
    """One page of free rooms, as the route asks for it."""
    page = PageRequest(limit=limit, after=after, codec=app.state.cursor_codec)
    return await availability.free_rooms(
        starts_at=starts_at,
        ends_at=ends_at,
        min_capacity=min_capacity,
        amenities=amenities,
        page=page,
    )


def names(rooms: Sequence[Room]) -> list[str]:
    """The rooms' names, in the order given."""
    return [room.name for room in rooms]


async def test_free_rooms_leave_out_rooms_taken_at_any_moment_of_the_range(
    app: FastAPI,
    availability: AvailabilityService,
    create_room: CreateRoom,
    insert: Insert,
) -> None:
    rooms = {name: await create_room(name=name) for name in "ABCDEFG"}
    await insert.booking(rooms["A"], monday("09:00"), monday("10:00"))  # ends as the range starts
    await insert.booking(rooms["B"], monday("11:00"), monday("12:00"))  # starts as it ends
    await insert.booking(rooms["C"], monday("10:45"), monday("11:15"))  # overlaps its end
    await insert.booking(rooms["D"], monday("09:00"), monday("09:45"), buffer_minutes=30)
    await insert.blackout(rooms["E"], monday("10:30"), monday("10:45"))
    await insert.booking(rooms["F"], monday("10:00"), monday("11:00"), status="cancelled")
    await insert.booking(rooms["G"], monday("10:00"), monday("11:00"), status="pending")

    found, next_key = await free_rooms(app, availability, monday("10:00"), monday("11:00"))

    # D's buffer runs to 10:15; cancelled F is free again; pending G holds its room.
    assert names(found) == ["A", "B", "F"]
    assert next_key is None


async def test_a_free_room_leaves_room_for_its_own_buffer(
    app: FastAPI,
    availability: AvailabilityService,
    create_room: CreateRoom,
    insert: Insert,
) -> None:
    buffered = await create_room(name="Buffered", policy={"buffer_minutes": 30})
    plain = await create_room(name="Plain")
    for room in (buffered, plain):
        await insert.booking(room, monday("11:15"), monday("12:00"))

    found, _ = await free_rooms(app, availability, monday("10:00"), monday("11:00"))

    # A booking until 11:00 would block Buffered until 11:30, into the 11:15 booking.
    assert names(found) == ["Plain"]


async def test_free_rooms_are_active_and_open_for_the_whole_range(
    app: FastAPI, availability: AvailabilityService, create_room: CreateRoom
) -> None:
    await create_room(name="Closed on Saturdays")
    await create_room(name="Inactive", is_active=False, policy={"opening_hours": EVERY_DAY_8_TO_20})
    await create_room(name="Open every day", policy={"opening_hours": EVERY_DAY_8_TO_20})
    await create_room(
        name="Open in New York",
        time_zone="America/New_York",
        policy={"opening_hours": EVERY_DAY_8_TO_20},
    )

    morning, _ = await free_rooms(
        app, availability, at(f"{SATURDAY} 10:00"), at(f"{SATURDAY} 11:00")
    )
    evening, _ = await free_rooms(
        app, availability, at(f"{SATURDAY} 19:30"), at(f"{SATURDAY} 20:30")
    )

    # 10:00 in Berlin is 04:00 in New York; 19:30-20:30 Berlin is 13:30-14:30 there.
    assert names(morning) == ["Open every day"]
    assert names(evening) == ["Open in New York"]


async def test_free_rooms_filter_by_capacity_and_all_amenities(
    app: FastAPI, availability: AvailabilityService, create_room: CreateRoom
) -> None:
    await create_room(name="Small", capacity=4, amenities=["projector"])
    await create_room(name="Large", capacity=12, amenities=["projector", "whiteboard"])
    await create_room(name="Medium", capacity=8, amenities=["whiteboard"])
    window = (monday("10:00"), monday("11:00"))

    roomy, _ = await free_rooms(app, availability, *window, min_capacity=8)
    equipped, _ = await free_rooms(app, availability, *window, amenities=("projector",))
    both, _ = await free_rooms(
        app, availability, *window, min_capacity=5, amenities=("projector", "whiteboard")
    )
    none, _ = await free_rooms(app, availability, *window, amenities=("projector", "video"))

    assert names(roomy) == ["Large", "Medium"]
    assert names(equipped) == ["Large", "Small"]
    assert names(both) == ["Large"]
    assert none == []


async def test_free_rooms_come_in_full_pages_past_closed_and_taken_rooms(
    app: FastAPI,
    availability: AvailabilityService,
    create_room: CreateRoom,
    insert: Insert,
    db_session: AsyncSession,
) -> None:
    window = (monday("10:00"), monday("11:00"))
    for index in range(12):
        room = await create_room(name=f"Room {index:02}")
        if index % 3 == 1:
            await insert.booking(room, *window)
        elif index % 3 == 2:
            await room_closed_on_mondays(room, db_session)

    pages: list[list[str]] = []
    after = None
    while True:
        found, after = await free_rooms(app, availability, *window, limit=2, after=after)
        pages.append(names(found))
        if after is None:
            break

    # Each page is full, and the last one says it is the last.
    assert pages == [["Room 00", "Room 03"], ["Room 06", "Room 09"]]


async def room_closed_on_mondays(room: Room, session: AsyncSession) -> None:
    """Close the room on Mondays (it keeps the default hours on other work days)."""
    room.policy = {"opening_hours": {"tue": [{"opens": "08:00", "closes": "20:00"}]}}
    await session.flush()


@pytest.mark.parametrize(
    ("length", "message", "kind"),
    [
        (timedelta(0), "Must be after `start`.", "range"),
        (
            timedelta(days=31, minutes=1),
            "Must be at most 31 days after `start`.",
            "window_too_long",
        ),
    ],
)
async def test_free_rooms_refuse_an_empty_or_overlong_range(
    app: FastAPI, availability: AvailabilityService, length: timedelta, message: str, kind: str
) -> None:
    start = monday("10:00")
    with pytest.raises(ValidationFailed) as refused:
        await free_rooms(app, availability, start, start + length)
    assert refused.value.errors == [{"field": "end", "message": message, "type": kind}]
