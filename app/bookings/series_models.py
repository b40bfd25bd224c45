"""The `booking_series` table: a recurring booking's template and rule; occurrences are bookings.

Each occurrence is its own `bookings` row pointing here (`bookings.series_id`), so the
exclusion constraint guards every occurrence like any other booking.
"""

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, ForeignKey, Integer, String, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, Timestamped, UUIDPrimaryKey


class BookingSeries(UUIDPrimaryKey, Timestamped, Base):
    """A recurring booking of a room: what is booked, and when it recurs."""

    __tablename__ = "booking_series"
    __table_args__ = (
        CheckConstraint("version > 0", name="version_positive"),
        CheckConstraint("starts_at < ends_at", name="range_valid"),
    )
    __mapper_args__ = {"eager_defaults": True}  # noqa: RUF012

    room_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("rooms.id"))
    """The room every occurrence was booked in."""
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    """Who booked the series; the owner of every occurrence."""
    title: Mapped[str] = mapped_column(String(200))
    """The occurrences' title as last set for the whole series."""
    note: Mapped[str | None] = mapped_column(String(2000))
    """The occurrences' note as last set for the whole series."""
    attendees: Mapped[int] = mapped_column(Integer)
    """The occurrences' attendee count as last set for the whole series."""
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    """Start of the rule's first date (DTSTART); its local time of day is every occurrence's."""
    ends_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    """End of the first occurrence: every occurrence lasts `ends_at - starts_at`."""
    time_zone: Mapped[str] = mapped_column(String(64))
    """The room's IANA zone when the series was made: the wall clock the rule ran on."""
    rrule: Mapped[str] = mapped_column(String(500))
    """The RRULE in canonical form (`FREQ=WEEKLY;BYDAY=MO;COUNT=10`)."""
    exdates: Mapped[list[datetime]] = mapped_column(
        ARRAY(DateTime(timezone=True)), server_default=text("'{}'")
    )
    """Starts the rule yields that were left out (EXDATE)."""
    version: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    """Bumped by every operation on the series; the ETag, checked against `If-Match`."""
