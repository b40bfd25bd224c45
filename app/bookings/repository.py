"""Every query on the `rooms` and `bookings` tables."""

import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from functools import lru_cache
from typing import Any, TypeVarTuple

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    DateTime,
    Integer,
    Interval,
    Row,
    Select,
    String,
    and_,
    bindparam,
    exists,
    func,
    literal,
    literal_column,
    or_,
    select,
    text,
)
from sqlalchemy.ext.asyncio import AsyncSession

from app.bookings.models import HOLDING_STATUSES, Booking, BookingKind, BookingStatus, Room
from app.bookings.room_schemas import RoomFilter
from app.bookings.schemas import BookingFilter
from app.core.db import LIKE_ESCAPE, contains_pattern, update_bumping_version
from app.core.locks import WAIT_FOR_LOCK, advisory_lock_id
from app.core.pagination import (
    PageRequest,
    SortValue,
    fetch_prebuilt_page,
    filters_given,
    keyset_statement,
)

ROOM_FOR_SHARE = (
    select(Room)
    .where(Room.id == bindparam("room_id"))
    .with_for_update(read=True)
    .execution_options(populate_existing=True)
)
"""A room, locked against changes, in its latest state; built once (it runs with every booking)."""
ROOM_BY_ID = select(Room).where(Room.id == bindparam("room_id"))
"""A room by id; built once (`Session.get` builds its SELECT on every call)."""
BOOKING_BY_ID = select(Booking).where(
    Booking.id == bindparam("booking_id"), Booking.kind == BookingKind.BOOKING.value
)
"""One booking, never a blackout; built once (`Session.get` builds its SELECT on every call)."""
ROOM_TURN_PREFIX = b"roombook.room-turn:"
"""Salts the advisory lock ids of rooms' turns apart from other advisory locks' ids."""
TAKE_ROOM_TURN = text(WAIT_FOR_LOCK)


def room_turn_lock_id(room_id: uuid.UUID) -> int:
    """The advisory lock id of a room's turn."""
    return advisory_lock_id(ROOM_TURN_PREFIX, room_id.bytes)


async def take_room_turn(session: AsyncSession, *, room_id: uuid.UUID) -> None:
    """Wait until no other transaction is writing the room's blocked time."""
    await session.execute(TAKE_ROOM_TURN, {"id": room_turn_lock_id(room_id)})


@asynccontextmanager
async def claiming_room_time(session: AsyncSession, *, room_id: uuid.UUID) -> AsyncIterator[None]:
    """A savepoint in which to write a room's blocked time, in turn with its other writers.

    The exclusion constraint still decides who gets a time. The turn keeps writers of one
    room from inserting at once: each would wait on the others' uncommitted rows, and
    PostgreSQL breaks such cycles as deadlocks, one per `deadlock_timeout` (1 s), which
    stalled 64 concurrent claims of one slot for seconds. A refused write gives the turn
    back with its savepoint; a kept one holds it until the transaction ends.
    """
    async with session.begin_nested():
        await take_room_turn(session, room_id=room_id)
        yield


