"""Demo data for development (`make seed`), made through the services so the audit chain holds."""

import uuid
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.service import AuditService
from app.auth.bootstrap import build_account_services
from app.bookings.blackout_service import build_blackout_service
from app.bookings.models import Booking, Room
from app.bookings.policy import PolicyOverrides
from app.bookings.room_schemas import BlackoutCreate, RoomCreate
from app.bookings.room_service import build_room_service
from app.bookings.schemas import BookingCreate
from app.bookings.series_schemas import SeriesCreate, SeriesMode
from app.bookings.series_service import build_series_service
from app.bookings.service import Actor, BookingService, build_booking_service
from app.core.clock import Clock
from app.core.config import Settings
from app.core.db import create_engine, create_session_factory
from app.core.security import PasswordHasher
from app.users.schemas import Role, UserCreate


@dataclass(frozen=True, slots=True)
class DemoUser:
    """An account of the demo set, with its development-only password."""

    email: str
    full_name: str
    role: Role
    password: str


DEMO_USERS = (
    DemoUser("admin@example.com", "Ada Admin", Role.ADMIN, "lantern-orbit-harbor-7316"),
    DemoUser("manager@example.com", "Max Manager", Role.MANAGER, "quiet-meadow-copper-4820"),
    DemoUser("member@example.com", "Mia Member", Role.MEMBER, "velvet-canyon-pebble-2957"),
)
"""Development credentials only: `make seed` refuses production, where they would be public."""
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
WEEKS = 3


class SeedRefused(RuntimeError):
    """The demo set is not loaded here (production)."""


async def seed_demo(settings: Settings, *, url: str, clock: Clock) -> bool:
    """Load the demo set into the database at `url` in one transaction; False if it is there."""
    if settings.is_production:
        # The demo passwords are printed and published: never accounts of a real system.
        raise SeedRefused("make seed loads demo accounts with public passwords: not in production")
    engine = create_engine(settings.database, url=url)
    try:
        async with create_session_factory(engine)() as session, session.begin():
            audit, users = build_account_services(
                session, hasher=PasswordHasher.from_settings(settings.security), settings=settings
            )
            # One transaction: the set is there whole or not at all, so its admin marks it.
            if await users.credentials_for(email=DEMO_USERS[0].email) is not None:
                return False
            ids = {
                demo.role: (
                    await users.create(
                        data=UserCreate(
                            email=demo.email,
                            full_name=demo.full_name,
                            password=demo.password,
                            role=demo.role,
                        )
                    )
                ).id
                for demo in DEMO_USERS
            }
            await _rooms_and_bookings(session, audit=audit, settings=settings, clock=clock, ids=ids)
            return True
    finally:
        await engine.dispose()


async def _rooms_and_bookings(
    session: AsyncSession,
    *,
    audit: AuditService,
    settings: Settings,
    clock: Clock,
    ids: dict[Role, uuid.UUID],
) -> None:
    rooms = build_room_service(session, audit=audit, settings=settings.bookings)
    aurora = await rooms.create(
        data=RoomCreate(
            name="Aurora",
            description="Bright corner room with a view of the courtyard.",
            building="Main",
            floor="2",
            capacity=8,
            amenities=["projector", "whiteboard"],
            time_zone="Europe/Berlin",
        )
    )
    hudson = await rooms.create(
        data=RoomCreate(
            name="Hudson",
            description="Board room; bookings wait for a manager's approval.",
            building="East",
            floor="12",
            capacity=14,
            amenities=["video-conference"],
            time_zone="America/New_York",
            policy=PolicyOverrides(requires_approval=True, buffer_minutes=15, slot_minutes=30),
        )
    )
    monday = _next_monday(clock().astimezone(BERLIN).date())
    blackouts = build_blackout_service(session, audit=audit, clock=clock)
    await blackouts.add(
        room=aurora,
        actor_id=ids[Role.MANAGER],
        data=BlackoutCreate(
            starts_at=_at(monday + timedelta(days=10), 8, BERLIN),
            ends_at=_at(monday + timedelta(days=10), 20, BERLIN),
            reason="Painting",
        ),
    )
    bookings = build_booking_service(session, audit=audit, settings=settings.bookings, clock=clock)
    member = Actor(id=ids[Role.MEMBER], manages=False)
    manager = Actor(id=ids[Role.MANAGER], manages=True)
    made = [
        *await _weekly_habits(bookings, actor=member, room=aurora, monday=monday),
        *await _weekly_habits(bookings, actor=manager, room=hudson, monday=monday),
    ]
    cancelled = made[0]
    await bookings.cancel(
        actor=member,
        booking=cancelled,
        expected_versions=frozenset({cancelled.version}),
        reason="Moved to a call",
    )
    await _book(
        bookings, actor=member, room=hudson, start=_at(monday + timedelta(days=3), 14, NEW_YORK)
    )
    series = build_series_service(
        session, audit=audit, settings=settings.bookings, clock=clock, bookings=bookings
    )
    await series.create(
        actor=member,
        data=SeriesCreate(
            room_id=aurora.id,
            title="Weekly planning",
            attendees=4,
            starts_at=_at(monday, 9, BERLIN),
            ends_at=_at(monday, 10, BERLIN),
            rrule=f"FREQ=WEEKLY;COUNT={WEEKS + 1}",
            mode=SeriesMode.SKIP_CONFLICTS,
        ),
    )


async def _weekly_habits(
    bookings: BookingService, *, actor: Actor, room: Room, monday: date
) -> list[Booking]:
    """Tuesday and Friday mornings for `WEEKS` weeks, on the room's wall clock."""
    zone = ZoneInfo(room.time_zone)
    days = [monday + timedelta(weeks=week, days=day) for week in range(WEEKS) for day in (1, 4)]
    return [await _book(bookings, actor=actor, room=room, start=_at(day, 10, zone)) for day in days]


async def _book(bookings: BookingService, *, actor: Actor, room: Room, start: datetime) -> Booking:
    return await bookings.create(
        actor=actor,
        data=BookingCreate(
            room_id=room.id,
            title="Team sync",
            attendees=3,
            starts_at=start,
            ends_at=start + timedelta(hours=1),
        ),
    )


def _next_monday(today: date) -> date:
    return today + timedelta(days=7 - today.weekday())


def _at(day: date, hour: int, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(hour), tzinfo=zone)
