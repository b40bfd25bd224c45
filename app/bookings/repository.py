"""Every query on the `rooms` and `bookings` tables."""

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from app.bookings.models import Room


class RoomRepository:
    """Reads and writes rooms in the caller's session."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, *, room_id: uuid.UUID) -> Room | None:
        """Load one room by id."""
        return await self.session.get(Room, room_id)

    async def add(self, *, room: Room) -> Room:
        """Insert a room and read back its server-set columns."""
        self.session.add(room)
        await self.session.flush()
        return room
