"""Every query of the calendar feeds: feed tokens, and the active bookings a feed carries."""

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Row,
    String,
    Uuid,
    column,
    delete,
    func,
    select,
    table,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.bookings.models import HOLDING_STATUSES, Booking, BookingKind, CalendarToken, Room

USERS = table("users", column("id", Uuid), column("role", String), column("is_active", Boolean))
"""The columns of users' table a feed lookup reads: whether the token's owner may still use it
(active) and which feeds (role). One join with the token keeps the lookup one round trip."""

FeedRow = Row[Booking, Room]
"""An active booking with its room (name, place, time zone), as a feed renders it."""


class CalendarFeedRepository:
    """Calendar tokens and the bookings of feeds, in the caller's session."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def holder_of(self, *, token_hash: bytes) -> Row[uuid.UUID, str] | None:
        """`(user_id, role)` of the active person whose token has this hash; None otherwise."""
        statement = (
            select(CalendarToken.user_id, USERS.c.role)
            .join(USERS, USERS.c.id == CalendarToken.user_id)
            .where(CalendarToken.token_hash == token_hash, USERS.c.is_active.is_(True))
        )
        return (await self.session.execute(statement)).one_or_none()

    async def lock_current(self, *, user_id: uuid.UUID) -> datetime | None:
        """When the person's current token was issued (None without one), locking its row."""
        statement = (
            select(CalendarToken.created_at)
            .where(CalendarToken.user_id == user_id)
            .with_for_update()
        )
        return (await self.session.scalars(statement)).one_or_none()

    async def store(self, *, user_id: uuid.UUID, token_hash: bytes) -> datetime:
        """Make `token_hash` the person's only token (replacing any other); when it was issued."""
        new = insert(CalendarToken).values(user_id=user_id, token_hash=token_hash)
        statement = new.on_conflict_do_update(
            index_elements=[CalendarToken.user_id],
            set_={"token_hash": new.excluded.token_hash, "created_at": func.now()},
        ).returning(CalendarToken.created_at)
        created_at: datetime = (await self.session.scalars(statement)).one()
        return created_at

    async def delete(self, *, user_id: uuid.UUID) -> datetime | None:
        """Delete the person's token; when the deleted one was issued, None if there was none."""
        statement = (
            delete(CalendarToken)
            .where(CalendarToken.user_id == user_id)
            .returning(CalendarToken.created_at)
        )
        return (await self.session.scalars(statement)).one_or_none()

    async def room(self, *, room_id: uuid.UUID) -> Room | None:
        """Load one room by id."""
        return await self.session.get(Room, room_id)

    async def owned_bookings(
        self, *, owner_id: uuid.UUID, starts_from: datetime, starts_before: datetime
    ) -> Sequence[FeedRow]:
        """The person's active bookings starting in the window, with their rooms, by start."""
        return await self._active(Booking.owner_id == owner_id, starts_from, starts_before)

    async def room_bookings(
        self, *, room_id: uuid.UUID, starts_from: datetime, starts_before: datetime
    ) -> Sequence[FeedRow]:
        """The room's active bookings starting in the window, with the room, by start."""
        return await self._active(Booking.room_id == room_id, starts_from, starts_before)

    async def _active(
        self, whose: ColumnElement[bool], starts_from: datetime, starts_before: datetime
    ) -> Sequence[FeedRow]:
        # `(owner_id | room_id, starts_at, id)` indexes serve both feeds in this order.
        statement = (
            select(Booking, Room)
            .join(Room, Room.id == Booking.room_id)
            .where(
                whose,
                Booking.kind == BookingKind.BOOKING.value,
                Booking.status.in_(HOLDING_STATUSES),
                Booking.starts_at >= starts_from,
                Booking.starts_at < starts_before,
            )
            .order_by(Booking.starts_at, Booking.id)
        )
        return (await self.session.execute(statement)).all()
