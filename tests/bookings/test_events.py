"""The live event stream: two real servers on one database, PostgreSQL's NOTIFY between them.

ASGITransport buffers whole responses, so every stream here is read from a uvicorn server
started in the test's own event loop, with httpx streaming as a browser would.
"""

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, timedelta
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from prometheus_client import REGISTRY
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.audit.service import build_audit_service
from app.auth.models import StreamTicket
from app.auth.service import build_session_service
from app.bookings.hub import EventHub, Subscriber
from app.bookings.repository import RoomRepository
from app.bookings.schemas import BookingCreate
from app.bookings.service import Actor, build_booking_service
from app.core.config import EventSettings, ServerSettings, Settings
from app.factory import create_app
from app.users.schemas import Role
from tests.auth.conftest import committed_user
from tests.bookings.conftest import NOW, local
from tests.conftest import make_settings
from tests.factories import RoomFactory, unique_email

EVENTS = "/api/v1/bookings/events"
TICKET = f"{EVENTS}/ticket"
SERIES = "/api/v1/bookings/series"
WAIT_S = 10.0
"""Longest wait for anything a test expects to happen (a loaded machine is slow)."""
GRACEFUL_SHUTDOWN_S = 8
"""How long uvicorn lets running requests finish when it stops (20 s in `make serve`)."""
QUIET_S = 0.5
"""How long a stream must stay silent to show that nothing was sent."""
PUBLIC_FIELDS = {"id", "type", "booking_id", "room_id", "kind", "status", "starts_at", "ends_at"}
BROWSER_HEADERS = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
"""All a browser's `EventSource` sends of its own: no `Authorization`, nothing custom."""
KILL_LISTENERS = (
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
    "WHERE application_name = 'roombook-events' AND datname = current_database()"
)
FAST = EventSettings(heartbeat_s=0.2, session_check_s=0.2, max_streams=2, queue_size=3)


@dataclass
class Instance:
    """One served app: the app itself and a client of its real HTTP server."""

    app: FastAPI
    client: httpx.AsyncClient
    server: uvicorn.Server

    @property
    def hub(self) -> EventHub:
        """The app's event hub."""
        hub: EventHub = self.app.state.event_hub
        return hub


@dataclass
class Member:
    """A committed user with a live session and its Bearer headers."""

    id: uuid.UUID
    session_id: uuid.UUID
    headers: dict[str, str]


@asynccontextmanager
async def served(settings: Settings) -> AsyncIterator[Instance]:
    """Serve a new app on a free port from this event loop, with the tests' fixed clock."""
    app = create_app(settings)

    app.state.clock = lambda: NOW.astimezone(UTC)
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        log_config=None,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(WAIT_S):
            while not server.started:
                assert not task.done(), "uvicorn did not start"
                await asyncio.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            yield Instance(app, client, server)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, WAIT_S)


@pytest.fixture
def event_settings(migrated_database_url: str) -> Settings:
    """Settings of both instances: one database, quick heartbeats and session checks."""
    return make_settings(migrated_database_url, events=FAST)


@pytest.fixture
async def first(event_settings: Settings) -> AsyncIterator[Instance]:
    """The instance bookings are made through."""
    async with served(event_settings) as instance:
        yield instance


@pytest.fixture
async def second(event_settings: Settings) -> AsyncIterator[Instance]:
    """Another instance on the same database, where the streams are read."""
    async with served(event_settings) as instance:
        yield instance


def _factory(instance: Instance) -> async_sessionmaker[AsyncSession]:
    factory: async_sessionmaker[AsyncSession] = instance.app.state.session_factory
    return factory


async def signed_in(instance: Instance, *, role: Role = Role.MEMBER) -> Member:
    """Commit a user and a session for them; their Bearer headers."""
    user_id = await committed_user(instance.app, email=unique_email(), role=role)
    settings: Settings = instance.app.state.settings
    async with _factory(instance)() as session, session.begin():
        sessions = build_session_service(
            session, audit=build_audit_service(session, settings=settings), settings=settings
        )
        auth_session, _ = await sessions.start(user_id=user_id)
    token = instance.app.state.token_codec.encode_access(
        subject=str(user_id), claims={"role": role.value, "sid": str(auth_session.id)}
    )
    return Member(user_id, auth_session.id, {"Authorization": f"Bearer {token}"})


@pytest.fixture
async def room_id(first: Instance) -> uuid.UUID:
    """A committed room for eight in Berlin, open weekdays 08:00 to 20:00."""
    async with _factory(first)() as session, session.begin():
        room = await RoomRepository(session).add(room=RoomFactory.build())
    return room.id


