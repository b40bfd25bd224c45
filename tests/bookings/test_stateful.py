"""Random bookings, moves, cancellations and decisions in three rooms never double-book.

A Hypothesis state machine drives the booking service against real PostgreSQL, one
committed unit of work per step, and keeps a model of which bookings hold which room.
Every request keeps the rooms' rules, so only a taken time (buffers included) can refuse a
booking or a move. After every step the table is read back: no two rows holding a room
overlap, and the rows are exactly what the model expects, so each request succeeded or was
refused as the model said.

The machine runs in a worker thread and hands each step to the test's event loop, where
the app's engine lives. `make test` runs a short derandomized pass; `make fuzz` sets
`FUZZ_EXAMPLES` for a long random one.
"""

import asyncio
import os
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    MultipleResults,
    RuleBasedStateMachine,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.audit.service import build_audit_service
from app.bookings.errors import BookingClosed, BookingRefused, IllegalTransition
from app.bookings.models import HOLDING_STATUSES, Booking, BookingStatus
from app.bookings.schemas import BookingCreate, BookingUpdate
from app.bookings.service import Actor, BookingService
from app.core.config import Settings
from app.core.errors import AppError
from app.users.schemas import Role
from tests.auth.conftest import committed_user
from tests.bookings.conftest import NOW, local
from tests.conftest import truncate_all
from tests.factories import RoomFactory

T = TypeVar("T")

FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "0"))
"""Examples of the long run (`make fuzz`); unset, the short derandomized pass of `make test`."""
MACHINE_SETTINGS = settings(
    max_examples=FUZZ_EXAMPLES or 25,
    stateful_step_count=50 if FUZZ_EXAMPLES else 20,
    derandomize=not FUZZ_EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
STEP_TIMEOUT_S = 30.0
NOW_UTC = NOW.astimezone(UTC)
STARTS = [local(8, 8) + timedelta(minutes=30 * n) for n in range(8)]
"""Tuesday 08:00 to 11:30 every half hour: few enough that bookings collide often."""
LENGTHS = [timedelta(minutes=minutes) for minutes in (30, 60, 90)]


@dataclass(frozen=True, slots=True)
class RoomKind:
    """A room's policy overrides, as the machine's rooms differ."""

    buffer_minutes: int
    requires_approval: bool


ROOM_KINDS = (RoomKind(0, False), RoomKind(30, False), RoomKind(15, True))
"""No buffer; a half-hour buffer; approval needed and a quarter-hour buffer."""
ROOMS = st.sampled_from(range(len(ROOM_KINDS)))


@dataclass(frozen=True, slots=True)
class Expected:
    """What the model expects a booking's row to say."""

    room: int
    starts_at: datetime
    ends_at: datetime
    status: str
    version: int

    @property
    def blocked_until(self) -> datetime:
        """The end plus the buffer of the room it is in."""
        return self.ends_at + timedelta(minutes=ROOM_KINDS[self.room].buffer_minutes)

    @property
    def holds(self) -> bool:
        """Whether it holds its room (pending or confirmed)."""
        return self.status in HOLDING_STATUSES


@dataclass(frozen=True, slots=True)
class Driver:
    """Runs each step as one unit of work on the test's event loop, from the machine's thread."""

    loop: asyncio.AbstractEventLoop
    factory: async_sessionmaker[AsyncSession]
    settings: Settings
    member: Actor
    manager: Actor
    rows_compared: list[int] = field(default_factory=list)
    """How many rows each invariant check compared with the model, one entry per check."""

    def run(self, step: Callable[[BookingService], Awaitable[T]]) -> T:
        """Run `step` with a booking service in a transaction that commits unless it raises."""
        return self.wait(self._in_unit_of_work(step))

    def attempt(self, step: Callable[[BookingService], Awaitable[T]]) -> T | AppError:
        """Run `step` as `run` does; a domain error is returned, not raised."""
        try:
            return self.run(step)
        except AppError as refused:
            return refused

    def wait(self, work: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the test's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(timeout=STEP_TIMEOUT_S)

    async def _in_unit_of_work(self, step: Callable[[BookingService], Awaitable[T]]) -> T:
        async with self.factory() as session, session.begin():
            service = BookingService(
                session=session,
                audit=build_audit_service(session, settings=self.settings),
                settings=self.settings.bookings,
                clock=lambda: NOW_UTC,
            )
            return await step(service)

    async def add_rooms(self) -> list[uuid.UUID]:
        """Commit one room of each kind; return their ids in `ROOM_KINDS` order."""
        rooms = [
            RoomFactory.build(
                policy={
                    "buffer_minutes": kind.buffer_minutes,
                    "requires_approval": kind.requires_approval,
                }
            )
            for kind in ROOM_KINDS
        ]
        async with self.factory() as session, session.begin():
            session.add_all(rooms)
        return [room.id for room in rooms]

    async def read_back(self, room_ids: list[uuid.UUID]) -> tuple[int, list[Booking]]:
        """Pairs of rows holding one of the rooms whose blocked ranges overlap; every row."""
        overlapping = text(
            "SELECT count(*) FROM bookings a JOIN bookings b "
            "ON a.room_id = b.room_id AND a.id < b.id AND a.blocked && b.blocked "
            "WHERE a.room_id = ANY(:rooms) "
            "AND a.status IN ('pending', 'confirmed') AND b.status IN ('pending', 'confirmed')"
        )
        async with self.factory() as session:
            pairs = await session.scalar(overlapping, {"rooms": room_ids})
            rows = await session.scalars(select(Booking).where(Booking.room_id.in_(room_ids)))
            return int(pairs or 0), list(rows.all())


def violation_codes(refused: BookingRefused) -> list[str]:
    """The codes of a refusal's violations, in order."""
    return [violation.code.value for violation in refused.violations]


class BookingMachine(RuleBasedStateMachine):
    """Creates, moves, cancels, approves and rejects bookings; checks the table after each."""

    bookings = Bundle("bookings")

    def __init__(self, driver: Driver) -> None:
        super().__init__()
        self.driver = driver
        self.room_ids = driver.wait(driver.add_rooms())
        self.model: dict[uuid.UUID, Expected] = {}

    def free(
        self, *, room: int, starts_at: datetime, ends_at: datetime, moving: uuid.UUID | None
    ) -> bool:
        """Whether nothing but `moving` holds the room anywhere in the would-be blocked range."""
        wanted = Expected(room, starts_at, ends_at, BookingStatus.CONFIRMED.value, 1)
        return not any(
            other.holds
            and other.room == room
            and other.starts_at < wanted.blocked_until
            and starts_at < other.blocked_until
            for booking_id, other in self.model.items()
            if booking_id != moving
        )

    @rule(
        target=bookings, room=ROOMS, start=st.sampled_from(STARTS), length=st.sampled_from(LENGTHS)
    )
    def book(
        self, room: int, start: datetime, length: timedelta
    ) -> uuid.UUID | MultipleResults[Any]:
        """A member books; refused with `overlap` exactly when the model finds the time taken."""
        expected_free = self.free(room=room, starts_at=start, ends_at=start + length, moving=None)
        data = BookingCreate(
            room_id=self.room_ids[room],
            title="Stand-up",
            attendees=2,
            starts_at=start,
            ends_at=start + length,
        )
        booking = self.driver.attempt(
            lambda service: service.create(actor=self.driver.member, data=data)
        )
        if not expected_free:
            assert isinstance(booking, BookingRefused), f"a taken time was booked: {booking}"
            assert violation_codes(booking) == ["overlap"]
            return multiple()
        assert isinstance(booking, Booking), f"a free time was refused: {booking}"
        status = (
            BookingStatus.PENDING if ROOM_KINDS[room].requires_approval else BookingStatus.CONFIRMED
        )
        self.model[booking.id] = Expected(room, start, start + length, status.value, 1)
        return booking.id

    @rule(
        booking_id=bookings,
        room=ROOMS,
        start=st.sampled_from(STARTS),
        length=st.sampled_from(LENGTHS),
        by_manager=st.booleans(),
    )
    def move(
        self, booking_id: uuid.UUID, room: int, start: datetime, length: timedelta, by_manager: bool
    ) -> None:
        """The owner or a manager moves a booking, perhaps to another room."""
        before = self.model[booking_id]
        actor = self.driver.manager if by_manager else self.driver.member
        data = BookingUpdate(room_id=self.room_ids[room], starts_at=start, ends_at=start + length)

        async def step(service: BookingService) -> Booking:
            booking = await service.visible(actor=actor, booking_id=booking_id)
            return await service.update(
                actor=actor,
                booking=booking,
                expected_versions=frozenset({before.version}),
                data=data,
            )

        after = replace(before, room=room, starts_at=start, ends_at=start + length)
        if not before.holds:
            self._refused(step, BookingClosed)
            return
        if after == before:
            self.driver.run(step)
            return
        expected_free = self.free(
            room=room, starts_at=start, ends_at=start + length, moving=booking_id
        )
        moved = self.driver.attempt(step)
        if not expected_free:
            assert isinstance(moved, BookingRefused), f"a move onto a taken time was made: {moved}"
            assert violation_codes(moved) == ["overlap"]
            return
        assert isinstance(moved, Booking), f"a move to a free time was refused: {moved}"
        # A member's move into a room that needs approval waits for it again.
        status = (
            BookingStatus.PENDING.value
            if ROOM_KINDS[room].requires_approval and not by_manager
            else before.status
        )
        self.model[booking_id] = replace(after, status=status, version=before.version + 1)

    @rule(booking_id=bookings)
    def cancel(self, booking_id: uuid.UUID) -> None:
        """The owner cancels: only a pending or confirmed booking."""
        before = self.model[booking_id]
        member = self.driver.member

        async def step(service: BookingService) -> Booking:
            booking = await service.visible(actor=member, booking_id=booking_id)
            return await service.cancel(
                actor=member,
                booking=booking,
                expected_versions=frozenset({before.version}),
                reason="Plans changed",
            )

        if not before.holds:
            self._refused(step, IllegalTransition)
            return
        self.driver.run(step)
        self.model[booking_id] = replace(
            before, status=BookingStatus.CANCELLED.value, version=before.version + 1
        )

    @rule(booking_id=bookings, approve=st.booleans())
    def decide(self, booking_id: uuid.UUID, approve: bool) -> None:
        """A manager approves or rejects: only a pending booking."""
        before = self.model[booking_id]
        manager = self.driver.manager

        async def step(service: BookingService) -> Booking:
            booking = await service.visible(actor=manager, booking_id=booking_id)
            versions = frozenset({before.version})
            if approve:
                return await service.approve(
                    actor=manager, booking=booking, expected_versions=versions
                )
            return await service.reject(
                actor=manager, booking=booking, expected_versions=versions, reason=None
            )

        if before.status != BookingStatus.PENDING.value:
            self._refused(step, IllegalTransition)
            return
        self.driver.run(step)
        status = BookingStatus.CONFIRMED if approve else BookingStatus.REJECTED
        self.model[booking_id] = replace(before, status=status.value, version=before.version + 1)

    def _refused(
        self, step: Callable[[BookingService], Awaitable[Booking]], error: type[AppError]
    ) -> None:
        outcome = self.driver.attempt(step)
        assert isinstance(outcome, error), f"expected {error.__name__}, got {outcome}"

    @invariant()
    def no_room_is_held_twice_and_the_table_is_the_model(self) -> None:
        """No two rows holding a room overlap, buffers included; each row is as expected."""
        overlapping, rows = self.driver.wait(self.driver.read_back(self.room_ids))
        self.driver.rows_compared.append(len(rows))
        assert overlapping == 0
        found = {
            row.id: (row.room_id, row.starts_at, row.ends_at, row.blocked_until, row.status)
            for row in rows
        }
        assert found == {
            booking_id: (
                self.room_ids[e.room],
                e.starts_at,
                e.ends_at,
                e.blocked_until,
                e.status,
            )
            for booking_id, e in self.model.items()
        }
        assert {row.id: row.version for row in rows} == {
            booking_id: e.version for booking_id, e in self.model.items()
        }


async def test_random_bookings_moves_and_cancellations_never_double_book(app: FastAPI) -> None:
    member = await committed_user(app, email="walker@example.com", role=Role.MEMBER)
    manager = await committed_user(app, email="steward@example.com", role=Role.MANAGER)
    driver = Driver(
        loop=asyncio.get_running_loop(),
        factory=app.state.session_factory,
        # The model knows the room's rules, not members' quotas (test_quotas.py has those).
        settings=app.state.settings.model_copy(
            update={
                "bookings": app.state.settings.bookings.model_copy(
                    update={"member_max_active_future": 0, "member_max_week_hours": 0}
                )
            }
        ),
        member=Actor(id=member, manages=False),
        manager=Actor(id=manager, manages=True),
    )

    class Machine(BookingMachine):
        """The machine on this run's driver."""

        def __init__(self) -> None:
            super().__init__(driver)

    try:
        # Hypothesis runs the machine synchronously; the worker thread leaves this loop free
        # to run the steps it hands over.
        await asyncio.to_thread(run_state_machine_as_test, Machine, settings=MACHINE_SETTINGS)
    finally:
        await truncate_all(app.state.engine)
    # The invariant holds the assertions; this shows the machine really ran and compared
    # bookings, so a machine that never booked anything cannot pass unnoticed.
    assert len(driver.rows_compared) >= MACHINE_SETTINGS.max_examples
    assert max(driver.rows_compared) >= 5
