"""Business rules of rooms and blackouts, and the default policy every room starts from."""

from functools import lru_cache

from app.bookings.policy import BookingPolicy, OpeningSpan, Weekday
from app.core.config import BookingSettings


@lru_cache(maxsize=8)
def default_policy(settings: BookingSettings) -> BookingPolicy:
    """The policy of a room that overrides nothing, built once from the `BOOKINGS__` settings."""
    span = OpeningSpan(opens=settings.default_opens, closes=settings.default_closes)
    return BookingPolicy(
        opening_hours={Weekday(day): [span] for day in settings.default_open_days},
        slot_minutes=settings.slot_minutes,
        min_duration_minutes=settings.min_duration_minutes,
        max_duration_minutes=settings.max_duration_minutes,
        min_notice_minutes=settings.min_notice_minutes,
        max_ahead_days=settings.max_ahead_days,
        buffer_minutes=settings.buffer_minutes,
        requires_approval=settings.requires_approval,
        member_cutoff_minutes=settings.member_cutoff_minutes,
    )
