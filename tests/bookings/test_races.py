"""Fifty bookings racing for one slot through real connections: exactly one gets the room.

Each request runs in its own transaction on its own pooled connection. The contenders are
held at a barrier right before they take their turn at the room and INSERT (or UPDATE, for
a move), until every one of them has passed the rules, so only the exclusion constraint
`bookings_no_overlap` can pick the winner. Without it all fifty would be written, every
run. Contenders writing at once without turns can deadlock on each other's uncommitted
rows (`test_room_turns.py` proves the turns); a victim's request would be re-run, and the
log of such retries must stay empty.
"""

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient, Response
from pydantic import SecretStr
from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from app.audit.models import AuditEvent
from app.bookings import repository
from app.bookings.models import HOLDING_STATUSES, Booking, Room
from app.core.config import BookingSettings, DatabaseSettings
from app.factory import create_app
from app.users.schemas import Role
from tests.auth.conftest import bearer, committed_user, login, raw_logs
from tests.bookings.conftest import BOOKINGS, NOW, body, if_match, local
from tests.conftest import make_settings
from tests.factories import BookingFactory, RoomFactory

# Each test here holds 50 connections at once: one xdist worker runs them all, one after
# another, so two of them never meet under PostgreSQL's default max_connections of 100.
pytestmark = pytest.mark.xdist_group("fifty_connections")

CONTENDERS = 50
MEMBERS = 5
"""The contenders are spread over a few members (each books and moves their own)."""
BARRIER_TIMEOUT_S = 30.0
"""A contender that never reaches the barrier fails the test instead of hanging it."""
CONNECT_PATIENCE_S = 60.0
"""How long the arena waits for the server to have room for all its connections."""
RETRIED = "transaction conflict, retrying"
"""What the log says when a deadlock victim's request is run again."""
SLOT_START, SLOT_END = local(8, 10), local(8, 11)
"""The contested hour: Tuesday 8 January 2030, 10:00 to 11:00 in Berlin."""


@dataclass(frozen=True, slots=True)
class Arena:
    """The racing app, a client for it, and the members who race."""

    app: FastAPI
    client: AsyncClient
    members: list[dict[str, str]]
    member_ids: list[uuid.UUID]
    room: Room


def racing_app(database_url: str, *, connections: int, bookings: BookingSettings) -> FastAPI:
    """An app with a pooled connection per contender whose requests see `NOW`."""
    # The contenders queue for the room's turn, fifty deep; on a loaded machine the last can
    # wait longer than the 3 s default lock timeout, which would answer 503, not the refusal.
    database = DatabaseSettings(
        url=SecretStr(database_url),
        statement_timeout_ms=60_000,
        lock_timeout_ms=60_000,
        idle_in_transaction_timeout_ms=60_000,
        pool_size=connections,
    )
    app = create_app(make_settings(database_url, database=database, bookings=bookings))

    app.state.clock = lambda: NOW.astimezone(UTC)
    return app


@pytest.fixture
async def arena(database_url: str, committed_client: AsyncClient) -> AsyncIterator[Arena]:
    """An app with a pooled connection for every contender, a room and members, all committed.

    `committed_client` empties the tables afterwards.
    """
    # Quotas off: a member's requests would queue on their quota lock one by one and never
    # meet at the barrier; the quota race is proven in test_quota_race.py.
    quotas_off = BookingSettings(member_max_active_future=0, member_max_week_hours=0)
    app = racing_app(database_url, connections=CONTENDERS, bookings=quotas_off)
    async with (
        LifespanManager(app),
        AsyncClient(transport=ASGITransport(app=app), base_url="http://testserver") as client,
    ):
        members, member_ids = [], []
        for number in range(MEMBERS):
            email = f"racer{number}@example.com"
            member_ids.append(await committed_user(app, email=email, role=Role.MEMBER))
            response = await login(client, email)
            assert response.status_code == 200, response.text
            members.append(bearer(response.json()["access_token"]))
        room = RoomFactory.build()
        async with _session(app) as session, session.begin():
            session.add(room)
        await open_every_connection(app.state.engine)
        yield Arena(app=app, client=client, members=members, member_ids=member_ids, room=room)


async def open_every_connection(engine: AsyncEngine, *, count: int = CONTENDERS) -> None:
    """Fill the pool with one open connection per contender before the race starts.

    The other test process shares the server's max_connections; a contender that had to
    open its connection mid-race could be refused with "too many clients" (a 503, not the
    409 under test). Opening them all here, waiting while the server is full, keeps that
    out of the race.
    """
    connections: list[AsyncConnection] = []
    try:
        async with asyncio.timeout(CONNECT_PATIENCE_S):
            while len(connections) < count:
                try:
                    connections.append(await engine.connect())
                except DBAPIError:
                    await asyncio.sleep(0.2)
    finally:
        for connection in connections:
            await connection.close()


def _session(app: FastAPI) -> AsyncSession:
    factory: async_sessionmaker[AsyncSession] = app.state.session_factory
    return factory()