class RoomRepository:
    """Reads and writes rooms in the caller's session."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, *, room_id: uuid.UUID, for_share: bool = False) -> Room | None:
        """Load one room by id; `for_share` locks it against changes and reads its latest state."""
        found = await self.session.execute(
            ROOM_FOR_SHARE if for_share else ROOM_BY_ID, {"room_id": room_id}
        )
        return found.scalar_one_or_none()

    async def add(self, *, room: Room) -> Room:
        """Insert a room and read back its server-set columns."""
        self.session.add(room)
        await self.session.flush()
        return room

    async def update_versioned(
        self, *, room_id: uuid.UUID, version: int, values: Mapping[str, Any]
    ) -> Room | None:
        """Apply `values` only if the room still has `version`; None when it moved on."""
        return await update_bumping_version(
            self.session,
            Room,
            where=(
                Room.id == room_id,
                Room.version == version,
            ),
            values=values,
        )

    async def list_page(
        self, *, filters: RoomFilter, page: PageRequest
    ) -> tuple[Sequence[Room], tuple[SortValue, uuid.UUID] | None]:
        """One page of matching rooms, active or not, by name (then id)."""
        parameters = {
            "min_capacity": filters.min_capacity,
            "amenities": list(filters.amenities) or None,
            "location": filters.location,
            "q": None if filters.q is None else contains_pattern(filters.q),
        }
        statement = rooms_page_statement(
            filtered_by=filters_given(parameters), after=page.after is not None
        )
        return await fetch_prebuilt_page(
            self.session,
            statement=statement,
            parameters=parameters,
            sort_key="name",
            id_key="id",
            page=page,
        )


ROOM_FILTERS: dict[str, Callable[[BindParameter[Any]], ColumnElement[bool]]] = {
    "min_capacity": lambda value: Room.capacity >= value,
    "amenities": Room.amenities.contains,
    "location": lambda value: func.lower(Room.building) == func.lower(value),
    "q": lambda value: or_(
        Room.name.ilike(value, escape=LIKE_ESCAPE),
        Room.description.ilike(value, escape=LIKE_ESCAPE),
    ),
}
"""Each filter of the room list, as the condition on its bound parameter."""


@lru_cache(maxsize=32)
def rooms_page_statement(*, filtered_by: frozenset[str], after: bool) -> Select[Room]:
    """A page of rooms by name, for one combination of filters, built once."""
    statement = select(Room)
    for name in sorted(filtered_by):
        # `lower()` takes text or a range: the location's parameter must say which.
        value = bindparam(name, type_=String()) if name == "location" else bindparam(name)
        statement = statement.where(ROOM_FILTERS[name](value))
    return keyset_statement(
        statement, sort_column=Room.name, id_column=Room.id, after=after, descending=False
    )


HOLDING: BindParameter[list[str]] = bindparam(
    "holding", list(HOLDING_STATUSES), expanding=True, literal_execute=True
)
"""The statuses that hold a room, written into the SQL as literals: the gist index of
`bookings_no_overlap` is partial (`WHERE status IN ('pending', 'confirmed')`), and the
planner can use it only when it sees the same values, not parameters."""
ONE_MINUTE = literal_column("interval '1 minute'", Interval)

Columns = TypeVarTuple("Columns")

BlockingRow = Row[datetime, datetime, datetime, str, str, uuid.UUID]
"""`starts_at, ends_at, blocked_until, kind, status, owner_id` of a row holding a room."""


def _holding(room_id: Any, span: ColumnElement[Any]) -> ColumnElement[bool]:
    """Rows that hold the room and whose blocked range overlaps `span` (the gist index's query)."""
    return and_(
        Booking.room_id == room_id,
        Booking.status.in_(HOLDING),
        Booking.blocked.op("&&")(span),
    )


def _span(starts_at: Any, ends_at: Any) -> ColumnElement[Any]:
    return func.tstzrange(starts_at, ends_at, "[)")


def _window_held(statement: Select[*Columns], *, leaves_one_out: bool) -> Select[*Columns]:
    """`statement` over the rows holding room `:room_id` in `[:window_start, :window_end)`,
    less the booking `:other_than` when `leaves_one_out`."""
    statement = statement.where(
        _holding(
            bindparam("room_id", type_=Booking.room_id.type),
            _span(
                bindparam("window_start", type_=Booking.starts_at.type),
                bindparam("window_end", type_=Booking.ends_at.type),
            ),
        )
    )
    return _leaving_one_out(statement) if leaves_one_out else statement


def _window_parameters(
    *,
    room_id: uuid.UUID,
    window_start: datetime,
    window_end: datetime,
    other_than: uuid.UUID | None,
) -> dict[str, Any]:
    """The parameters of a `_window_held` statement."""
    return {
        "room_id": room_id,
        "window_start": window_start,
        "window_end": window_end,
        "other_than": other_than,
    }


def _leaving_one_out(statement: Select[*Columns]) -> Select[*Columns]:
    """`statement` less the booking `:other_than` (one being moved is in nobody's way)."""
    return statement.where(Booking.id != bindparam("other_than", type_=Booking.id.type))


BLOCKING_ROWS = _window_held(
    select(
        Booking.starts_at,
        Booking.ends_at,
        Booking.blocked_until,
        Booking.kind,
        Booking.status,
        Booking.owner_id,
    ),
    leaves_one_out=False,
).order_by(Booking.starts_at)
"""Bookings and blackouts holding a room in a window, built once (every availability asks)."""


def _blocked_by_booking_in_room(
    starts_at: datetime | BindParameter[Any],
    ends_at: datetime | BindParameter[Any],
    default_buffer_minutes: int | BindParameter[Any],
) -> ColumnElement[Any]:
    """The range a booking of `[starts_at, ends_at)` would block in the room of the query.

    It ends after the room's own buffer (its override, else the default): exactly what the
    exclusion constraint would compare with the rows holding that room.
    """
    buffer = func.coalesce(
        Room.policy["buffer_minutes"].astext.cast(Integer), default_buffer_minutes
    )
    end = (
        ends_at if isinstance(ends_at, BindParameter) else literal(ends_at, DateTime(timezone=True))
    )
    return _span(starts_at, end + buffer * ONE_MINUTE)


@lru_cache(maxsize=16)
def unblocked_rooms_statement(
    *, by_capacity: bool, by_amenities: bool, after: bool
) -> Select[Room]:
    """Active rooms nothing blocks for a booking, by name, for one combination of filters.

    Built once per combination (free rooms are asked for often and the statement is large).
    """
    blocked = _blocked_by_booking_in_room(
        bindparam("starts_at", type_=Booking.starts_at.type),
        bindparam("ends_at", type_=Booking.ends_at.type),
        bindparam("default_buffer_minutes", type_=Integer()),
    )
    statement = select(Room).where(
        Room.is_active.is_(True), ~exists().where(_holding(Room.id, blocked))
    )
    if by_capacity:
        statement = statement.where(Room.capacity >= bindparam("min_capacity"))
    if by_amenities:
        statement = statement.where(Room.amenities.contains(bindparam("amenities")))
    return keyset_statement(
        statement, sort_column=Room.name, id_column=Room.id, after=after, descending=False
    )


@lru_cache(maxsize=2)
def kinds_in_the_way_statement(*, leaves_one_out: bool) -> Select[str]:
    """The kinds holding a room in a window; built once per shape (refusals explain with it)."""
    return _window_held(select(Booking.kind).distinct(), leaves_one_out=leaves_one_out)


@lru_cache(maxsize=2)
def blocked_ranges_statement(*, leaves_one_out: bool) -> Select[datetime, datetime]:
    """The blocked ranges holding a room in a window; built once per shape."""
    return _window_held(
        select(Booking.starts_at, Booking.blocked_until), leaves_one_out=leaves_one_out
    )


@lru_cache(maxsize=2)
def other_free_rooms_statement(*, leaves_one_out: bool) -> Select[Room]:
    """Other active rooms that hold the attendees and nothing blocks, smallest first.

    Built once per shape: every refused booking looks for rooms to offer instead.
    """
    blocked = _blocked_by_booking_in_room(
        bindparam("starts_at", type_=Booking.starts_at.type),
        bindparam("ends_at", type_=Booking.ends_at.type),
        bindparam("default_buffer_minutes", type_=Integer()),
    )
    in_the_way = select(Booking.id).where(_holding(Room.id, blocked))
    if leaves_one_out:
        in_the_way = _leaving_one_out(in_the_way)
    return (
        select(Room)
        .where(
            Room.is_active.is_(True),
            Room.capacity >= bindparam("attendees", type_=Integer()),
            Room.id != bindparam("other_room", type_=Room.id.type),
            ~in_the_way.exists(),
        )
        .order_by(Room.capacity, Room.name, Room.id)
        .limit(bindparam("rooms_limit", type_=Integer()))
    )


class BlackoutRepository:
    """Reads and writes blackouts (never bookings) in the caller's session."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, *, room_id: uuid.UUID, blackout_id: uuid.UUID) -> Booking | None:
        """The room's blackout in force with this id; None for anything else."""
        statement = select(Booking).where(
            Booking.id == blackout_id,
            Booking.room_id == room_id,
            Booking.kind == BookingKind.BLACKOUT.value,
            Booking.status == BookingStatus.CONFIRMED.value,
        )
        return await self.session.scalar(statement)

    async def add(self, *, blackout: Booking) -> Booking:
        """Insert a blackout and read back its server-set columns."""
        self.session.add(blackout)
        await self.session.flush()
        return blackout

    async def cancel(
        self, *, blackout_id: uuid.UUID, cancelled_by: uuid.UUID, cancelled_at: datetime
    ) -> Booking | None:
        """Lift a blackout in force; None if it was lifted already."""
        return await update_bumping_version(
            self.session,
            Booking,
            where=(
                Booking.id == blackout_id,
                Booking.kind == BookingKind.BLACKOUT.value,
                Booking.status == BookingStatus.CONFIRMED.value,
            ),
            values={
                "status": BookingStatus.CANCELLED.value,
                "cancelled_by": cancelled_by,
                "cancelled_at": cancelled_at,
            },
        )

    async def list_page(
        self, *, room_id: uuid.UUID, page: PageRequest
    ) -> tuple[Sequence[Booking], tuple[SortValue, uuid.UUID] | None]:
        """One page of the room's blackouts in force by start (then id), earliest first."""
        return await fetch_prebuilt_page(
            self.session,
            statement=blackouts_page_statement(after=page.after is not None),
            parameters={"room_id": room_id},
            sort_key="starts_at",
            id_key="id",
            page=page,
        )


def earliest_first(statement: Select[Booking], *, after: bool) -> Select[Booking]:
    """`statement` as a page of rows by start (then id), earliest first."""
    return keyset_statement(
        statement,
        sort_column=Booking.starts_at,
        id_column=Booking.id,
        after=after,
        descending=False,
    )


@lru_cache(maxsize=2)
def blackouts_page_statement(*, after: bool) -> Select[Booking]:
    """A page of one room's blackouts in force by start; built once per shape."""
    statement = select(Booking).where(
        Booking.room_id == bindparam("room_id"),
        Booking.kind == BookingKind.BLACKOUT.value,
        Booking.status == BookingStatus.CONFIRMED.value,
    )
    return earliest_first(statement, after=after)


class BookingRepository:
    """Reads and writes bookings (never blackouts) in the caller's session."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, *, booking_id: uuid.UUID) -> Booking | None:
        """Load one booking by id; a blackout's id finds nothing."""
        found = await self.session.execute(BOOKING_BY_ID, {"booking_id": booking_id})
        return found.scalar_one_or_none()

    async def add(self, *, booking: Booking) -> Booking:
        """Insert a booking and read back its server-set columns."""
        self.session.add(booking)
        await self.session.flush()
        return booking

    async def update_versioned(
        self, *, booking_id: uuid.UUID, version: int, values: Mapping[str, Any]
    ) -> Booking | None:
        """Apply `values` only if the booking still has `version`; None when it moved on."""
        return await update_bumping_version(
            self.session,
            Booking,
            where=(
                Booking.id == booking_id,
                Booking.version == version,
            ),
            values=values,
        )

    async def kinds_in_the_way(
        self,
        *,
        room_id: uuid.UUID,
        starts_at: datetime,
        blocked_until: datetime,
        other_than: uuid.UUID | None,
    ) -> set[BookingKind]:
        """The kinds of rows (booking, blackout) holding the room somewhere in the range."""
        kinds = await self.session.scalars(
            kinds_in_the_way_statement(leaves_one_out=other_than is not None),
            _window_parameters(
                room_id=room_id,
                window_start=starts_at,
                window_end=blocked_until,
                other_than=other_than,
            ),
        )
        return {BookingKind(kind) for kind in kinds.all()}

    async def blocked_ranges(
        self,
        *,
        room_id: uuid.UUID,
        window_start: datetime,
        window_end: datetime,
        other_than: uuid.UUID | None,
    ) -> list[tuple[datetime, datetime]]:
        """The blocked ranges (buffers included) of the rows holding the room in the window."""
        rows = await self.session.execute(
            blocked_ranges_statement(leaves_one_out=other_than is not None),
            _window_parameters(
                room_id=room_id,
                window_start=window_start,
                window_end=window_end,
                other_than=other_than,
            ),
        )
        return [(row.starts_at, row.blocked_until) for row in rows.all()]

    async def free_rooms(
        self,
        *,
        starts_at: datetime,
        ends_at: datetime,
        attendees: int,
        default_buffer_minutes: int,
        other_room: uuid.UUID,
        other_than: uuid.UUID | None,
        limit: int,
    ) -> Sequence[Room]:
        """Active rooms holding `attendees` with nothing in the way of `[starts_at, ends_at)`.

        Each room's own buffer (its override, else the default) extends the range it must
        have free, as a booking there would block it; `other_than` (a booking being moved)
        is not in anyone's way. Smallest fitting room first.
        """
        rooms = await self.session.scalars(
            other_free_rooms_statement(leaves_one_out=other_than is not None),
            {
                "starts_at": starts_at,
                "ends_at": ends_at,
                "default_buffer_minutes": default_buffer_minutes,
                "attendees": attendees,
                "other_room": other_room,
                "other_than": other_than,
                "rooms_limit": limit,
            },
        )
        return rooms.all()

    async def list_page(
        self, *, filters: BookingFilter, page: PageRequest
    ) -> tuple[Sequence[Booking], tuple[SortValue, uuid.UUID] | None]:
        """One page of matching bookings by start (then id), earliest first."""
        parameters = {
            "owner_id": filters.owner_id,
            "room_id": filters.room_id,
            "status": None if filters.status is None else filters.status.value,
            "starts_from": filters.starts_from,
            "starts_before": filters.starts_before,
        }
        statement = bookings_page_statement(
            filtered_by=filters_given(parameters),
            after=page.after is not None,
        )
        return await fetch_prebuilt_page(
            self.session,
            statement=statement,
            parameters=parameters,
            sort_key="starts_at",
            id_key="id",
            page=page,
        )


BOOKING_FILTERS: dict[str, Callable[[BindParameter[Any]], ColumnElement[bool]]] = {
    "owner_id": lambda value: Booking.owner_id == value,
    "room_id": lambda value: Booking.room_id == value,
    "status": lambda value: Booking.status == value,
    "starts_from": lambda value: Booking.starts_at >= value,
    "starts_before": lambda value: Booking.starts_at < value,
}
"""Each filter of the booking list, as the condition on its bound parameter."""


@lru_cache(maxsize=128)
def bookings_page_statement(*, filtered_by: frozenset[str], after: bool) -> Select[Booking]:
    """A page of bookings by start, for one combination of filters, built once."""
    statement = select(Booking).where(Booking.kind == BookingKind.BOOKING.value)
    for name in sorted(filtered_by):
        # A bound parameter takes the type of the column it is compared with.
        statement = statement.where(BOOKING_FILTERS[name](bindparam(name)))
    return earliest_first(statement, after=after)


class AvailabilityRepository:
    """The queries behind availability: what blocks a room, and which rooms nothing blocks."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def blocking_rows(
        self, *, room_id: uuid.UUID, window_start: datetime, window_end: datetime
    ) -> Sequence[BlockingRow]:
        """Bookings and blackouts holding the room whose blocked range meets the window."""
        parameters = {"room_id": room_id, "window_start": window_start, "window_end": window_end}
        return (await self.session.execute(BLOCKING_ROWS, parameters)).all()

    async def unblocked_rooms(
        self,
        *,
        starts_at: datetime,
        ends_at: datetime,
        default_buffer_minutes: int,
        min_capacity: int | None,
        amenities: Sequence[str],
        after: tuple[SortValue, uuid.UUID] | None,
        limit: int,
    ) -> Sequence[Room]:
        """Active matching rooms a booking of `[starts_at, ends_at)` would fit in, by name."""
        statement = unblocked_rooms_statement(
            by_capacity=min_capacity is not None,
            by_amenities=bool(amenities),
            after=after is not None,
        )
        parameters: dict[str, Any] = {
            "starts_at": starts_at,
            "ends_at": ends_at,
            "default_buffer_minutes": default_buffer_minutes,
            "min_capacity": min_capacity,
            "amenities": list(amenities),
            "page_limit": limit,
        }
        if after is not None:
            parameters["after_sort"], parameters["after_id"] = after
        return (await self.session.scalars(statement, parameters)).all()
