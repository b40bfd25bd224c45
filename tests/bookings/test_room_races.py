"""A room changing while a booking of it is judged: real commits, held at a barrier.

A deactivation holds its transaction open right after its UPDATE of the room; a booking of
the room starts meanwhile. The booking must wait for the deactivation to commit and then
be refused, never go in against the room as it was before.
"""

import asyncio
import uuid
from collections.abc import Mapping
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import text

from app.bookings.models import Room
from app.bookings.repository import RoomRepository
from app.users.schemas import Role
from tests.auth.conftest import bearer, committed_user, login
from tests.bookings.conftest import BOOKINGS, local

pytestmark = pytest.mark.usefixtures("fixed_clock")

ROOMS = "/api/v1/rooms"
LOCK_WAITERS = text(
    "SELECT count(*) FROM pg_stat_activity "
    "WHERE wait_event_type = 'Lock' AND datname = current_database()"
)


async def _headers(app: FastAPI, client: AsyncClient, email: str, role: Role) -> dict[str, str]:
    await committed_user(app, email=email, role=role)
    response = await login(client, email)
    assert response.status_code == 200
    return bearer(response.json()["access_token"])


async def _blocked_or_done(app: FastAPI, task: "asyncio.Task[Any]") -> None:
    """Return once the task has finished or some transaction waits for a lock (10 s at most)."""
    for _ in range(200):
        if task.done():
            return
        async with app.state.engine.connect() as connection:
            if await connection.scalar(LOCK_WAITERS):
                return
        await asyncio.sleep(0.05)


async def test_a_booking_judged_while_its_room_is_deactivated_waits_and_is_refused(
    app: FastAPI, committed_client: AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager = await _headers(app, committed_client, "manager@example.com", Role.MANAGER)
    member = await _headers(app, committed_client, "member@example.com", Role.MEMBER)
    created = await committed_client.post(
        ROOMS,
        json={"name": "Aurora", "building": "Main", "capacity": 6, "time_zone": "Europe/Berlin"},
        headers=manager,
    )
    room_id = created.json()["id"]
    updated, release = asyncio.Event(), asyncio.Event()
    update_versioned = RoomRepository.update_versioned

    async def update_then_hold(
        self: RoomRepository, *, room_id: uuid.UUID, version: int, values: Mapping[str, Any]
    ) -> Room | None:
        # The room row is updated but not committed: a booking judged now reads the old row
        # unless it waits for this transaction.
        room = await update_versioned(self, room_id=room_id, version=version, values=values)
        updated.set()
        await release.wait()
        return room

    monkeypatch.setattr(RoomRepository, "update_versioned", update_then_hold)
    deactivation = asyncio.create_task(
        committed_client.post(
            f"{ROOMS}/{room_id}/deactivate", headers={**manager, "If-Match": '"1"'}
        )
    )
    await asyncio.wait_for(updated.wait(), timeout=10)
    booking = asyncio.create_task(
        committed_client.post(
            BOOKINGS,
            json={
                "room_id": room_id,
                "title": "Planning",
                "starts_at": local(8, 9).isoformat(),
                "ends_at": local(8, 10).isoformat(),
            },
            headers=member,
        )
    )
    await _blocked_or_done(app, booking)
    release.set()
    deactivated, refused = await deactivation, await booking
    monkeypatch.undo()

    assert deactivated.status_code == 200
    assert refused.status_code == 422, refused.text
    assert [v["code"] for v in refused.json()["violations"]] == ["room_inactive"]
    listed = await committed_client.get(BOOKINGS, params={"room_id": room_id}, headers=manager)
    assert listed.json()["items"] == []