class Gate:
    """Holds the first `parties` callers until all of them arrived, then lets them all go.

    It notes the server process of each caller's connection, to show they were distinct.
    Later calls (a request re-run after a deadlock) pass straight through: the barrier is
    for the first meeting only, and the test then fails on the retry in the log.
    """

    def __init__(self, parties: int) -> None:
        self.parties = parties
        self.backends: set[int] = set()
        self.arrived = 0
        self.barrier = asyncio.Barrier(parties)

    async def wait(self, session: AsyncSession) -> None:
        """Wait for the others, once per contender, inside the contender's transaction."""
        if self.arrived >= self.parties:
            return
        self.arrived += 1
        self.backends.add(await session.scalar(select(func.pg_backend_pid())) or 0)
        async with asyncio.timeout(BARRIER_TIMEOUT_S):
            await self.barrier.wait()


def gate_the_turns(monkeypatch: pytest.MonkeyPatch) -> Gate:
    """Hold every contender at a gate just before it takes its turn at the room and writes."""
    gate = Gate(CONTENDERS)
    take_turn = repository.take_room_turn

    async def take_turn_when_all_judged(session: AsyncSession, *, room_id: uuid.UUID) -> None:
        # Every contender passed the rules (and, moving, its version check): the constraint
        # decides who gets the slot.
        await gate.wait(session)
        await take_turn(session, room_id=room_id)

    monkeypatch.setattr(repository, "take_room_turn", take_turn_when_all_judged)
    return gate


def overlapping_slot(number: int) -> tuple[datetime, datetime]:
    """Start 10:00 to 10:45 and end 11:00 to 11:30: every two of them share 10:45 to 11:00."""
    start = SLOT_START + timedelta(minutes=15 * (number % 4))
    end = SLOT_END + timedelta(minutes=15 * (number % 3))
    return start, end


async def holding(app: FastAPI, room: Room) -> list[Booking]:
    """The bookings holding the room, committed."""
    async with _session(app) as session:
        rows = await session.scalars(
            select(Booking).where(Booking.room_id == room.id, Booking.status.in_(HOLDING_STATUSES))
        )
        return list(rows.all())


def assert_one_winner(answers: list[Response], *, won: int) -> Response:
    """One answer `won`, every other a 409 whose only violation is the overlap."""
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == sorted([won] + [409] * (CONTENDERS - 1)), statuses
    for answer in answers:
        if answer.status_code == 409:
            problem = answer.json()
            assert problem["code"] == "booking-refused"
            assert [v["code"] for v in problem["violations"]] == ["overlap"]
    return next(answer for answer in answers if answer.status_code == won)


async def test_fifty_bookings_of_one_slot_at_once_one_is_made_and_49_refused(
    arena: Arena, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = gate_the_turns(monkeypatch)
    with raw_logs() as logs:
        answers = await asyncio.gather(
            *(
                arena.client.post(
                    BOOKINGS,
                    json=body(arena.room, *overlapping_slot(number), title=f"Contender {number}"),
                    headers=arena.members[number % MEMBERS],
                )
                for number in range(CONTENDERS)
            )
        )
    monkeypatch.undo()

    assert RETRIED not in logs.text
    assert len(gate.backends) == CONTENDERS
    winner = assert_one_winner(answers, won=201)
    [row] = await holding(arena.app, arena.room)
    assert str(row.id) == winner.json()["id"]
    async with _session(arena.app) as session:
        created = await session.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.action == "booking.created")
        )
    assert created == 1


async def test_fifty_moves_onto_one_slot_at_once_one_is_made_and_49_refused(
    arena: Arena, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Fifty one-hour bookings spread over five more weekdays, ten a day from 08:00.
    days = (9, 10, 11, 14, 15)
    bookings = [
        BookingFactory.build(
            room_id=arena.room.id,
            owner_id=arena.member_ids[number % MEMBERS],
            starts_at=local(days[number // 10], 8 + number % 10),
            ends_at=local(days[number // 10], 9 + number % 10),
            blocked_until=local(days[number // 10], 9 + number % 10),
        )
        for number in range(CONTENDERS)
    ]
    async with _session(arena.app) as session, session.begin():
        session.add_all(bookings)
    gate = gate_the_turns(monkeypatch)
    with raw_logs() as logs:
        answers = await asyncio.gather(
            *(
                arena.client.patch(
                    f"{BOOKINGS}/{booking.id}",
                    json={
                        "starts_at": overlapping_slot(number)[0].isoformat(),
                        "ends_at": overlapping_slot(number)[1].isoformat(),
                    },
                    headers=if_match(arena.members[number % MEMBERS], 1),
                )
                for number, booking in enumerate(bookings)
            )
        )
    monkeypatch.undo()

    assert RETRIED not in logs.text
    assert len(gate.backends) == CONTENDERS
    winner = assert_one_winner(answers, won=200)
    rows = await holding(arena.app, arena.room)
    assert len(rows) == CONTENDERS
    in_the_slot = [row for row in rows if row.starts_at < local(9, 0)]
    assert [str(row.id) for row in in_the_slot] == [winner.json()["id"]]
    # The losers kept their own time and version.
    unmoved = {(row.id, row.starts_at, row.version) for row in rows if row not in in_the_slot}
    assert unmoved == {
        (booking.id, booking.starts_at, 1)
        for booking in bookings
        if str(booking.id) != winner.json()["id"]
    }
