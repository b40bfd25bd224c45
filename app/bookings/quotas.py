"""Members' quotas: how many unended bookings they may hold, and how many hours a week.

Managers and admins have no quota. The limits come from the `BOOKINGS__MEMBER_MAX_…`
settings; 0 switches a limit off. Weeks run Monday 00:00 to Monday 00:00 on the wall
clock of the room being booked, so a week the clocks change is an hour shorter or longer.
"""

import uuid
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from app.bookings.intervals import as_utc
from app.bookings.quota_repository import QuotaRepository
from app.bookings.rules import Violation, ViolationCode
from app.core.config import BookingSettings

SECONDS_PER_HOUR = 3600


def weeks_touched(
    *, starts_at: datetime, ends_at: datetime, time_zone: ZoneInfo
) -> list[tuple[datetime, datetime]]:
    """The calendar weeks (Monday to Monday, local) that `[starts_at, ends_at)` lies in."""
    weeks: list[tuple[datetime, datetime]] = []
    day = starts_at.astimezone(time_zone).date()
    monday = day - timedelta(days=day.weekday())
    while True:
        start = datetime.combine(monday, time(0), tzinfo=time_zone)
        end = datetime.combine(monday + timedelta(days=7), time(0), tzinfo=time_zone)
        weeks.append((start, end))
        if ends_at <= end:
            return weeks
        monday += timedelta(days=7)


class QuotaGuard:
    """Judges a member's new or moved booking against their quotas, under their own lock."""

    def __init__(self, session: AsyncSession, *, settings: BookingSettings) -> None:
        self.quotas = QuotaRepository(session)
        self.max_unended = settings.member_max_active_future
        self.max_week_hours = settings.member_max_week_hours

    async def violations(
        self,
        *,
        owner_id: uuid.UUID,
        time_zone: ZoneInfo,
        starts_at: datetime,
        ends_at: datetime,
        now: datetime,
        moving: uuid.UUID | None,
        lock: bool,
    ) -> list[Violation]:
        """The quotas the booking would exceed; `moving` names a booking that changes time.

        With `lock`, the member's lock is taken first and held until the transaction ends;
        with both limits off nothing is locked or counted.
        """
        if not (self.max_unended or self.max_week_hours):
            return []
        if lock:
            # Two requests of one member could each count what is committed, find room for
            # one more, and both insert: the lock makes the count and the insert one step.
            await self.quotas.lock_owner(owner_id=owner_id)
        weeks = (
            weeks_touched(starts_at=starts_at, ends_at=ends_at, time_zone=time_zone)
            if self.max_week_hours
            else []
        )
        count_unended = bool(self.max_unended) and moving is None
        if not (weeks or count_unended):
            return []
        held = await self.quotas.held(
            owner_id=owner_id,
            unended_after=now if count_unended else None,
            windows=weeks,
            other_than=moving,
        )
        found = self._unended(held.unended)
        for week, seconds in zip(weeks, held.seconds, strict=True):
            found += self._week(week=week, seconds=seconds, starts_at=starts_at, ends_at=ends_at)
        return found

    def _unended(self, held: int | None) -> list[Violation]:
        if held is None or held < self.max_unended:
            return []
        return [
            Violation(
                ViolationCode.QUOTA_EXCEEDED,
                f"Members may hold at most {self.max_unended} bookings that have not ended; "
                f"you hold {held}.",
            )
        ]

    def _week(
        self,
        *,
        week: tuple[datetime, datetime],
        seconds: float,
        starts_at: datetime,
        ends_at: datetime,
    ) -> list[Violation]:
        week_start, week_end = week
        # In UTC: a difference of two times of one zone would be wall-clock time.
        adding = as_utc(min(ends_at, week_end)) - as_utc(max(starts_at, week_start))
        total = seconds + adding.total_seconds()
        if total <= self.max_week_hours * SECONDS_PER_HOUR:
            return []
        return [
            Violation(
                ViolationCode.QUOTA_EXCEEDED,
                f"Members may book at most {self.max_week_hours} hours in a week; in the week "
                f"from {week_start:%a %Y-%m-%d} ({week_start.tzinfo}) you would hold "
                f"{_hours(total)}.",
            )
        ]


def _hours(seconds: float) -> str:
    """`2 hours`, `2.5 hours`."""
    return f"{seconds / SECONDS_PER_HOUR:g} hours"
