"""Interval arithmetic of availability: when a room is open, free, and nearest free.

Every interval is half-open `[start, end)` between aware UTC instants; the wall-clock
rules (opening hours, slot grid) are read in the room's zone through `zoneinfo`, so hours
of 08:00-20:00 stay 08:00-20:00 local on both sides of a change of clocks.

Opening times the clocks skip or repeat are read as RFC 5545 (and Python's `fold=0`) read
them: a skipped time takes the offset in force before the change, landing as far after the
jump as it fell into the gap (a span opening at 02:30 on Berlin's spring-forward night
opens at 03:30 CEST), and a repeated time means its first occurrence. A span this leaves
empty is dropped for that day.
"""

from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, date, datetime, time, timedelta
from functools import partial
from itertools import islice, takewhile
from operator import ge, le
from zoneinfo import ZoneInfo

from app.bookings.policy import BookingPolicy, Weekday
from app.bookings.slots import (
    ONE_DAY,
    boundaries_from,
    is_slot_boundary,
    next_boundary,
    previous_boundary,
)

Interval = tuple[datetime, datetime]
"""A half-open `[start, end)` range of aware instants."""

ALTERNATIVES_SEARCH_DAYS = 7
"""How many days before and after a requested start `nearest_free_slots` searches."""
_OPENING_SCAN = timedelta(days=9)
"""Nine elapsed days always hold seven whole local days, also across a change of clocks."""

_WEEKDAYS = tuple(Weekday)


def as_utc(instant: datetime) -> datetime:
    """The instant in UTC, where `timedelta` arithmetic is elapsed time; refuses naive ones."""
    if instant.utcoffset() is None:
        raise ValueError("instants must carry a time zone")
    return instant.astimezone(UTC)


def start_limits(*, policy: BookingPolicy, now: datetime) -> Interval:
    """The earliest start the notice allows and the latest the horizon allows, from `now`."""
    now = as_utc(now)
    return (
        now + timedelta(minutes=policy.min_notice_minutes),
        now + timedelta(days=policy.max_ahead_days),
    )


def open_intervals(
    *, policy: BookingPolicy, time_zone: ZoneInfo, window_start: datetime, window_end: datetime
) -> list[Interval]:
    """The UTC intervals within the window when the room is open; touching spans merge."""
    window_start, window_end = as_utc(window_start), as_utc(window_end)
    # A day either side: where a clock change straddles midnight, a span can cross the date.
    first = window_start.astimezone(time_zone).date() - ONE_DAY
    last = window_end.astimezone(time_zone).date() + ONE_DAY
    spans: list[Interval] = []
    day = first
    while day <= last:
        for span in policy.spans_on(_WEEKDAYS[day.weekday()]):
            opens = _local_instant(day=day, minute=span.opens_minute, time_zone=time_zone)
            closes = _local_instant(day=day, minute=span.closes_minute, time_zone=time_zone)
            start, end = max(opens, window_start), min(closes, window_end)
            if start < end:
                spans.append((start, end))
        day += ONE_DAY
    return _union(spans)


def is_open_throughout(
    *, policy: BookingPolicy, time_zone: ZoneInfo, starts_at: datetime, ends_at: datetime
) -> bool:
    """Whether the room stays open for the whole of `[starts_at, ends_at)`, without a break."""
    starts_at, ends_at = as_utc(starts_at), as_utc(ends_at)
    # Opening hours repeat every week: open through its first nine days, a range spans a
    # whole week of open days, so the room never closes. Looking no further keeps a range
    # thousands of years long as cheap to judge as any other.
    scanned_until = min(ends_at, starts_at + _OPENING_SCAN)
    opened = open_intervals(
        policy=policy, time_zone=time_zone, window_start=starts_at, window_end=scanned_until
    )
    return opened == [(starts_at, scanned_until)]


def list_free_intervals(
    *,
    policy: BookingPolicy,
    time_zone: ZoneInfo,
    window_start: datetime,
    window_end: datetime,
    busy: Sequence[Interval],
) -> list[Interval]:
    """The intervals within the window a new booking may occupy, on slot boundaries.

    `busy` are the blocked ranges (bookings with their buffer, blackouts). A new booking
    blocks its own buffer after it too, so each busy range starts `buffer_minutes` earlier
    here: any booking inside a returned interval passes opening hours, the slot grid and the
    overlap constraint. Pieces shorter than `min_duration_minutes` are left out.
    """
    opened = open_intervals(
        policy=policy, time_zone=time_zone, window_start=window_start, window_end=window_end
    )
    buffer = timedelta(minutes=policy.buffer_minutes)
    blocked = _union([(as_utc(start) - buffer, as_utc(end)) for start, end in busy])
    shortest = timedelta(minutes=policy.min_duration_minutes)
    free: list[Interval] = []
    for start, end in _subtract(opened, blocked):
        first = next_boundary(time_zone=time_zone, slot_minutes=policy.slot_minutes, instant=start)
        last = previous_boundary(time_zone=time_zone, slot_minutes=policy.slot_minutes, instant=end)
        if last - first >= shortest:
            free.append((first, last))
    return free


