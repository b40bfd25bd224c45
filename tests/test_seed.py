"""`make seed`: the demo set, made through the services, loaded once, never in production."""

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.audit.commands import verify_chain
from app.audit.models import AuditEvent
from app.bookings.models import Booking, Room
from app.bookings.series_models import BookingSeries
from app.core.db import create_engine
from app.seed import DEMO_USERS, SeedRefused, seed_demo
from app.users.models import User
from tests.conftest import make_settings

NOW = datetime(2030, 1, 9, 12, 0, tzinfo=UTC)
"""A Wednesday: the demo weeks start on Monday 14 January 2030."""


async def counts(engine: AsyncEngine) -> dict[str, int]:
    """Rows per table the seed writes to."""
    async with engine.connect() as connection:
        return {
            model.__tablename__: await connection.scalar(select(func.count()).select_from(model))
            or 0
            for model in (User, Room, Booking, BookingSeries, AuditEvent)
        }


async def test_the_demo_set_is_loaded_once_and_the_chain_verifies(
    migrated_database_url: str,
) -> None:
    settings = make_settings(migrated_database_url)
    engine = create_engine(settings.database, url=migrated_database_url)
    try:
        first = await seed_demo(settings, url=migrated_database_url, clock=lambda: NOW)
        after_first = await counts(engine)
        second = await seed_demo(settings, url=migrated_database_url, clock=lambda: NOW)
        async with engine.connect() as connection:
            roles = set((await connection.execute(select(User.email, User.role))).all())
            zones = set((await connection.scalars(select(Room.time_zone))).all())
            statuses = (
                await connection.execute(
                    select(Booking.kind, Booking.status, func.count()).group_by(
                        Booking.kind, Booking.status
                    )
                )
            ).all()
            in_series = await connection.scalar(
                select(func.count()).where(Booking.series_id.is_not(None))
            )
        assert await counts(engine) == after_first
    finally:
        await engine.dispose()

    assert first is True
    assert second is False  # nothing changed the second time
    assert roles == {(demo.email, demo.role.value) for demo in DEMO_USERS}
    assert zones == {"Europe/Berlin", "America/New_York"}
    by_status = {(kind, status): count for kind, status, count in statuses}
    assert by_status[("blackout", "confirmed")] == 1
    assert by_status[("booking", "cancelled")] == 1
    assert by_status[("booking", "pending")] >= 1
    assert by_status[("booking", "confirmed")] >= 5
    assert in_series == 4
    assert after_first["booking_series"] == 1
    report = await verify_chain(settings, url=migrated_database_url)
    assert report.ok, report
    assert report.checked == after_first["audit_events"]


async def test_production_is_refused_before_anything_is_written(
    migrated_database_url: str,
) -> None:
    settings = make_settings(migrated_database_url).model_copy(update={"environment": "production"})

    with pytest.raises(SeedRefused, match="not in production"):
        await seed_demo(settings, url=migrated_database_url, clock=lambda: NOW)

    engine = create_engine(settings.database, url=migrated_database_url)
    try:
        assert (await counts(engine))["users"] == 0
    finally:
        await engine.dispose()
