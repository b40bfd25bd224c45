"""Policies and instants the pure bookings tests build on."""

from datetime import UTC, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from app.bookings.policy import BookingPolicy, OpeningSpan, Weekday

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
WORKDAYS = (Weekday.MON, Weekday.TUE, Weekday.WED, Weekday.THU, Weekday.FRI)


def spans(*hours: tuple[str, str]) -> list[OpeningSpan]:
    """Opening spans from `("08:00", "20:00")` pairs."""
    return [
        OpeningSpan(opens=time.fromisoformat(opens), closes=time.fromisoformat(closes))
        for opens, closes in hours
    ]


def every_day(*hours: tuple[str, str]) -> dict[Weekday, list[OpeningSpan]]:
    """The same spans on all seven days."""
    return dict.fromkeys(Weekday, spans(*hours))


def make_policy(**overrides: Any) -> BookingPolicy:
    """The settings' default policy (Mon-Fri 08:00-20:00, 15-minute slots), with overrides."""
    values: dict[str, Any] = {
        "opening_hours": dict.fromkeys(WORKDAYS, spans(("08:00", "20:00"))),
        "slot_minutes": 15,
        "min_duration_minutes": 15,
        "max_duration_minutes": 480,
        "min_notice_minutes": 0,
        "max_ahead_days": 180,
        "buffer_minutes": 0,
        "requires_approval": False,
        "member_cutoff_minutes": 60,
    }
    return BookingPolicy.model_validate(values | overrides)


def utc(text: str) -> datetime:
    """A UTC instant from `2027-03-29 08:00`."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def local(text: str, zone: ZoneInfo, *, fold: int = 0) -> datetime:
    """The UTC instant a wall clock in `zone` shows `2027-03-29 08:00` (`fold=1`: its repeat).

    In UTC, so that adding a `timedelta` adds elapsed time, not wall-clock time.
    """
    return datetime.fromisoformat(text).replace(tzinfo=zone, fold=fold).astimezone(UTC)


def wall(instant: datetime, zone: ZoneInfo) -> str:
    """The local wall-clock reading of an instant, `2027-03-29 08:00+02:00`."""
    return instant.astimezone(zone).isoformat(sep=" ", timespec="minutes")
