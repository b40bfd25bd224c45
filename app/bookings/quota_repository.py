"""The queries behind members' quotas: the per-member lock, and what a member already holds."""

import hashlib
import uuid
from datetime import datetime

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.bookings.models import HOLDING_STATUSES, Booking, BookingKind

LOCK_PREFIX = b"roombook.quota:"
"""Salts the advisory lock ids, so they do not coincide with other advisory locks' ids."""


def owner_lock_id(owner_id: uuid.UUID) -> int:
    """The 64-bit advisory lock id of one member's quota."""
    digest = hashlib.sha256(LOCK_PREFIX + owner_id.bytes).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class QuotaRepository:
    """Locks a member's quota and sums what they hold, in the caller's transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def lock_owner(self, *, owner_id: uuid.UUID) -> None:
        """Wait for the member's quota lock; it is held until the transaction ends."""
        await self.session.execute(
            text("SELECT pg_advisory_xact_lock(:id)"), {"id": owner_lock_id(owner_id)}
        )

    async def count_unended(
        self, *, owner_id: uuid.UUID, now: datetime, other_than: uuid.UUID | None
    ) -> int:
        """How many bookings the member holds (pending or confirmed) that end after `now`."""
        statement = select(func.count()).where(
            Booking.owner_id == owner_id,
            Booking.kind == BookingKind.BOOKING.value,
            Booking.status.in_(HOLDING_STATUSES),
            Booking.ends_at > now,
        )
        if other_than is not None:
            statement = statement.where(Booking.id != other_than)
        return await self.session.scalar(statement) or 0

    async def seconds_held(
        self,
        *,
        owner_id: uuid.UUID,
        window_start: datetime,
        window_end: datetime,
        other_than: uuid.UUID | None,
    ) -> float:
        """Seconds of the member's holding bookings that fall inside the window, clipped to it."""
        clipped = func.least(Booking.ends_at, window_end) - func.greatest(
            Booking.starts_at, window_start
        )
        statement = select(func.coalesce(func.sum(func.extract("epoch", clipped)), 0)).where(
            Booking.owner_id == owner_id,
            Booking.kind == BookingKind.BOOKING.value,
            Booking.status.in_(HOLDING_STATUSES),
            Booking.starts_at < window_end,
            Booking.ends_at > window_start,
        )
        if other_than is not None:
            statement = statement.where(Booking.id != other_than)
        return float(await self.session.scalar(statement) or 0)
