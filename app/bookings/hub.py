"""The per-process fan-out of booking events to the open event streams.

Each process keeps one dedicated PostgreSQL connection (never one of the request pool)
that `LISTEN`s on the booking channel, opened when the first stream opens. Every
notification is put in each open stream's own bounded buffer without waiting, so no
client, however slow or gone, can hold up the listener, let alone a writer; a stream
whose buffer overflows is closed, and its client reconnects and resumes.

The last `EVENTS__REPLAY_SIZE` events are kept in a ring, so a client that reconnects
with `Last-Event-ID` gets what it missed, provided the id is still in this process's
ring. Otherwise (the id is older, or came from a process that had not yet listened, or
the listener reconnected meanwhile) the stream starts with a `reset` event: the client
must reload what it shows.
"""

import asyncio
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import structlog
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.audit.service import build_audit_service
from app.auth.service import build_session_service
from app.bookings.events import CHANNEL, BookingEvent
from app.core.config import EventSettings, Settings
from app.core.errors import ServiceUnavailable

RESET = "reset"
"""What a stream sends first when it cannot resume from the client's `Last-Event-ID`."""
CONNECT_TIMEOUT_S = 5.0

log = structlog.get_logger("roombook.events")

SessionCheck = Callable[[Collection[uuid.UUID]], Awaitable[set[uuid.UUID]]]
"""Given session ids, returns those still live with an active user."""


class TooManyStreams(ServiceUnavailable):
    """This process already serves `EVENTS__MAX_STREAMS` event streams."""

    code = "too-many-streams"
    title = "Too many event streams"


@dataclass(eq=False)
class Subscriber:
    """One open stream: its session, its bounded buffer, and whether it has ended."""

    session_id: uuid.UUID
    limit: int
    pending: deque[BookingEvent | str] = field(default_factory=deque)
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    ended: bool = False

    def offer(self, item: BookingEvent | str) -> None:
        """Buffer an item without waiting; a full buffer ends the stream instead."""
        if self.ended:
            return
        if len(self.pending) >= self.limit:
            # Never wait for a slow client: it is cut off and resumes with Last-Event-ID.
            self.end(discard=False)
            return
        self.pending.append(item)
        self.wakeup.set()

    def end(self, *, discard: bool) -> None:
        """End the stream, after what is buffered unless `discard` (an ended session)."""
        if discard:
            self.pending.clear()
        self.ended = True
        self.wakeup.set()

    async def items(self) -> AsyncIterator[BookingEvent | str]:
        """The buffered items as they come, until the stream ends."""
        while True:
            while self.pending:
                yield self.pending.popleft()
            if self.ended:
                return
            self.wakeup.clear()
            await self.wakeup.wait()