def booking(room_id: uuid.UUID, hour: int, *, day: int = 8) -> dict[str, Any]:
    """A booking body for an hour of a day of January 2030 (Berlin), by default Tuesday 8th."""
    return {
        "room_id": str(room_id),
        "title": "Secret merger talks",
        "note": "Bring the term sheet",
        "attendees": 2,
        "starts_at": local(day, hour).isoformat(),
        "ends_at": local(day, hour + 1).isoformat(),
    }


async def post_booking(
    instance: Instance, member: Member, room_id: uuid.UUID, hour: int
) -> httpx.Response:
    """`POST /bookings` of that hour through the instance, as the member."""
    return await instance.client.post(
        "/api/v1/bookings", json=booking(room_id, hour), headers=member.headers
    )


async def ticket_for(instance: Instance, member: Member) -> str:
    """A fresh stream ticket of the member's session."""
    response = await instance.client.post(TICKET, headers=member.headers)
    assert response.status_code == 201, response.text
    assert response.json()["expires_in"] == FAST.ticket_ttl_s
    ticket: str = response.json()["ticket"]
    return ticket


class Stream:
    """Reads server-sent events off an open response, comments apart."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.lines = response.aiter_lines()
        self.comments = 0

    async def next(self, timeout_s: float = WAIT_S) -> dict[str, str]:
        """The next event's fields (`event`, `data`, `id`); raises TimeoutError if none came."""
        async with asyncio.timeout(timeout_s):
            fields: dict[str, str] = {}
            async for line in self.lines:
                if line.startswith(":"):
                    self.comments += 1
                elif line:
                    name, _, value = line.partition(":")
                    fields[name] = value.removeprefix(" ")
                elif fields:
                    return fields
            raise EOFError("the stream ended")

    async def booking(self) -> dict[str, Any]:
        """The next event, which must be a booking event; its data."""
        fields = await self.next()
        assert fields["event"] == "booking", fields
        data: dict[str, Any] = json.loads(fields["data"])
        assert data["id"] == fields["id"]
        return data

    async def ended(self) -> bool:
        """Whether the server ends the stream soon, whatever it still sends first."""
        try:
            async with asyncio.timeout(WAIT_S):
                async for _ in self.lines:
                    pass
        except TimeoutError:
            return False
        return True


@asynccontextmanager
async def opened(
    instance: Instance,
    ticket: str,
    *,
    headers: dict[str, str] | None = None,
    last_event_id: str | None = None,
) -> AsyncIterator[Stream]:
    """Open the stream as a browser does: the ticket in the URL, no other credential."""
    params = {"ticket": ticket} | (
        {} if last_event_id is None else {"last_event_id": last_event_id}
    )
    async with instance.client.stream(
        "GET", EVENTS, params=params, headers={**BROWSER_HEADERS, **(headers or {})}
    ) as response:
        assert response.status_code == 200, (await response.aread()).decode()
        yield Stream(response)


async def until(condition: Callable[[], bool]) -> None:
    """Wait until `condition()` holds."""
    async with asyncio.timeout(WAIT_S):
        while True:
            if condition():
                return
            await asyncio.sleep(0.02)


def open_streams() -> float:
    """The open-streams gauge of this process (both instances run here)."""
    return REGISTRY.get_sample_value("roombook_event_streams_open") or 0.0


async def test_a_booking_made_through_one_instance_reaches_a_stream_on_the_other(
    first: Instance, second: Instance, room_id: uuid.UUID
) -> None:
    watcher, booker = await signed_in(second), await signed_in(first)
    # The ticket is stored in PostgreSQL: one instance issues it, the other accepts it.
    async with opened(second, await ticket_for(first, watcher)) as stream:
        made = await post_booking(first, booker, room_id, 10)
        assert made.status_code == 201, made.text
        event = await stream.booking()

    assert event["type"] == "booking.created"
    assert event["booking_id"] == made.json()["id"]
    assert event["room_id"] == str(room_id)
    assert (event["kind"], event["status"]) == ("booking", "confirmed")
    assert (event["starts_at"], event["ends_at"]) == (
        made.json()["starts_at"],
        made.json()["ends_at"],
    )
    # Someone else's booking: no title, note, attendees or owner reach the watcher.
    assert set(event) == PUBLIC_FIELDS
    assert "Secret" not in json.dumps(event)
    assert str(booker.id) not in json.dumps(event)


