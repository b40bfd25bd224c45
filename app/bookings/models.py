"""The `rooms` and `bookings` tables; bookings and blackouts share one table and one constraint.

A blackout is a `bookings` row of kind `blackout`, so the exclusion constraint that keeps
bookings apart keeps them out of blackouts too. Nothing here is ever deleted: rooms are
deactivated, bookings and blackouts cancelled.
"""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Computed,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TSTZRANGE, ExcludeConstraint, Range
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, Timestamped, UUIDPrimaryKey

HOLDING_STATUSES = ("pending", "confirmed")
"""The statuses whose rows hold the room; the others never block anything."""
OVERLAP_CONSTRAINT = "bookings_no_overlap"
"""The exclusion constraint whose violation (SQLSTATE 23P01) means the slot is taken."""


class BookingKind(StrEnum):
    """What a `bookings` row is: a person's booking or a manager's blackout."""

    BOOKING = "booking"
    BLACKOUT = "blackout"


class BookingStatus(StrEnum):
    """Where a row is in its life; only `pending` and `confirmed` hold the room."""

    PENDING = "pending"
    CONFIRMED = "confirmed"
    REJECTED = "rejected"
    CANCELLED = "cancelled"


class Room(UUIDPrimaryKey, Timestamped, Base):
    """A bookable room with its location, equipment and booking policy overrides."""

    __tablename__ = "rooms"
    __table_args__ = (
        CheckConstraint("capacity > 0", name="capacity_positive"),
        CheckConstraint("version > 0", name="version_positive"),
        Index("uq_rooms_lower_name", text("lower(name)"), unique=True),
        Index("ix_rooms_name_id", "name", "id"),
        # Smallest fitting rooms first (a refused booking's alternatives) without a sort, so
        # the search stops probing bookings once it has enough rooms.
        Index("ix_rooms_capacity_name_id", "capacity", "name", "id"),
        # The list's `location` filter (building, any case) in the list's own order.
        Index("ix_rooms_lower_building_name_id", text("lower(building)"), "name", "id"),
        Index("ix_rooms_amenities", "amenities", postgresql_using="gin"),
    )
    # Server-set columns (timestamps, version) are read back with RETURNING, never lazily.
    __mapper_args__ = {"eager_defaults": True}  # noqa: RUF012

    name: Mapped[str] = mapped_column(String(100))
    """Display name, unique regardless of case (the unique index is on `lower(name)`)."""
    description: Mapped[str] = mapped_column(String(2000), server_default=text("''"))
    """Free text about the room; empty when none was given."""
    building: Mapped[str] = mapped_column(String(100))
    """Building the room is in."""
    floor: Mapped[str | None] = mapped_column(String(32))
    """Floor within the building, as people name it (`2`, `G`, `mezzanine`); null if none."""
    capacity: Mapped[int] = mapped_column(Integer)
    """Most people the room holds; a booking's attendees may not exceed it."""
    amenities: Mapped[list[str]] = mapped_column(
        ARRAY(String(32)), server_default=text("'{}'::character varying[]")
    )
    """Equipment tags (lower-case slugs), sorted and without duplicates; filtered with `@>`."""
    time_zone: Mapped[str] = mapped_column(String(64))
    """IANA time zone the room's opening hours and cut-offs are read in."""
    is_active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    """False once deactivated: no new bookings; the room and its history stay readable."""
    policy: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    """The room's `PolicyOverrides`: only the fields it overrides; `{}` keeps every default."""
    version: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    """Bumped by every update; the ETag, checked against `If-Match`."""


