"""Blackouts: managers close a room for a time; the row blocks it exactly as a booking does."""

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.actions import AuditAction, AuditEntity
from app.audit.service import AuditService
from app.bookings.availability import busy_interval
from app.bookings.errors import BlackoutConflict, BlackoutNotFound
from app.bookings.events import EventPublisher
from app.bookings.models import Booking, BookingKind, BookingStatus, Room
from app.bookings.repository import (
    AvailabilityRepository,
    BlackoutRepository,
    claiming_room_time,
)
from app.bookings.room_schemas import BlackoutCreate, BusyRead
from app.bookings.service import is_overlap
from app.core.clock import Clock
from app.core.pagination import PageRequest, SortValue


def blackout_snapshot(blackout: Booking) -> dict[str, Any]:
    """The audited fields of a blackout."""
    return {
        "room_id": blackout.room_id,
        "starts_at": blackout.starts_at,
        "ends_at": blackout.ends_at,
        "reason": blackout.title,
        "status": blackout.status,
    }


class BlackoutService:
    """Add, list and remove a room's blackouts; every change is audited."""

    def __init__(self, *, session: AsyncSession, audit: AuditService, clock: Clock) -> None:
        self.session = session
        self.blackouts = BlackoutRepository(session)
        self.availability = AvailabilityRepository(session)
        self.audit = audit
        self.events = EventPublisher(session)
        self.clock = clock

    async def add(self, *, room: Room, actor_id: uuid.UUID, data: BlackoutCreate) -> Booking:
        """Close the room for the time (`BlackoutConflict` when anything holds it then)."""
        blackout = Booking(
            id=uuid.uuid4(),
            room_id=room.id,
            kind=BookingKind.BLACKOUT.value,
            owner_id=actor_id,
            title=data.reason,
            attendees=0,
            starts_at=data.starts_at,
            ends_at=data.ends_at,
            blocked_until=data.ends_at,
            status=BookingStatus.CONFIRMED.value,
            version=1,
        )
        try:
            # The exclusion constraint judges a blackout as it judges bookings: no check first
            # that a concurrent booking could slip past. The savepoint keeps the request usable.
            async with claiming_room_time(self.session, room_id=blackout.room_id):
                await self.blackouts.add(blackout=blackout)
        except IntegrityError as exc:
            if not is_overlap(exc):
                raise
            raise BlackoutConflict(
                "Bookings or blackouts hold the room in this time; cancel them first.",
                conflicts=await self._conflicts(blackout=blackout, viewer_id=actor_id),
            ) from exc
        await self.audit.record(
            action=AuditAction.BLACKOUT_ADDED,
            entity_type=AuditEntity.BLACKOUT,
            entity_id=blackout.id,
            after=blackout_snapshot(blackout),
        )
        await self.events.publish(action=AuditAction.BLACKOUT_ADDED, booking=blackout)
        return blackout

    async def get(self, *, room: Room, blackout_id: uuid.UUID) -> Booking:
        """A blackout in force in the room, or `BlackoutNotFound`."""
        blackout = await self.blackouts.get(room_id=room.id, blackout_id=blackout_id)
        if blackout is None:
            raise BlackoutNotFound(f"The room has no blackout with id {blackout_id}.")
        return blackout

    async def list_blackouts(
        self, *, room: Room, page: PageRequest
    ) -> tuple[Sequence[Booking], tuple[SortValue, uuid.UUID] | None]:
        """One page of the room's blackouts in force, by start."""
        return await self.blackouts.list_page(room_id=room.id, page=page)

    async def remove(self, *, blackout: Booking, actor_id: uuid.UUID) -> None:
        """Lift a blackout: its row is kept, cancelled, and holds the room no longer."""
        before = blackout_snapshot(blackout)
        removed = await self.blackouts.cancel(
            blackout_id=blackout.id, cancelled_by=actor_id, cancelled_at=self.clock()
        )
        if removed is None:
            # Lifted by someone else since it was loaded: it is gone either way.
            raise BlackoutNotFound(f"The room has no blackout with id {blackout.id}.")
        await self.audit.record(
            action=AuditAction.BLACKOUT_REMOVED,
            entity_type=AuditEntity.BLACKOUT,
            entity_id=blackout.id,
            before=before,
            after=blackout_snapshot(removed),
        )
        await self.events.publish(action=AuditAction.BLACKOUT_REMOVED, booking=removed)

    async def _conflicts(self, *, blackout: Booking, viewer_id: uuid.UUID) -> list[BusyRead]:
        """What holds the room in the blackout's time: times, kind and status, nothing private."""
        rows = await self.availability.blocking_rows(
            room_id=blackout.room_id,
            window_start=blackout.starts_at,
            window_end=blackout.ends_at,
        )
        return [BusyRead.model_validate(busy_interval(row, viewer_id=viewer_id)) for row in rows]


def build_blackout_service(
    session: AsyncSession, *, audit: AuditService, clock: Clock
) -> BlackoutService:
    """The blackout service on a session, sharing the unit of work's audit service."""
    return BlackoutService(session=session, audit=audit, clock=clock)
