"""Twenty bookings of one member at once, each on its own connection: exactly the quota is made.

The requests are held at a barrier right before the member's quota lock, after every one
of them has passed the room's rules, so all twenty would count the same committed
bookings at once. The lock (`pg_advisory_xact_lock` on the member) makes each count wait
for the bookings of the ones before it; without it all twenty are written, every run.
"""

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from sqlalchemy import func, select

from app.bookings.models import HOLDING_STATUSES, Booking, Room
from app.bookings.quota_repository import QuotaRepository
from app.core.config import BookingSettings
from app.users.schemas import Role
from tests.auth.conftest import bearer, committed_user, login
from tests.bookings.conftest import BOOKINGS, body, local
from tests.bookings.test_races import Gate, _session, open_every_connection, racing_app
from tests.factories import RoomFactory

# With the fifty-connection races: one worker runs the group, so they never overlap.
pytestmark = pytest.mark.xdist_group("fifty_connections")

CONTENDERS = 20
QUOTA = 5


@dataclass(frozen=True, slots=True)
class Track:
    """The racing app, its client, the one member who races and the room."""

    app: FastAPI
    client: AsyncClient
    headers: dict[str, str]
    member_id: uuid.UUID
    room: Room


@pytest.fixture
async def track(database_url: str, committed_client: AsyncClient) -> AsyncIterator[Track]:
    """An app with a pooled connection per contender and a quota of five, all committed."""
    quota = BookingSettings(member_max_active_future=QUOTA, member_max_week_hours=0)
    app = racing_app(database_url, connections=CONTENDERS, bookings=quota)
    async with (
        LifespanManager(app),
        AsyncClient(transport=ASGITransport(app=app), base_url="http://testserver") as client,
    ):
        member_id = await committed_user(app, email="quota@example.com", role=Role.MEMBER)
        response = await login(client, "quota@example.com")
        assert response.status_code == 200, response.text
        room = RoomFactory.build()
        async with _session(app) as session, session.begin():
            session.add(room)
        await open_every_connection(app.state.engine, count=CONTENDERS)
        yield Track(
            app=app,
            client=client,
            headers=bearer(response.json()["access_token"]),
            member_id=member_id,
            room=room,
        )


async def test_twenty_bookings_of_one_member_at_once_exactly_the_quota_is_made(
    track: Track, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = Gate(CONTENDERS)
    lock_owner = QuotaRepository.lock_owner

    async def lock_when_all_judged(self: QuotaRepository, *, owner_id: uuid.UUID) -> None:
        # Every contender passed the rules and is about to judge the quota.
        await gate.wait(self.session)
        await lock_owner(self, owner_id=owner_id)

    monkeypatch.setattr(QuotaRepository, "lock_owner", lock_when_all_judged)
    answers = await asyncio.gather(
        *(
            track.client.post(
                BOOKINGS,
                # Twenty different hours: no two overlap, only the quota can refuse them.
                json=body(
                    track.room, local(8 + n // 10, 8 + n % 10), local(8 + n // 10, 9 + n % 10)
                ),
                headers=track.headers,
            )
            for n in range(CONTENDERS)
        )
    )
    monkeypatch.undo()

    assert len(gate.backends) == CONTENDERS
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [201] * QUOTA + [422] * (CONTENDERS - QUOTA), statuses
    for answer in answers:
        if answer.status_code == 422:
            assert [v["code"] for v in answer.json()["violations"]] == ["quota_exceeded"]
    async with _session(track.app) as session:
        held = await session.scalar(
            select(func.count()).where(
                Booking.owner_id == track.member_id, Booking.status.in_(HOLDING_STATUSES)
            )
        )
    assert held == QUOTA
