"""Writers of one room's blocked time take turns; a refused writer gives its turn back."""

import uuid

import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.bookings.repository import claiming_room_time, room_turn_lock_id

TRY_TURN = text("SELECT pg_try_advisory_xact_lock(:id)")


class Refused(Exception):
    """Stands in for the overlap the constraint reports inside the savepoint."""


@pytest.fixture
def sessions(app: FastAPI) -> async_sessionmaker[AsyncSession]:
    """Sessions on connections of their own, as concurrent requests have."""
    factory: async_sessionmaker[AsyncSession] = app.state.session_factory
    return factory


async def turn_is_free(factory: async_sessionmaker[AsyncSession], room_id: uuid.UUID) -> bool:
    """Whether another transaction could take the room's turn now (without waiting)."""
    async with factory() as session, session.begin():
        return bool(await session.scalar(TRY_TURN, {"id": room_turn_lock_id(room_id)}))


async def test_a_kept_write_holds_the_room_turn_until_its_transaction_ends(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    room_id, other_room_id = uuid.uuid4(), uuid.uuid4()
    async with sessions() as writer:
        async with writer.begin():
            async with claiming_room_time(writer, room_id=room_id):
                pass
            assert not await turn_is_free(sessions, room_id)
            assert await turn_is_free(sessions, other_room_id)
        assert await turn_is_free(sessions, room_id)


async def test_a_refused_write_gives_the_turn_back_at_once(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    room_id = uuid.uuid4()
    async with sessions() as writer, writer.begin():
        with pytest.raises(Refused):
            async with claiming_room_time(writer, room_id=room_id):
                raise Refused
        # Its transaction goes on (to explain the refusal) without holding up the room.
        assert await turn_is_free(sessions, room_id)
        assert await writer.scalar(text("SELECT 1")) == 1


def test_rooms_turns_are_apart_from_each_other() -> None:
    first, second = uuid.uuid4(), uuid.uuid4()
    assert room_turn_lock_id(first) == room_turn_lock_id(first)
    assert room_turn_lock_id(first) != room_turn_lock_id(second)
