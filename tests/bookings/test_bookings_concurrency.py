"""Concurrent steps on one booking with real commits: one ETag, one winner.

The contenders are held at a barrier until all of them have passed the early version check,
so the versioned UPDATE alone decides, every run.
"""

import asyncio
import uuid
from collections.abc import Mapping
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient

from app.bookings.models import Booking, BookingStatus
from app.bookings.repository import BookingRepository
from app.users.schemas import Role
from tests.auth.conftest import bearer, committed_user, login
from tests.bookings.conftest import BOOKINGS, local
from tests.factories import BookingFactory, RoomFactory

pytestmark = pytest.mark.usefixtures("fixed_clock")


async def _headers(app: FastAPI, client: AsyncClient, email: str, role: Role) -> dict[str, str]:
    await committed_user(app, email=email, role=role)
    response = await login(client, email)
    assert response.status_code == 200
    return bearer(response.json()["access_token"])


async def test_an_approval_and_a_cancellation_with_one_etag_exactly_one_wins(
    app: FastAPI, committed_client: AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = await _headers(app, committed_client, "owner@example.com", Role.MEMBER)
    manager = await _headers(app, committed_client, "boss@example.com", Role.MANAGER)
    owner_id = uuid.UUID(
        (await committed_client.get("/api/v1/users/me", headers=owner)).json()["id"]
    )
    room = RoomFactory.build()
    booking = BookingFactory.build(
        room_id=room.id,
        owner_id=owner_id,
        starts_at=local(8, 9),
        ends_at=local(8, 10),
        blocked_until=local(8, 10),
        status=BookingStatus.PENDING.value,
    )
    async with app.state.session_factory() as session, session.begin():
        session.add(room)
        await session.flush()
        session.add(booking)
    all_checked = asyncio.Barrier(3)
    update_versioned = BookingRepository.update_versioned

    async def update_after_all_checked(
        self: BookingRepository, *, booking_id: uuid.UUID, version: int, values: Mapping[str, Any]
    ) -> Booking | None:
        # Every contender saw version 1 and a pending booking; only the UPDATE can pick one.
        await all_checked.wait()
        return await update_versioned(self, booking_id=booking_id, version=version, values=values)

    monkeypatch.setattr(BookingRepository, "update_versioned", update_after_all_checked)
    url = f"{BOOKINGS}/{booking.id}"
    answers = await asyncio.gather(
        committed_client.post(f"{url}/approve", headers={**manager, "If-Match": '"1"'}),
        committed_client.post(
            f"{url}/reject", json={"reason": "No"}, headers={**manager, "If-Match": '"1"'}
        ),
        committed_client.post(
            f"{url}/cancel", json={"reason": "Ill"}, headers={**owner, "If-Match": '"1"'}
        ),
    )
    monkeypatch.undo()

    assert sorted(answer.status_code for answer in answers) == [200, 412, 412]
    winner = next(answer for answer in answers if answer.status_code == 200)
    final = (await committed_client.get(url, headers=manager)).json()
    assert (final["status"], final["version"]) == (winner.json()["status"], 2)
