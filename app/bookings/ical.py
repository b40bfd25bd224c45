"""Bookings as an iCalendar (RFC 5545) document, written with the `icalendar` package."""

import uuid
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event
from icalendar.enums import STATUS

from app.bookings.models import Booking, BookingStatus, Room

PRODID = "-//Roombook//Calendar feed//EN"
REFRESH_INTERVAL = timedelta(minutes=30)
"""How often calendar apps are asked to fetch a feed again (REFRESH-INTERVAL, X-PUBLISHED-TTL)."""
FEED_NAMESPACE = uuid.UUID("8f1d8a52-3b0c-4a38-9d0e-2f5f1f0c7a11")
"""Namespace of the feeds' own UIDs: the same feed keeps the same UID from fetch to fetch."""
EVENT_STATUS = {BookingStatus.PENDING: STATUS.TENTATIVE, BookingStatus.CONFIRMED: STATUS.CONFIRMED}
"""A booking's status as an event's STATUS; only these two (the active ones) reach a feed."""
ZONE_MARGIN = timedelta(days=1)


def render_calendar(*, name: str, key: str, entries: Sequence[tuple[Booking, Room]]) -> bytes:
    """The calendar named `name` (a stable `key` gives its UID) holding one event per booking."""
    calendar = Calendar.new(
        prodid=PRODID,
        name=name,
        uid=uuid.uuid5(FEED_NAMESPACE, key),
        refresh_interval=REFRESH_INTERVAL,
    )
    calendar.add("X-PUBLISHED-TTL", REFRESH_INTERVAL)
    for booking, room in entries:
        calendar.add_component(_event(booking, room))
    if entries:
        first, last = _span_of(entries)
        # Each room's zone as a VTIMEZONE, its rules only for the dates the events need.
        calendar.add_missing_timezones(first_date=first, last_date=last)
    document: bytes = calendar.to_ical()
    return document


def _event(booking: Booking, room: Room) -> Event:
    zone = ZoneInfo(room.time_zone)
    return Event.new(
        uid=str(booking.id),
        # Without METHOD, DTSTAMP is when the event last changed (RFC 5545 3.8.7.2): the
        # feed stays byte for byte the same until a booking in it changes.
        stamp=booking.updated_at,
        created=booking.created_at,
        last_modified=booking.updated_at,
        start=booking.starts_at.astimezone(zone),
        end=booking.ends_at.astimezone(zone),
        summary=booking.title,
        description=booking.note,
        location=_place(room),
        # Versions start at 1 and every change bumps them; SEQUENCE starts at 0.
        sequence=booking.version - 1,
        status=EVENT_STATUS[BookingStatus(booking.status)],
    )


def _place(room: Room) -> str:
    parts = [room.name, room.building]
    if room.floor:
        parts.append(f"floor {room.floor}")
    return ", ".join(parts)


def _span_of(entries: Sequence[tuple[Booking, Room]]) -> tuple[date, date]:
    starts: list[datetime] = [booking.starts_at for booking, _ in entries]
    ends: list[datetime] = [booking.ends_at for booking, _ in entries]
    return (min(starts) - ZONE_MARGIN).date(), (max(ends) + ZONE_MARGIN).date()