async def test_every_change_of_a_booking_is_told(
    first: Instance, second: Instance, room_id: uuid.UUID
) -> None:
    manager = await signed_in(first, role=Role.MANAGER)
    async with opened(second, await ticket_for(second, manager)) as stream:
        made = await post_booking(first, manager, room_id, 10)
        moved = await first.client.patch(
            f"/api/v1/bookings/{made.json()['id']}",
            json={"starts_at": local(8, 14).isoformat(), "ends_at": local(8, 15).isoformat()},
            headers={**manager.headers, "If-Match": made.headers["ETag"]},
        )
        cancelled = await first.client.post(
            f"/api/v1/bookings/{made.json()['id']}/cancel",
            json={"reason": "Moved online"},
            headers={**manager.headers, "If-Match": moved.headers["ETag"]},
        )
        assert cancelled.status_code == 200, cancelled.text
        events = [await stream.booking() for _ in range(3)]

    assert [(e["type"], e["status"]) for e in events] == [
        ("booking.created", "confirmed"),
        ("booking.updated", "confirmed"),
        ("booking.cancelled", "cancelled"),
    ]
    assert events[1]["starts_at"] == moved.json()["starts_at"]


async def test_blackouts_are_told_too(
    first: Instance, second: Instance, room_id: uuid.UUID
) -> None:
    manager, member = await signed_in(first, role=Role.MANAGER), await signed_in(second)
    blackouts = f"/api/v1/rooms/{room_id}/blackouts"
    closed = {"starts_at": local(9, 8).isoformat(), "ends_at": local(9, 20).isoformat()}
    async with opened(second, await ticket_for(second, member)) as stream:
        added = await first.client.post(
            blackouts, json={**closed, "reason": "Asbestos removal"}, headers=manager.headers
        )
        assert added.status_code == 201, added.text
        lifted = await first.client.delete(
            f"{blackouts}/{added.json()['id']}", headers=manager.headers
        )
        assert lifted.status_code == 204
        events = [await stream.booking() for _ in range(2)]

    assert [(e["type"], e["kind"], e["status"]) for e in events] == [
        ("blackout.added", "blackout", "confirmed"),
        ("blackout.removed", "blackout", "cancelled"),
    ]
    assert {e["booking_id"] for e in events} == {added.json()["id"]}
    assert all(set(e) == PUBLIC_FIELDS for e in events)


async def test_a_rolled_back_change_emits_nothing(
    first: Instance, second: Instance, room_id: uuid.UUID
) -> None:
    member = await signed_in(first)
    settings: Settings = first.app.state.settings

    async def book(hour: int, *, commit: bool) -> uuid.UUID:
        async with _factory(first)() as session:
            bookings = build_booking_service(
                session,
                audit=build_audit_service(session, settings=settings),
                settings=settings.bookings,
                clock=lambda: NOW.astimezone(UTC),
            )
            made = await bookings.create(
                actor=Actor(id=member.id, manages=False),
                data=BookingCreate.model_validate(booking(room_id, hour)),
            )
            await (session.commit() if commit else session.rollback())
        return made.id

    async with opened(second, await ticket_for(second, member)) as stream:
        await book(10, commit=False)
        kept = await book(12, commit=True)
        # Notifications arrive in commit order: had the rollback sent one, it would come first.
        assert (await stream.booking())["booking_id"] == str(kept)
        with pytest.raises(TimeoutError):
            await stream.next(timeout_s=QUIET_S)


async def test_a_refused_booking_emits_nothing(
    first: Instance, second: Instance, room_id: uuid.UUID
) -> None:
    member = await signed_in(first)
    async with opened(second, await ticket_for(second, member)) as stream:
        made = await post_booking(first, member, room_id, 10)
        taken = await post_booking(first, member, room_id, 10)
        assert taken.status_code == 409
        assert (await stream.booking())["booking_id"] == made.json()["id"]
        with pytest.raises(TimeoutError):
            await stream.next(timeout_s=QUIET_S)