class EventHub:
    """Listens for booking events once per process and hands them to every open stream."""

    def __init__(self, *, dsn: str, settings: EventSettings, check_sessions: SessionCheck) -> None:
        self.dsn = dsn
        self.settings = settings
        self.check_sessions = check_sessions
        self.subscribers: set[Subscriber] = set()
        self.recent: deque[BookingEvent] = deque(maxlen=settings.replay_size)
        self.connection: Any = None
        self.connecting = asyncio.Lock()
        self.watchdog: asyncio.Task[None] | None = None

    def admit(self) -> None:
        """Refuse (503) when this process already has as many streams as allowed."""
        if len(self.subscribers) >= self.settings.max_streams:
            raise TooManyStreams(
                f"This server holds {self.settings.max_streams} event streams already; "
                "try again shortly."
            )

    async def subscribe(self, *, session_id: uuid.UUID, last_event_id: str | None) -> Subscriber:
        """Open a stream for a session, starting after `last_event_id` where that is known."""
        await self._listen()
        # No await from here on: the cap, the replay and the registration are one step.
        self.admit()
        subscriber = Subscriber(session_id=session_id, limit=self.settings.queue_size)
        for item in self._replay(last_event_id):
            subscriber.offer(item)
        self.subscribers.add(subscriber)
        self._watch_sessions()
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        """Forget a stream that has ended."""
        subscriber.end(discard=True)
        self.subscribers.discard(subscriber)

    async def close(self) -> None:
        """End every stream, stop checking sessions and close the listener connection."""
        for subscriber in list(self.subscribers):
            subscriber.end(discard=False)
        if self.watchdog is not None:
            self.watchdog.cancel()
        connection, self.connection = self.connection, None
        if connection is not None:
            connection.remove_termination_listener(self._lost)
            await connection.close(timeout=CONNECT_TIMEOUT_S)

    def _replay(self, last_event_id: str | None) -> Sequence[BookingEvent | str]:
        if last_event_id is None:
            return []
        ids = [event.id for event in self.recent]
        if last_event_id not in ids:
            return [RESET]
        return list(self.recent)[ids.index(last_event_id) + 1 :]

    async def _listen(self) -> None:
        async with self.connecting:
            if self.connection is not None and not self.connection.is_closed():
                return
            # Its own connection, not the request pool's: LISTEN needs a session that
            # stays open, and a pooled one would be lent to requests and reset.
            connection = await asyncpg.connect(
                self.dsn,
                timeout=CONNECT_TIMEOUT_S,
                server_settings={"application_name": "roombook-events"},
            )
            connection.add_termination_listener(self._lost)
            await connection.add_listener(CHANNEL, self._received)
            self.connection = connection

    def _received(self, _connection: object, _pid: int, _channel: str, payload: str) -> None:
        event = BookingEvent.model_validate_json(payload)
        self.recent.append(event)
        for subscriber in list(self.subscribers):
            subscriber.offer(event)

    def _lost(self, _connection: object) -> None:
        # Events sent while nobody listened are gone: no stream may resume across the gap.
        log.warning("event listener connection lost", streams=len(self.subscribers))
        self.connection = None
        self.recent.clear()
        for subscriber in list(self.subscribers):
            subscriber.end(discard=False)

    def _watch_sessions(self) -> None:
        if self.watchdog is None or self.watchdog.done():
            self.watchdog = asyncio.create_task(self._check_sessions_forever())

    async def _check_sessions_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.session_check_s)
            try:
                await self._end_dead_sessions()
            except Exception:
                # The database may be away for a moment; the next round checks again.
                log.warning("event stream session check failed", exc_info=True)

    async def _end_dead_sessions(self) -> None:
        """Close the streams whose session ended or whose user was deactivated."""
        watched = {subscriber.session_id for subscriber in self.subscribers}
        if not watched:
            return
        # One query for every stream of the process, not one per stream.
        live = await self.check_sessions(watched)
        for subscriber in list(self.subscribers):
            if subscriber.session_id in watched - live:
                subscriber.end(discard=True)


def listener_dsn(url: str) -> str:
    """The database URL as asyncpg itself takes it (no SQLAlchemy driver suffix)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def session_checker(
    *, factory: Callable[[], async_sessionmaker[AsyncSession]], settings: Settings
) -> SessionCheck:
    """Checks sessions in a short transaction of their own, through auth's session service.

    The factory is looked up at each check, so whatever session factory the app uses then
    (tests swap it) is the one used.
    """

    async def check(session_ids: Collection[uuid.UUID]) -> set[uuid.UUID]:
        async with factory()() as session, session.begin():
            sessions = build_session_service(
                session, audit=build_audit_service(session, settings=settings), settings=settings
            )
            return await sessions.live_among(session_ids=session_ids)

    return check


def build_event_hub(
    *, settings: Settings, session_factory: Callable[[], async_sessionmaker[AsyncSession]]
) -> EventHub:
    """The process's event hub; it connects only once a stream opens."""
    if settings.database.url is None:
        raise ValueError("the event hub needs DATABASE__URL")
    return EventHub(
        dsn=listener_dsn(settings.database.url.get_secret_value()),
        settings=settings.events,
        check_sessions=session_checker(factory=session_factory, settings=settings),
    )