class Booking(UUIDPrimaryKey, Timestamped, Base):
    """A booking of a room for `[starts_at, ends_at)`, or a blackout that closes it."""

    __tablename__ = "bookings"
    __table_args__ = (
        CheckConstraint("kind IN ('booking', 'blackout')", name="kind_known"),
        CheckConstraint(
            "status IN ('pending', 'confirmed', 'rejected', 'cancelled')", name="status_known"
        ),
        CheckConstraint("attendees >= 0", name="attendees_not_negative"),
        CheckConstraint("version > 0", name="version_positive"),
        # Refuses empty, reversed and unbounded ranges; `blocked` covers `during`.
        CheckConstraint(
            "starts_at < ends_at AND ends_at <= blocked_until "
            "AND isfinite(starts_at) AND isfinite(blocked_until)",
            name="range_valid",
        ),
        CheckConstraint(
            "kind = 'booking' OR (attendees = 0 AND blocked_until = ends_at)",
            name="blackout_shape",
        ),
        # The guard against double booking: no two rows holding one room may overlap,
        # buffers included. PostgreSQL checks it under concurrency; no code path can race it.
        ExcludeConstraint(
            ("room_id", "="),
            ("blocked", "&&"),
            where=text("status IN ('pending', 'confirmed')"),
            using="gist",
            name=OVERLAP_CONSTRAINT,
        ),
        Index("ix_bookings_owner_id_starts_at_id", "owner_id", "starts_at", "id"),
        Index("ix_bookings_room_id_starts_at_id", "room_id", "starts_at", "id"),
        Index("ix_bookings_starts_at_id", "starts_at", "id"),
    )
    __mapper_args__ = {"eager_defaults": True}  # noqa: RUF012

    room_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("rooms.id"))
    """The room booked (or blacked out)."""
    kind: Mapped[str] = mapped_column(String(16), server_default=text("'booking'"))
    """`booking` or `blackout` (see `BookingKind`)."""
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    """Who booked; for a blackout, the manager who declared it."""
    title: Mapped[str] = mapped_column(String(200))
    """What the booking is for; a blackout's reason. Never shown to other members."""
    note: Mapped[str | None] = mapped_column(String(2000))
    """Optional longer text from the booker."""
    attendees: Mapped[int] = mapped_column(Integer)
    """People expected, at most the room's capacity when booked; 0 for blackouts."""
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    """First instant of the booking (inclusive)."""
    ends_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    """First instant after the booking (exclusive): back-to-back bookings do not overlap."""
    blocked_until: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    """`ends_at` plus the room's buffer when written; the room stays blocked until then."""
    # The two ranges exist for the constraint and the indexes, which SQL compares; Python
    # reads the instants above. Deferred, no load or RETURNING decodes them into objects.
    during: Mapped[Range[datetime]] = mapped_column(
        TSTZRANGE, Computed("tstzrange(starts_at, ends_at, '[)')", persisted=True), deferred=True
    )
    """`[starts_at, ends_at)` as a range, computed by PostgreSQL."""
    blocked: Mapped[Range[datetime]] = mapped_column(
        TSTZRANGE,
        Computed("tstzrange(starts_at, blocked_until, '[)')", persisted=True),
        deferred=True,
    )
    """`[starts_at, blocked_until)`: what the room is held for; the constraint compares these."""
    status: Mapped[str] = mapped_column(String(16))
    """`pending`, `confirmed`, `rejected` or `cancelled` (see `BookingStatus`)."""
    version: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    """Bumped by every update; the ETag, checked against `If-Match`."""
    decided_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    """The manager or admin who approved or rejected a pending booking."""
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """When it was approved or rejected."""
    cancelled_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    """Who cancelled it (the owner, a manager or an admin)."""
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """When it was cancelled."""
    cancel_reason: Mapped[str | None] = mapped_column(String(500))
    """Why it was cancelled, as given."""
    rules_overridden: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    """A manager or admin booked it outside the room's rules (never outside the constraint)."""
    series_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("booking_series.id"), index=True)
    """The recurring series this booking is an occurrence of; null for a single booking."""


class CalendarToken(Base):
    """A person's calendar feed token, stored only as its SHA-256; one per person."""

    __tablename__ = "calendar_tokens"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), primary_key=True)
    """Whose feed the token opens; a new token replaces the old one in place."""
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    """SHA-256 of the token; the token itself is shown once and never stored."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    """When the current token was issued."""