async def test_a_series_tells_only_the_occurrences_it_booked(
    first: Instance, second: Instance, room_id: uuid.UUID
) -> None:
    member = await signed_in(first)
    # Tuesday to Thursday at 10:00; Wednesday's is taken first.
    daily = {**booking(room_id, 10), "rrule": "FREQ=DAILY;COUNT=3"}
    async with opened(second, await ticket_for(second, member)) as stream:
        single = await first.client.post(
            "/api/v1/bookings", json=booking(room_id, 10, day=9), headers=member.headers
        )
        refused = await first.client.post(SERIES, json=daily, headers=member.headers)
        skipped = await first.client.post(
            SERIES, json={**daily, "mode": "skip_conflicts"}, headers=member.headers
        )
        told = [(await stream.booking())["booking_id"] for _ in range(3)]
        with pytest.raises(TimeoutError):
            await stream.next(timeout_s=QUIET_S)

    assert refused.status_code == 409
    assert skipped.status_code == 201, skipped.text
    booked = [o["booking_id"] for o in skipped.json()["occurrences"] if o["booking_id"]]
    # All or nothing: the refused series booked its free days in a transaction rolled back.
    assert told == [single.json()["id"], *booked]
    assert len(booked) == 2


async def test_a_browser_opens_the_stream_with_a_ticket_and_no_header(second: Instance) -> None:
    member = await signed_in(second)
    before = open_streams()
    async with opened(second, await ticket_for(second, member)) as stream:
        assert stream.response.headers["content-type"].startswith("text/event-stream")
        assert stream.response.headers["cache-control"] == "no-store"
        assert stream.response.headers["x-accel-buffering"] == "no"
        assert open_streams() == before + 1
        # Heartbeats: comment lines on a quiet stream, which EventSource ignores.
        with pytest.raises(TimeoutError):
            await stream.next(timeout_s=5 * FAST.heartbeat_s)
        assert stream.comments >= 2
    await until(lambda: open_streams() == before and not second.hub.subscribers)


async def test_a_ticket_opens_one_stream_only(second: Instance) -> None:
    member = await signed_in(second)
    ticket = await ticket_for(second, member)
    async with opened(second, ticket):
        again = await second.client.get(EVENTS, params={"ticket": ticket})
    assert again.status_code == 401
    assert again.json()["code"] == "stream-ticket-refused"
    assert (await second.client.get(EVENTS, params={"ticket": "made-up"})).status_code == 401
    # An access token is no ticket: it never goes in a URL.
    token = member.headers["Authorization"].removeprefix("Bearer ")
    assert (await second.client.get(EVENTS, params={"ticket": token})).status_code == 422


async def test_an_expired_ticket_is_refused(second: Instance) -> None:
    member = await signed_in(second)
    ticket = await ticket_for(second, member)
    async with _factory(second)() as session, session.begin():
        await session.execute(
            update(StreamTicket).values(expires_at=StreamTicket.expires_at - timedelta(minutes=1))
        )
    refused = await second.client.get(EVENTS, params={"ticket": ticket})
    assert refused.status_code == 401
    assert refused.json()["code"] == "stream-ticket-refused"


async def test_a_ticket_of_an_ended_session_is_refused(second: Instance) -> None:
    member = await signed_in(second)
    ticket = await ticket_for(second, member)
    assert (await second.client.post("/api/v1/auth/logout", headers=member.headers)).is_success
    assert (await second.client.get(EVENTS, params={"ticket": ticket})).status_code == 401


async def test_the_ticket_is_stored_hashed(second: Instance) -> None:
    ticket = await ticket_for(second, await signed_in(second))
    async with _factory(second)() as session:
        stored = (await session.execute(text("SELECT token_hash FROM auth_stream_tickets"))).all()
    assert len(stored) == 1
    assert ticket.encode() not in stored[0].token_hash


@pytest.mark.parametrize("ending", ["logout", "deactivation"])
async def test_the_stream_ends_with_its_session(
    first: Instance, second: Instance, ending: str
) -> None:
    member = await signed_in(second)
    async with opened(second, await ticket_for(second, member)) as stream:
        if ending == "logout":
            done = await first.client.post("/api/v1/auth/logout", headers=member.headers)
        else:
            admin = await signed_in(first, role=Role.ADMIN)
            user = await first.client.get(f"/api/v1/users/{member.id}", headers=admin.headers)
            done = await first.client.delete(
                f"/api/v1/users/{member.id}",
                headers={**admin.headers, "If-Match": user.headers["ETag"]},
            )
        assert done.is_success, done.text
        assert await stream.ended()
    await until(lambda: not second.hub.subscribers)


async def test_streams_beyond_the_cap_get_a_503_and_keep_their_ticket(second: Instance) -> None:
    member = await signed_in(second)
    tickets = [await ticket_for(second, member) for _ in range(FAST.max_streams + 1)]
    async with opened(second, tickets[0]), opened(second, tickets[1]):
        refused = await second.client.get(EVENTS, params={"ticket": tickets[2]})
        assert refused.status_code == 503
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["code"] == "too-many-streams"
        assert "retry-after" in refused.headers
    await until(lambda: not second.hub.subscribers)
    # Refused before it was used: the same ticket opens a stream once there is room.
    async with opened(second, tickets[2]) as stream:
        assert stream.response.status_code == 200


