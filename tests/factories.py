"""polyfactory factories for Roombook's request schemas and models."""

import uuid
from typing import Any

from polyfactory import Ignore, Use
from polyfactory.factories.pydantic_factory import ModelFactory
from polyfactory.factories.sqlalchemy_factory import SQLAlchemyFactory

from app.auth.schemas import RegisterRequest
from app.bookings.models import Booking, BookingKind, BookingStatus, Room
from app.users.models import User
from app.users.schemas import Role, UserCreate


def unique_email() -> str:
    """An address no other test uses."""
    return f"user-{uuid.uuid4().hex[:12]}@example.com"


def strong_password() -> str:
    """A password that passes the policy: long, uncommon, unrelated to the email."""
    return f"violet harbour lantern {uuid.uuid4().hex[:8]}"


class UserCreateFactory(ModelFactory[UserCreate]):
    """Admin-created accounts with valid, unique emails and passwords."""

    email = Use(unique_email)
    password = Use(strong_password)
    full_name = Use(lambda: f"Pat {uuid.uuid4().hex[:6]}")
    role = Role.MEMBER


class RegisterRequestFactory(ModelFactory[RegisterRequest]):
    """Self-service sign-ups with valid, unique emails and passwords."""

    email = Use(unique_email)
    password = Use(strong_password)
    full_name = Use(lambda: f"Sam {uuid.uuid4().hex[:6]}")


class UserFactory(SQLAlchemyFactory[User]):
    """User rows; callers pass `password_hash` from the app's hasher.

    Timestamps are left to the database clock so list order follows insertion.
    """

    __set_relationships__ = False
    created_at = Ignore()
    updated_at = Ignore()
    last_login_at = None

    id = Use(uuid.uuid4)
    email = Use(unique_email)
    full_name = Use(lambda: f"Test {uuid.uuid4().hex[:6]}")
    role = Role.MEMBER.value
    is_active = True
    version = 1


class RoomFactory(SQLAlchemyFactory[Room]):
    """Room rows with unique names and every policy default."""

    __set_relationships__ = False
    created_at = Ignore()
    updated_at = Ignore()

    id = Use(uuid.uuid4)
    name = Use(lambda: f"Room {uuid.uuid4().hex[:8]}")
    description = ""
    building = "Main"
    floor = "1"
    capacity = 8
    amenities: Use[[], list[str]] = Use(list)
    time_zone = "Europe/Berlin"
    is_active = True
    policy: Use[[], dict[str, Any]] = Use(dict)
    version = 1


class BookingFactory(SQLAlchemyFactory[Booking]):
    """Confirmed booking rows; callers pass room, owner and times (`blocked_until` included)."""

    __set_relationships__ = False
    created_at = Ignore()
    updated_at = Ignore()
    during = Ignore()
    blocked = Ignore()
    decided_by = None
    decided_at = None
    cancelled_by = None
    cancelled_at = None
    cancel_reason = None
    series_id = None

    id = Use(uuid.uuid4)
    kind = BookingKind.BOOKING.value
    title = "Team meeting"
    note = None
    attendees = 2
    status = BookingStatus.CONFIRMED.value
    version = 1
    rules_overridden = False
