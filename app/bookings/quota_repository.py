"""The queries behind members' quotas: the per-member lock, and what a member already holds."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import ScalarSelect, Select, bindparam, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.bookings.models import HOLDING_STATUSES, Booking, BookingKind
from app.core.locks import WAIT_FOR_LOCK, advisory_lock_id

LOCK_PREFIX = b"roombook.quota:"
"""Salts the advisory lock ids, so they do not coincide with other advisory locks' ids."""
LOCK_OWNER = text(WAIT_FOR_LOCK)


@dataclass(frozen=True, slots=True)
class Held:
    """What a member already holds, as the quotas count it."""

    unended: int | None
    """Holding bookings not yet ended; None when not counted."""
    seconds: list[float]
    """Seconds held inside each window asked about, in the order asked."""


def owner_lock_id(owner_id: uuid.UUID) -> int:
    """The 64-bit advisory lock id of one member's quota."""
    return advisory_lock_id(LOCK_PREFIX, owner_id.bytes)


class QuotaRepository:
    """Locks a member's quota and sums what they hold, in the caller's transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def lock_owner(self, *, owner_id: uuid.UUID) -> None:
        """Wait for the member's quota lock; it is held until the transaction ends."""
        await self.session.execute(LOCK_OWNER, {"id": owner_lock_id(owner_id)})

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
        statement = held_statement(
            counts_unended=unended_after is not None,
            windows=len(windows),
            leaves_one_out=other_than is not None,
        )
        parameters: dict[str, Any] = {"owner_id": owner_id}
        if other_than is not None:
            parameters["other_than"] = other_than
        if unended_after is not None:
            parameters["unended_after"] = unended_after
        for number, (window_start, window_end) in enumerate(windows):
            parameters[f"window_start_{number}"] = window_start
            parameters[f"window_end_{number}"] = window_end
        row = (await self.session.execute(statement, parameters)).one()
        values = list(row)
        unended = None if unended_after is None else int(values.pop(0) or 0)
        return Held(unended=unended, seconds=[float(value or 0) for value in values])


@lru_cache(maxsize=16)
def held_statement(*, counts_unended: bool, windows: int, leaves_one_out: bool) -> Select[Any]:
    """The one SELECT of `QuotaRepository.held` for this shape, built once with parameters.

    Built per call, its construction and cache key cost more CPU than the rest of the
    quota check; there are only a few shapes (one or two weeks, a move or not).
    """
    columns = [
        _seconds_held(number=number, leaves_one_out=leaves_one_out) for number in range(windows)
    ]
    if counts_unended:
        columns.insert(0, _count_unended())
    return select(*columns)


def _holding_bookings(*, leaves_one_out: bool) -> list[Any]:
    """The member's bookings (no blackouts) that hold a room, less one being moved."""
    conditions: list[Any] = [
        Booking.owner_id == bindparam("owner_id"),
        Booking.kind == BookingKind.BOOKING.value,
        Booking.status.in_(HOLDING_STATUSES),
    ]
    if leaves_one_out:
        conditions.append(Booking.id != bindparam("other_than"))
    return conditions


def _count_unended() -> ScalarSelect[Any]:
    """How many of the member's holding bookings end after `unended_after`."""
    return (
        select(func.count())
        .where(
            *_holding_bookings(leaves_one_out=False),
            Booking.ends_at > bindparam("unended_after"),
        )
        .scalar_subquery()
    )


def _seconds_held(*, number: int, leaves_one_out: bool) -> ScalarSelect[Any]:
    """Seconds of the member's holding bookings inside window `number`, clipped to it."""
    window_start = bindparam(f"window_start_{number}", type_=Booking.starts_at.type)
    window_end = bindparam(f"window_end_{number}", type_=Booking.ends_at.type)
    clipped = func.least(Booking.ends_at, window_end) - func.greatest(
        Booking.starts_at, window_start
    )
    return (
        select(func.coalesce(func.sum(func.extract("epoch", clipped)), 0))
        .where(
            *_holding_bookings(leaves_one_out=leaves_one_out),
            Booking.starts_at < window_end,
            Booking.ends_at > window_start,
        )
        .scalar_subquery()
    )
