"""The slot grid: the instants a booking may start or end at, read on the room's wall clock.

A slot boundary is an instant whose local time in the room's zone is a whole multiple of
`slot_minutes` after local midnight (seconds zero). The grid follows the wall clock, not
elapsed time: a room with 45-minute slots offers 08:15 on every day, also on the days the
clocks change, and each day's grid starts afresh at local midnight. A wall-clock time
skipped by a spring-forward has no boundary; one repeated by a fall-back has two.

Walking the grid day by day assumes local dates never run backwards, which holds for
every zone's rules since 2011 (St John's last fell back across midnight in 2010).
"""

from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from app.bookings.policy import MINUTES_PER_DAY

ONE_DAY = timedelta(days=1)
_EPSILON = timedelta(microseconds=1)


def is_slot_boundary(*, instant: datetime, time_zone: ZoneInfo, slot_minutes: int) -> bool:
    """Whether the instant's local time is a whole multiple of `slot_minutes` after midnight."""
    local = instant.astimezone(time_zone)
    if local.second or local.microsecond:
        return False
    return (local.hour * 60 + local.minute) % slot_minutes == 0


def boundaries_from(
    *, time_zone: ZoneInfo, slot_minutes: int, instant: datetime, backwards: bool = False
) -> Iterator[datetime]:
    """The boundaries at or after `instant` (at or before, `backwards`), nearest first, in UTC.

    Endless: the caller decides where to stop.
    """
    day = instant.astimezone(time_zone).date()
    while True:
        grid = _day_grid(time_zone, day, slot_minutes)
        yield from grid.at_or_before(instant) if backwards else grid.at_or_after(instant)
        day += -ONE_DAY if backwards else ONE_DAY


def next_boundary(*, time_zone: ZoneInfo, slot_minutes: int, instant: datetime) -> datetime:
    """The first boundary at or after `instant`."""
    return next(boundaries_from(time_zone=time_zone, slot_minutes=slot_minutes, instant=instant))


def previous_boundary(*, time_zone: ZoneInfo, slot_minutes: int, instant: datetime) -> datetime:
    """The last boundary at or before `instant`."""
    return next(
        boundaries_from(
            time_zone=time_zone, slot_minutes=slot_minutes, instant=instant, backwards=True
        )
    )


@dataclass(frozen=True, slots=True)
class _DayGrid:
    """The boundaries of one local date: a plain step from midnight, or listed one by one."""

    midnight: datetime
    step: timedelta
    count: int
    listed: tuple[datetime, ...] | None
    """The day's boundaries when its clocks change; `None` when they follow the step."""

    def at_or_after(self, instant: datetime) -> Iterator[datetime]:
        """This day's boundaries from `instant` on, earliest first."""
        if self.listed is not None:
            yield from self.listed[bisect_left(self.listed, instant) :]
            return
        first = max(0, -((self.midnight - instant) // self.step))
        for index in range(first, self.count):
            yield self.midnight + index * self.step

    def at_or_before(self, instant: datetime) -> Iterator[datetime]:
        """This day's boundaries up to `instant`, latest first."""
        if self.listed is not None:
            yield from reversed(self.listed[: bisect_right(self.listed, instant)])
            return
        last = min(self.count - 1, (instant - self.midnight) // self.step)
        for index in range(last, -1, -1):
            yield self.midnight + index * self.step


@lru_cache(maxsize=4096)
def _day_grid(time_zone: ZoneInfo, day: date, slot_minutes: int) -> _DayGrid:
    """The grid of one local date, cached: rooms share a few zones and look at the same days."""
    step = timedelta(minutes=slot_minutes)
    count = -(-MINUTES_PER_DAY // slot_minutes)
    midnight = datetime.combine(day, time()).replace(tzinfo=time_zone).astimezone(UTC)
    next_midnight = (
        datetime.combine(day + ONE_DAY, time()).replace(tzinfo=time_zone).astimezone(UTC)
    )
    steady = (
        next_midnight - midnight == ONE_DAY
        and midnight.astimezone(time_zone).time() == time()
        and midnight.astimezone(time_zone).utcoffset()
        == (next_midnight - _EPSILON).astimezone(time_zone).utcoffset()
    )
    if steady:
        # No clock change this day: wall-clock steps are elapsed-time steps from midnight.
        return _DayGrid(midnight=midnight, step=step, count=count, listed=None)
    walls = (datetime.combine(day, time()) + index * step for index in range(count))
    listed = sorted({instant for wall in walls for instant in _instants_of(wall, time_zone)})
    return _DayGrid(midnight=midnight, step=step, count=count, listed=tuple(listed))


def _instants_of(wall: datetime, time_zone: ZoneInfo) -> set[datetime]:
    """The UTC instants showing this naive wall-clock time: none in a gap, two in a repeat."""
    candidates = (wall.replace(tzinfo=time_zone, fold=fold).astimezone(UTC) for fold in (0, 1))
    return {
        instant
        for instant in candidates
        if instant.astimezone(time_zone).replace(tzinfo=None) == wall
    }
