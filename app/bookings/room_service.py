"""Rooms: create, list, read, change, deactivate and reactivate them; every change is audited."""

import uuid
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.actions import AuditAction, AuditEntity
from app.audit.service import AuditService
from app.bookings.errors import RoomNameTaken, RoomNotFound
from app.bookings.models import Room
from app.bookings.policy import BookingPolicy, PolicyOverrides, effective_policy
from app.bookings.repository import RoomRepository
from app.bookings.room_schemas import RoomCreate, RoomFilter, RoomRead, RoomUpdate
from app.bookings.service import default_policy
from app.core.config import BookingSettings
from app.core.db_errors import sqlstate_of
from app.core.errors import ValidationFailed
from app.core.pagination import PageRequest, SortValue
from app.core.preconditions import StaleVersion, check_version

UNIQUE_VIOLATION = "23505"
"""SQLSTATE of a duplicate key; on `rooms` only the case-insensitive name is unique."""
AUDITED_FIELDS = (
    "name",
    "description",
    "building",
    "floor",
    "capacity",
    "amenities",
    "time_zone",
    "is_active",
    "policy",
)


def room_snapshot(room: Room) -> dict[str, Any]:
    """The audited fields of a room."""
    return {name: getattr(room, name) for name in AUDITED_FIELDS}


class RoomService:
    """Create, list, read and change rooms; the booking policy of each is checked whole."""

    def __init__(
        self, *, session: AsyncSession, audit: AuditService, settings: BookingSettings
    ) -> None:
        self.session = session
        self.rooms = RoomRepository(session)
        self.audit = audit
        self.defaults = default_policy(settings)

    async def get(self, *, room_id: uuid.UUID) -> Room:
        """Load a room, active or not, or raise `RoomNotFound`."""
        room = await self.rooms.get(room_id=room_id)
        if room is None:
            raise RoomNotFound(f"No room has id {room_id}.")
        return room

    async def list_rooms(
        self, *, filters: RoomFilter, page: PageRequest
    ) -> tuple[Sequence[Room], tuple[SortValue, uuid.UUID] | None]:
        """One page of rooms matching the filters, by name."""
        return await self.rooms.list_page(filters=filters, page=page)

    def policy_of(self, *, room: Room) -> BookingPolicy:
        """The rules bookings of the room are judged by: the defaults with its overrides."""
        return effective_policy(self.defaults, PolicyOverrides.model_validate(room.policy))

    def read(self, *, room: Room) -> RoomRead:
        """The API form of a room, its effective policy included."""
        stored = RoomRead.model_fields.keys() - {"effective_policy"}
        fields = {name: getattr(room, name) for name in stored}
        return RoomRead.model_validate(fields | {"effective_policy": self.policy_of(room=room)})

    async def create(self, *, data: RoomCreate) -> Room:
        """Create an active room (`RoomNameTaken` when the name is in use)."""
        room = Room(
            id=uuid.uuid4(),
            name=data.name,
            description=data.description,
            building=data.building,
            floor=data.floor,
            capacity=data.capacity,
            amenities=data.amenities,
            time_zone=data.time_zone,
            is_active=True,
            policy=self._stored_policy(data.policy),
            version=1,
        )
        try:
            # The unique index decides between two rooms created with one name at once.
            async with self.session.begin_nested():
                await self.rooms.add(room=room)
        except IntegrityError as exc:
            if sqlstate_of(exc) != UNIQUE_VIOLATION:
                raise
            raise RoomNameTaken(f"A room named {data.name!r} already exists.") from exc
        await self.audit.record(
            action=AuditAction.ROOM_CREATED,
            entity_type=AuditEntity.ROOM,
            entity_id=room.id,
            after=room_snapshot(room),
        )
        return room

    async def update(
        self, *, room: Room, expected_versions: frozenset[int], data: RoomUpdate
    ) -> Room:
        """Change a room's description, place, capacity, equipment, zone or policy."""
        check_version(current=room.version, expected_versions=expected_versions, resource="room")
        changes = data.model_dump(exclude_unset=True, exclude={"policy"})
        values = {
            name: value
            for name, value in changes.items()
            if (value is not None or name == "floor") and value != getattr(room, name)
        }
        if data.policy is not None:
            policy = self._stored_policy(data.policy)
            if policy != room.policy:
                values["policy"] = policy
        return await self._apply(room=room, values=values, action=AuditAction.ROOM_UPDATED)

    async def set_active(
        self, *, room: Room, expected_versions: frozenset[int], active: bool
    ) -> Room:
        """Deactivate (no new bookings, nothing else changes) or reactivate a room."""
        check_version(current=room.version, expected_versions=expected_versions, resource="room")
        action = AuditAction.ROOM_REACTIVATED if active else AuditAction.ROOM_DEACTIVATED
        values = {"is_active": active} if active != room.is_active else {}
        return await self._apply(room=room, values=values, action=action)

    def _stored_policy(self, overrides: PolicyOverrides) -> dict[str, Any]:
        """The overrides as stored, once they make a consistent policy with the defaults."""
        try:
            effective_policy(self.defaults, overrides)
        except ValidationError as exc:
            message = exc.errors()[0]["msg"].removeprefix("Value error, ")
            raise ValidationFailed(
                [{"field": "policy", "message": message, "type": "policy_inconsistent"}]
            ) from exc
        return overrides.model_dump(mode="json", exclude_none=True)

    async def _apply(self, *, room: Room, values: dict[str, Any], action: AuditAction) -> Room:
        if not values:
            return room
        before = room_snapshot(room)
        try:
            # As at creation: a rename onto a taken name is refused by the unique index.
            async with self.session.begin_nested():
                updated = await self.rooms.update_versioned(
                    room_id=room.id, version=room.version, values=values
                )
        except IntegrityError as exc:
            if sqlstate_of(exc) != UNIQUE_VIOLATION:
                raise
            raise RoomNameTaken(f"A room named {values['name']!r} already exists.") from exc
        if updated is None:
            raise StaleVersion("The room was changed concurrently; read it again.")
        await self.audit.record(
            action=action,
            entity_type=AuditEntity.ROOM,
            entity_id=room.id,
            before={name: before[name] for name in values},
            after={name: getattr(updated, name) for name in values},
        )
        return updated


def build_room_service(
    session: AsyncSession, *, audit: AuditService, settings: BookingSettings
) -> RoomService:
    """The room service on a session, sharing the unit of work's audit service."""
    return RoomService(session=session, audit=audit, settings=settings)
