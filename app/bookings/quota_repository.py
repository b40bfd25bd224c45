"""The queries behind members' quotas: the per-member lock, and what a member already holds."""

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ScalarSelect, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.bookings.models import HOLDING_STATUSES, Booking, BookingKind

LOCK_PREFIX = b"roombook.quota:"
"""Salts the advisory lock ids, so they do not coincide with other advisory locks' ids."""


@dataclass(frozen=True, slots=True)
class Held:
    """What a member already holds, as the quotas count it."""

    unended: int | None
    """Holding bookings not yet ended; None when not counted."""
    seconds: list[float]
    """Seconds held inside each window asked about, in the order asked."""


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

    async def held(
        self,
        *,
        owner_id: uuid.UUID,
        unended_after: datetime | None,
        windows: Sequence[tuple[datetime, datetime]],
        other_than: uuid.UUID | None,
    ) -> Held:
        """What the member holds, read in one round trip (one snapshot).

        Counts the bookings ending after `unended_after` (not when None) and sums the
        seconds held inside each window; `other_than` (a booking being moved) is left out
        of the sums.
        """
        columns: list[ScalarSelect[Any]] = [
            _seconds_held(owner_id=owner_id, window=window, other_than=other_than)
            for window in windows
        ]
        if unended_after is not None:
            columns.insert(0, _count_unended(owner_id=owner_id, now=unended_after))
        row = (await self.session.execute(select(*columns))).one()
        values = list(row)
        unended = None if unended_after is None else int(values.pop(0) or 0)
        return Held(unended=unended, seconds=[float(value or 0) for value in values])


def _holding_bookings_of(owner_id: uuid.UUID, other_than: uuid.UUID | None) -> list[Any]:
    """The member's bookings (no blackouts) that hold a room, less one being moved."""
    conditions: list[Any] = [
        Booking.owner_id == owner_id,
        Booking.kind == BookingKind.BOOKING.value,
        Booking.status.in_(HOLDING_STATUSES),
    ]
    if other_than is not None:
        conditions.append(Booking.id != other_than)
    return conditions


def _count_unended(*, owner_id: uuid.UUID, now: datetime) -> ScalarSelect[Any]:
    """How many of the member's holding bookings end after `now`."""
    return (
        select(func.count())
        .where(*_holding_bookings_of(owner_id, None), Booking.ends_at > now)
        .scalar_subquery()
    )


def _seconds_held(
    *, owner_id: uuid.UUID, window: tuple[datetime, datetime], other_than: uuid.UUID | None
) -> ScalarSelect[Any]:
    """Seconds of the member's holding bookings inside the window, clipped to it."""
    window_start, window_end = window
    clipped = func.least(Booking.ends_at, window_end) - func.greatest(
        Booking.starts_at, window_start
    )
    return (
        select(func.coalesce(func.sum(func.extract("epoch", clipped)), 0))
        .where(
            *_holding_bookings_of(owner_id, other_than),
            Booking.starts_at < window_end,
            Booking.ends_at > window_start,
        )
        .scalar_subquery()
    )
