"""Fixtures of the bookings tests: rooms and rows inserted straight into the test's transaction."""

import uuid
from typing import Any, Protocol

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.bookings.models import Room
from app.bookings.repository import RoomRepository
from tests.conftest import CreateUser
from tests.factories import RoomFactory


class CreateRoom(Protocol):
    """Signature of the `create_room` fixture."""

    async def __call__(self, **fields: Any) -> Room: ...


@pytest.fixture
def create_room(db_session: AsyncSession) -> CreateRoom:
    """Insert a room in the test's transaction; `fields` override the factory's values."""

    async def create(**fields: Any) -> Room:
        return await RoomRepository(db_session).add(room=RoomFactory.build(**fields))

    return create


@pytest.fixture
async def owner_id(create_user: CreateUser) -> uuid.UUID:
    """A member who owns the bookings a test inserts."""
    return await create_user()
