"""Every query on the `booking_series` table and on the bookings of a series."""

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.bookings.models import HOLDING_STATUSES, Booking
from app.bookings.series_models import BookingSeries
from app.core.db import update_bumping_version


class SeriesRepository:
    """Reads and writes series, and reads their occurrences, in the caller's session."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, *, series_id: uuid.UUID) -> BookingSeries | None:
        """Load one series by id."""
        return await self.session.get(BookingSeries, series_id)

    async def add(self, *, series: BookingSeries) -> BookingSeries:
        """Insert a series and read back its server-set columns."""
        self.session.add(series)
        await self.session.flush()
        return series

    async def update_versioned(
        self, *, series_id: uuid.UUID, version: int, values: Mapping[str, Any]
    ) -> BookingSeries | None:
        """Apply `values` only if the series still has `version`; None when it moved on."""
        return await update_bumping_version(
            self.session,
            BookingSeries,
            where=(
                BookingSeries.id == series_id,
                BookingSeries.version == version,
            ),
            values=values,
        )

    async def occurrences(self, *, series_id: uuid.UUID) -> Sequence[Booking]:
        """Every booking of the series, whatever its status, in time order."""
        statement = (
            select(Booking)
            .where(Booking.series_id == series_id)
            .order_by(Booking.starts_at, Booking.id)
        )
        return (await self.session.scalars(statement)).all()

    async def holding_from(
        self, *, series_id: uuid.UUID, starts_from: datetime
    ) -> Sequence[Booking]:
        """The series' bookings that hold their room and start at or after `starts_from`."""
        statement = (
            select(Booking)
            .where(
                Booking.series_id == series_id,
                Booking.status.in_(HOLDING_STATUSES),
                Booking.starts_at >= starts_from,
            )
            .order_by(Booking.starts_at, Booking.id)
        )
        return (await self.session.scalars(statement)).all()
