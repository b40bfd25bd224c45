"""`Idempotency-Key` on `POST /bookings`: a retried booking is made once, never twice."""

import asyncio
import uuid
from datetime import timedelta

import pytest
from fastapi import FastAPI
from httpx import AsyncClient, Response
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.bookings.models import Booking, Room
from app.bookings.repository import BookingRepository
from app.core.idempotency_store import IdempotencyRecord
from app.users.schemas import Role
from tests.auth.conftest import audit_actions, bearer, committed_user, login
from tests.bookings.conftest import BOOKINGS, InsertBooking, body, local
from tests.conftest import AuthHeaders, CreateUser
from tests.factories import RoomFactory

pytestmark = pytest.mark.usefixtures("fixed_clock")

KEY = "book-tuesday-9"
WAIT_S = 10


def _keyed(headers: dict[str, str], key: str = KEY) -> dict[str, str]:
    return {**headers, "Idempotency-Key": key}


async def _bookings(session: AsyncSession) -> list[Booking]:
    rows = await session.scalars(
        select(Booking).order_by(Booking.created_at).execution_options(populate_existing=True)
    )
    return list(rows.all())


def _assert_replay_of(replay: Response, first: Response) -> None:
    assert replay.status_code == first.status_code == 201
    assert replay.content == first.content
    assert replay.headers["location"] == first.headers["location"]
    assert replay.headers["etag"] == first.headers["etag"]
    assert replay.headers["idempotent-replayed"] == "true"


async def test_a_retried_booking_is_replayed_not_made_again(
    client: AsyncClient, room: Room, member_headers: dict[str, str], db_session: AsyncSession
) -> None:
    request = body(room, local(8, 9), local(8, 10))
    first = await client.post(BOOKINGS, json=request, headers=_keyed(member_headers))
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers

    replay = await client.post(BOOKINGS, json=request, headers=_keyed(member_headers))

    _assert_replay_of(replay, first)
    [booking] = await _bookings(db_session)
    assert await audit_actions(db_session, entity_id=booking.id) == ["booking.created"]


async def test_a_key_reused_for_another_booking_is_refused(
    client: AsyncClient, room: Room, member_headers: dict[str, str], db_session: AsyncSession
) -> None:
    first = await client.post(
        BOOKINGS, json=body(room, local(8, 9), local(8, 10)), headers=_keyed(member_headers)
    )
    assert first.status_code == 201, first.text
    reused = await client.post(
        BOOKINGS, json=body(room, local(8, 11), local(8, 12)), headers=_keyed(member_headers)
    )

    assert reused.status_code == 422
    assert reused.json()["code"] == "idempotency-key-reused"
    assert len(await _bookings(db_session)) == 1


async def test_a_refused_booking_stores_nothing_and_its_retry_is_judged_again(
    *,
    client: AsyncClient,
    room: Room,
    owner_id: uuid.UUID,
    member_headers: dict[str, str],
    insert_booking: InsertBooking,
    db_session: AsyncSession,
) -> None:
    taken = await insert_booking(room=room, owner_id=owner_id, start=local(8, 9), end=local(8, 10))
    request = body(room, local(8, 9), local(8, 10))
    refused = await client.post(BOOKINGS, json=request, headers=_keyed(member_headers))
    assert refused.status_code == 409
    await db_session.execute(
        update(Booking).where(Booking.id == taken.id).values(status="cancelled")
    )

    retried = await client.post(BOOKINGS, json=request, headers=_keyed(member_headers))

    assert retried.status_code == 201, retried.text
    assert "idempotent-replayed" not in retried.headers


async def test_an_expired_key_runs_the_booking_again(
    client: AsyncClient, room: Room, member_headers: dict[str, str], db_session: AsyncSession
) -> None:
    request = body(room, local(8, 9), local(8, 10))
    first = await client.post(BOOKINGS, json=request, headers=_keyed(member_headers))
    assert first.status_code == 201, first.text
    await db_session.execute(
        update(IdempotencyRecord).values(expires_at=func.now() - timedelta(seconds=1))
    )

    again = await client.post(BOOKINGS, json=request, headers=_keyed(member_headers))

    # Run again, not replayed: the first booking now holds the time it asks for.
    assert again.status_code == 409
    assert [v["code"] for v in again.json()["violations"]] == ["overlap"]


async def test_keys_belong_to_their_caller(
    client: AsyncClient,
    room: Room,
    create_user: CreateUser,
    auth_headers: AuthHeaders,
    db_session: AsyncSession,
) -> None:
    request = body(room, local(8, 9), local(8, 10))
    first = await client.post(
        BOOKINGS, json=request, headers=_keyed(await auth_headers(await create_user()))
    )
    other = await client.post(
        BOOKINGS, json=request, headers=_keyed(await auth_headers(await create_user()))
    )

    assert first.status_code == 201, first.text
    assert other.status_code == 409
    assert "idempotent-replayed" not in other.headers
    assert len(await _bookings(db_session)) == 1


async def test_a_retry_while_the_first_booking_runs_is_refused_at_once(
    app: FastAPI, committed_client: AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    await committed_user(app, email="booker@example.com", role=Role.MEMBER)
    room = RoomFactory.build()
    async with app.state.session_factory() as session, session.begin():
        session.add(room)
    token = (await login(committed_client, "booker@example.com")).json()["access_token"]
    headers = _keyed(bearer(token))
    request = body(room, local(8, 9), local(8, 10))
    first_inside, release = asyncio.Event(), asyncio.Event()
    add = BookingRepository.add

    async def add_once_released(self: BookingRepository, *, booking: Booking) -> Booking:
        # The first request waits here, inside its transaction, holding its key's lock.
        if not first_inside.is_set():
            first_inside.set()
            await release.wait()
        return await add(self, booking=booking)

    monkeypatch.setattr(BookingRepository, "add", add_once_released)
    first_task = asyncio.create_task(committed_client.post(BOOKINGS, json=request, headers=headers))
    await asyncio.wait_for(first_inside.wait(), WAIT_S)

    retry = await asyncio.wait_for(
        committed_client.post(BOOKINGS, json=request, headers=headers), WAIT_S
    )
    release.set()
    first = await asyncio.wait_for(first_task, WAIT_S)
    monkeypatch.undo()

    assert retry.status_code == 409, retry.text
    assert retry.json()["code"] == "idempotency-key-in-flight"
    assert first.status_code == 201, first.text
    _assert_replay_of(await committed_client.post(BOOKINGS, json=request, headers=headers), first)
    async with app.state.session_factory() as session:
        assert len(await _bookings(session)) == 1


async def test_a_retried_cancellation_is_replayed(
    *,
    client: AsyncClient,
    room: Room,
    create_user: CreateUser,
    auth_headers: AuthHeaders,
    insert_booking: InsertBooking,
    db_session: AsyncSession,
) -> None:
    member = await create_user()
    booking = await insert_booking(room=room, owner_id=member, start=local(8, 9), end=local(8, 10))
    headers = {**_keyed(await auth_headers(member), "cancel-once"), "If-Match": '"1"'}
    url = f"{BOOKINGS}/{booking.id}/cancel"
    first = await client.post(url, json={"reason": "Ill"}, headers=headers)
    # Without the key, the retry would be refused: version 1 is stale now.
    replay = await client.post(url, json={"reason": "Ill"}, headers=headers)

    assert first.status_code == 200, first.text
    assert replay.status_code == 200
    assert replay.content == first.content
    assert replay.headers["idempotent-replayed"] == "true"
    assert await audit_actions(db_session, entity_id=booking.id) == ["booking.cancelled"]
