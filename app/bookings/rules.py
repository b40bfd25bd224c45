"""The booking rules: every way a requested booking can break its room's policy, all at once.

Pure functions of the policy, the room's zone, the request and `now`: no database, no
HTTP. Durations, notice and horizon are elapsed time, so a night the clocks change is an
hour shorter or longer; opening hours and the slot grid are read on the room's wall clock.
A booking lies within one open stretch of time: it may cross local midnight only where the
room stays open through it (a day open until 00:00 followed by one open from 00:00).
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from app.bookings.intervals import as_utc, is_open_throughout, start_limits
from app.bookings.policy import BookingPolicy
from app.bookings.slots import is_slot_boundary


class ViolationCode(StrEnum):
    """Stable machine-readable name of one broken rule."""

    OVERLAP = "overlap"
    OUTSIDE_OPENING_HOURS = "outside_opening_hours"
    OFF_GRANULARITY = "off_granularity"
    TOO_SHORT = "too_short"
    TOO_LONG = "too_long"
    TOO_LITTLE_NOTICE = "too_little_notice"
    TOO_FAR_AHEAD = "too_far_ahead"
    OVER_CAPACITY = "over_capacity"
    IN_BLACKOUT = "in_blackout"
    ROOM_INACTIVE = "room_inactive"
    PAST = "past"
    QUOTA_EXCEEDED = "quota_exceeded"


@dataclass(frozen=True)
class Violation:
    """One broken rule: its code and a message for people that names no other member."""

    code: ViolationCode
    message: str


def check_booking_rules(
    *,
    policy: BookingPolicy,
    time_zone: ZoneInfo,
    starts_at: datetime,
    ends_at: datetime,
    now: datetime,
    attendees: int,
    capacity: int,
    room_active: bool,
) -> list[Violation]:
    """Every rule the booking breaks, in a fixed order; an empty list means it may go ahead."""
    starts_at, ends_at, now = as_utc(starts_at), as_utc(ends_at), as_utc(now)
    return [
        *_timing(policy=policy, starts_at=starts_at, now=now),
        *_grid(policy=policy, time_zone=time_zone, starts_at=starts_at, ends_at=ends_at),
        *_duration(policy=policy, length=ends_at - starts_at),
        *_opening(policy=policy, time_zone=time_zone, starts_at=starts_at, ends_at=ends_at),
        *_room(attendees=attendees, capacity=capacity, room_active=room_active),
    ]


def within_member_cutoff(*, policy: BookingPolicy, starts_at: datetime, now: datetime) -> bool:
    """Whether members may no longer change or cancel a booking (less than the cut-off left)."""
    return as_utc(starts_at) - as_utc(now) < timedelta(minutes=policy.member_cutoff_minutes)


def _timing(*, policy: BookingPolicy, starts_at: datetime, now: datetime) -> list[Violation]:
    """Past, notice and horizon; a start in the past is reported as `past` alone."""
    earliest, latest = start_limits(policy=policy, now=now)
    if starts_at < now:
        return [Violation(ViolationCode.PAST, "The booking would start in the past.")]
    if starts_at < earliest:
        return [
            Violation(
                ViolationCode.TOO_LITTLE_NOTICE,
                "This room must be booked at least "
                f"{_minutes(policy.min_notice_minutes)} before the booking starts.",
            )
        ]
    if starts_at > latest:
        return [
            Violation(
                ViolationCode.TOO_FAR_AHEAD,
                f"This room can be booked at most {policy.max_ahead_days} days ahead.",
            )
        ]
    return []


def _grid(
    *, policy: BookingPolicy, time_zone: ZoneInfo, starts_at: datetime, ends_at: datetime
) -> list[Violation]:
    """Start and end on the room's slot grid."""
    on_grid = all(
        is_slot_boundary(instant=instant, time_zone=time_zone, slot_minutes=policy.slot_minutes)
        for instant in (starts_at, ends_at)
    )
    if on_grid:
        return []
    return [
        Violation(
            ViolationCode.OFF_GRANULARITY,
            f"Bookings of this room start and end on {policy.slot_minutes}-minute steps "
            f"from midnight, {time_zone.key} time.",
        )
    ]


def _duration(*, policy: BookingPolicy, length: timedelta) -> list[Violation]:
    """Minimum and maximum length."""
    if length < timedelta(minutes=policy.min_duration_minutes):
        return [
            Violation(
                ViolationCode.TOO_SHORT,
                f"Bookings of this room last at least {_minutes(policy.min_duration_minutes)}.",
            )
        ]
    if length > timedelta(minutes=policy.max_duration_minutes):
        return [
            Violation(
                ViolationCode.TOO_LONG,
                f"Bookings of this room last at most {_minutes(policy.max_duration_minutes)}.",
            )
        ]
    return []


def _opening(
    *, policy: BookingPolicy, time_zone: ZoneInfo, starts_at: datetime, ends_at: datetime
) -> list[Violation]:
    """The whole booking within one stretch of opening hours."""
    if is_open_throughout(policy=policy, time_zone=time_zone, starts_at=starts_at, ends_at=ends_at):
        return []
    local_start, local_end = (instant.astimezone(time_zone) for instant in (starts_at, ends_at))
    return [
        Violation(
            ViolationCode.OUTSIDE_OPENING_HOURS,
            "The room is not open for the whole booking, "
            f"{local_start:%a %Y-%m-%d %H:%M} to {local_end:%a %Y-%m-%d %H:%M} "
            f"{time_zone.key} time.",
        )
    ]


def _room(*, attendees: int, capacity: int, room_active: bool) -> list[Violation]:
    """Capacity and whether the room takes bookings at all."""
    violations = []
    if attendees > capacity:
        violations.append(
            Violation(
                ViolationCode.OVER_CAPACITY,
                f"The room holds {capacity} people; the booking is for {attendees}.",
            )
        )
    if not room_active:
        violations.append(
            Violation(ViolationCode.ROOM_INACTIVE, "The room is not taking bookings.")
        )
    return violations


def _minutes(count: int) -> str:
    """`1 minute`, `15 minutes`."""
    return f"{count} minute" if count == 1 else f"{count} minutes"
