"""Booking events: what the live stream tells, and how a change announces it to every process.

A change publishes its event with `pg_notify` in its own transaction: PostgreSQL delivers
it to every listening process at COMMIT and drops it on ROLLBACK (a rolled-back savepoint
included), so a stream never tells of a change that did not happen.
"""

import uuid

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.actions import AuditAction
from app.bookings.models import Booking, BookingKind, BookingStatus
from app.bookings.schemas import UtcInstant

CHANNEL = "roombook_booking_events"
"""The `LISTEN/NOTIFY` channel every process listens on."""
NOTIFY = text("SELECT pg_notify(:channel, :payload)")
"""Textual on purpose: a plain `select()` may run before the transaction (lazy_begin.py)."""


class BookingEvent(BaseModel):
    """A booking changed: which, where, its status and time; nothing private.

    Every signed-in member may see every room, so every stream gets every event; the title,
    note, attendees and owner stay out, as they are private to the owner and managers.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(description="Event id, also the SSE `id:` sent back as `Last-Event-ID`.")
    type: str = Field(
        description="What happened: `booking.created`, `booking.cancelled`, `blackout.added`, …"
    )
    booking_id: uuid.UUID
    room_id: uuid.UUID
    kind: BookingKind
    status: BookingStatus
    starts_at: UtcInstant
    ends_at: UtcInstant


class EventPublisher:
    """Announces booking changes on the unit of work's session, to be sent at its COMMIT."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def publish(self, *, action: AuditAction, booking: Booking) -> None:
        """Queue the event of one change in the current transaction."""
        event = BookingEvent(
            id=uuid.uuid4().hex,
            type=action.value,
            booking_id=booking.id,
            room_id=booking.room_id,
            kind=BookingKind(booking.kind),
            status=BookingStatus(booking.status),
            starts_at=booking.starts_at,
            ends_at=booking.ends_at,
        )
        # Transactional: PostgreSQL sends it at COMMIT and discards it on ROLLBACK.
        await self.session.execute(NOTIFY, {"channel": CHANNEL, "payload": event.model_dump_json()})


class EventTicketRead(BaseModel):
    """A single-use ticket that opens one event stream as `GET /bookings/events?ticket=…`."""

    ticket: str = Field(description="Use it once, within `expires_in` seconds.")
    expires_in: int = Field(description="Seconds the ticket stays valid.")