async def test_a_stopping_server_ends_its_streams_at_once(second: Instance) -> None:
    member = await signed_in(second)
    async with opened(second, await ticket_for(second, member)) as stream:
        started = time.monotonic()
        second.server.should_exit = True  # what SIGTERM does
        # Cut, not waited for: the client reconnects to another instance with a new ticket.
        with pytest.raises(httpx.RemoteProtocolError):
            await stream.next()
        assert time.monotonic() - started < GRACEFUL_SHUTDOWN_S / 2


async def test_open_streams_take_no_request_slots(migrated_database_url: str) -> None:
    one_at_a_time = make_settings(
        migrated_database_url, events=FAST, server=ServerSettings(max_concurrent_requests=1)
    )
    async with served(one_at_a_time) as instance:
        member = await signed_in(instance)
        async with opened(instance, await ticket_for(instance, member)):
            # The stream runs for hours: were it counted, this request would be shed (503).
            me = await instance.client.get("/api/v1/users/me", headers=member.headers)
        assert me.status_code == 200


async def test_a_client_that_reconnects_gets_what_it_missed(
    first: Instance, second: Instance, room_id: uuid.UUID
) -> None:
    member = await signed_in(first)
    async with opened(second, await ticket_for(second, member)) as stream:
        made = await post_booking(first, member, room_id, 10)
        seen = await stream.booking()
        missed = await post_booking(first, member, room_id, 12)
        await stream.booking()
    later = await post_booking(first, member, room_id, 14)
    # The stream above read everything; resuming after the first event replays the rest.
    # A browser's own reconnection sends the header; a new EventSource, the query.
    for resumed in ({"headers": {"Last-Event-ID": seen["id"]}}, {"last_event_id": seen["id"]}):
        async with opened(second, await ticket_for(second, member), **resumed) as stream:
            replayed = [(await stream.booking())["booking_id"] for _ in range(2)]
        assert replayed == [missed.json()["id"], later.json()["id"]]
    assert seen["booking_id"] == made.json()["id"]

    # An id this process never saw (too old, or before it listened): reload everything.
    unknown = {"Last-Event-ID": uuid.uuid4().hex}
    async with opened(second, await ticket_for(second, member), headers=unknown) as stream:
        assert (await stream.next())["event"] == "reset"


async def test_a_lost_listener_ends_the_streams_and_its_replay(
    first: Instance, second: Instance, room_id: uuid.UUID
) -> None:
    member = await signed_in(first)
    async with opened(second, await ticket_for(second, member)) as stream:
        await post_booking(first, member, room_id, 10)
        seen = await stream.booking()
        async with _factory(second)() as session:
            await session.execute(text(KILL_LISTENERS))
        # Events sent while nobody listens are lost: the streams end rather than skip them.
        assert await stream.ended()
    async with opened(second, await ticket_for(second, member), last_event_id=seen["id"]) as s:
        assert (await s.next())["event"] == "reset"
        later = await post_booking(first, member, room_id, 12)
        assert (await s.booking())["booking_id"] == later.json()["id"]


async def test_a_client_that_stops_reading_never_holds_up_writers(
    first: Instance, second: Instance, room_id: uuid.UUID
) -> None:
    member = await signed_in(first)
    slow: Subscriber = await second.hub.subscribe(session_id=member.session_id, last_event_id=None)
    try:
        # Nobody drains this stream: more events than its buffer holds are written.
        hours = range(8, 8 + FAST.queue_size + 2)
        async with asyncio.timeout(WAIT_S):
            answers = await asyncio.gather(
                *(post_booking(first, member, room_id, hour) for hour in hours)
            )
        assert [a.status_code for a in answers] == [201] * len(hours)
        # The listener went on without waiting: the slow stream was cut off, not waited for.
        await until(lambda: slow.ended)
        assert len(slow.pending) == FAST.queue_size
    finally:
        second.hub.unsubscribe(slow)


async def test_the_ticket_needs_an_access_token(second: Instance) -> None:
    refused = await second.client.post(TICKET)
    assert refused.status_code == 401
    assert refused.json()["code"] == "not-authenticated"


@pytest.fixture(autouse=True)
def _no_stray_streams() -> Iterator[None]:
    """Each test leaves the gauge where it found it."""
    before = open_streams()
    yield
    assert open_streams() == before