def alternatives_window(
    *, policy: BookingPolicy, starts_at: datetime, ends_at: datetime
) -> Interval:
    """The range whose blocked ranges `nearest_free_slots` needs to see for this request."""
    reach = timedelta(days=ALTERNATIVES_SEARCH_DAYS)
    buffer = timedelta(minutes=policy.buffer_minutes)
    return as_utc(starts_at) - reach, as_utc(ends_at) + reach + buffer


def nearest_free_slots(
    *,
    policy: BookingPolicy,
    time_zone: ZoneInfo,
    starts_at: datetime,
    ends_at: datetime,
    now: datetime,
    busy: Sequence[Interval],
    count: int,
) -> list[Interval]:
    """Up to `count` free slots as long as the request, nearest to its start first.

    Each slot obeys the policy (opening hours, slot grid, duration, notice and horizon from
    `now`) and stays clear of `busy`, which must cover `alternatives_window`. The search
    looks `ALTERNATIVES_SEARCH_DAYS` either side of the requested start and skips that start
    itself; of two slots equally near, the earlier comes first.
    """
    starts_at, ends_at = as_utc(starts_at), as_utc(ends_at)
    length = ends_at - starts_at
    shortest = timedelta(minutes=policy.min_duration_minutes)
    longest = timedelta(minutes=policy.max_duration_minutes)
    earliest, latest = start_limits(policy=policy, now=now)
    reach = timedelta(days=ALTERNATIVES_SEARCH_DAYS)
    lowest, highest = max(starts_at - reach, earliest), min(starts_at + reach, latest)
    if count < 1 or not shortest <= length <= longest or lowest > highest:
        return []
    free = list_free_intervals(
        policy=policy,
        time_zone=time_zone,
        window_start=lowest,
        window_end=highest + length,
        busy=busy,
    )

    def fits(start: datetime) -> bool:
        end = start + length
        return start != starts_at and is_slot_boundary(
            instant=end, time_zone=time_zone, slot_minutes=policy.slot_minutes
        )

    candidates: list[datetime] = []
    # The window ends `length` after the latest start, so each free end bounds the starts.
    for free_start, free_end in free:
        for side in _grid_around(
            time_zone=time_zone,
            slot_minutes=policy.slot_minutes,
            first=free_start,
            last=free_end - length,
            target=starts_at,
        ):
            candidates.extend(islice(filter(fits, side), count))
    candidates.sort(key=lambda start: (abs(start - starts_at), start))
    return [(start, start + length) for start in candidates[:count]]


def _grid_around(
    *, time_zone: ZoneInfo, slot_minutes: int, first: datetime, last: datetime, target: datetime
) -> tuple[Iterator[datetime], Iterator[datetime]]:
    """The boundaries in `[first, last]` up to `target` (latest first) and from it on."""
    grid = partial(boundaries_from, time_zone=time_zone, slot_minutes=slot_minutes)
    before = takewhile(partial(le, first), grid(instant=min(target, last), backwards=True))
    after = takewhile(partial(ge, last), grid(instant=max(target, first)))
    return before, after


def _local_instant(*, day: date, minute: int, time_zone: ZoneInfo) -> datetime:
    """The instant the room's clock shows `minute` minutes after midnight of `day` (fold 0)."""
    wall = datetime.combine(day, time()) + timedelta(minutes=minute)
    return wall.replace(tzinfo=time_zone).astimezone(UTC)


def _union(intervals: Iterable[Interval]) -> list[Interval]:
    """Sorted, non-empty intervals with overlapping or touching ones merged."""
    merged: list[Interval] = []
    for start, end in sorted(interval for interval in intervals if interval[0] < interval[1]):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _subtract(intervals: Sequence[Interval], holes: Sequence[Interval]) -> list[Interval]:
    """The parts of sorted disjoint `intervals` outside sorted disjoint `holes`."""
    remaining: list[Interval] = []
    first_hole = 0
    for start, end in intervals:
        while first_hole < len(holes) and holes[first_hole][1] <= start:
            first_hole += 1
        cursor, index = start, first_hole
        while index < len(holes) and holes[index][0] < end:
            hole_start, hole_end = holes[index]
            if hole_start > cursor:
                remaining.append((cursor, hole_start))
            cursor = max(cursor, hole_end)
            index += 1
        if cursor < end:
            remaining.append((cursor, end))
    return remaining
