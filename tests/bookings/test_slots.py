"""The slot grid on the wall clock, on ordinary days and the days the clocks change."""

from datetime import UTC, datetime, timedelta
from itertools import islice, pairwise, takewhile
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.bookings.slots import (
    boundaries_from,
    is_slot_boundary,
    next_boundary,
    previous_boundary,
)
from tests.bookings.policies import BERLIN, NEW_YORK, local, utc, wall

LORD_HOWE = ZoneInfo("Australia/Lord_Howe")
"""Moves its clocks by 30 minutes: the grid must still follow the wall clock."""
KOLKATA = ZoneInfo("Asia/Kolkata")
"""UTC+05:30 all year: whole hours locally are half hours in UTC."""


def slot_boundaries(
    *, time_zone: ZoneInfo, slot_minutes: int, start: datetime, end: datetime
) -> list[datetime]:
    """Every boundary in `[start, end]`, earliest first."""
    grid = boundaries_from(time_zone=time_zone, slot_minutes=slot_minutes, instant=start)
    return list(takewhile(lambda instant: instant <= end, grid))


def walls(zone: ZoneInfo, start: datetime, end: datetime, slot_minutes: int) -> list[str]:
    """The grid between two instants, as local wall-clock readings."""
    grid = slot_boundaries(time_zone=zone, slot_minutes=slot_minutes, start=start, end=end)
    return [wall(instant, zone) for instant in grid]


def test_an_ordinary_day_has_a_boundary_every_slot_from_midnight() -> None:
    grid = slot_boundaries(
        time_zone=BERLIN,
        slot_minutes=15,
        start=local("2027-03-29 00:00", BERLIN),
        end=local("2027-03-30 00:00", BERLIN),
    )
    assert len(grid) == 24 * 4 + 1
    assert all(later - earlier == timedelta(minutes=15) for earlier, later in pairwise(grid))
    assert all(instant.tzinfo is UTC for instant in grid)


def test_the_bounds_are_included_when_on_the_grid() -> None:
    start, end = utc("2027-03-29 06:00"), utc("2027-03-29 06:30")
    assert slot_boundaries(time_zone=BERLIN, slot_minutes=15, start=start, end=end) == [
        start,
        start + timedelta(minutes=15),
        end,
    ]


def test_a_slot_that_does_not_divide_the_day_restarts_at_midnight() -> None:
    assert walls(
        BERLIN, local("2027-03-29 22:00", BERLIN), local("2027-03-30 01:00", BERLIN), 50
    ) == [
        "2027-03-29 22:30+02:00",
        "2027-03-29 23:20+02:00",
        "2027-03-30 00:00+02:00",
        "2027-03-30 00:50+02:00",
    ]


def test_spring_forward_skips_the_missing_hour() -> None:
    assert walls(BERLIN, utc("2027-03-28 00:30"), utc("2027-03-28 01:30"), 15) == [
        "2027-03-28 01:30+01:00",
        "2027-03-28 01:45+01:00",
        "2027-03-28 03:00+02:00",
        "2027-03-28 03:15+02:00",
        "2027-03-28 03:30+02:00",
    ]


def test_fall_back_puts_the_repeated_hour_on_the_grid_twice() -> None:
    assert walls(NEW_YORK, utc("2027-11-07 05:30"), utc("2027-11-07 06:30"), 30) == [
        "2027-11-07 01:30-04:00",
        "2027-11-07 01:00-05:00",
        "2027-11-07 01:30-05:00",
    ]


def test_a_45_minute_grid_keeps_its_wall_clock_times_across_spring_forward() -> None:
    assert walls(BERLIN, utc("2027-03-28 00:00"), utc("2027-03-28 02:00"), 45) == [
        "2027-03-28 01:30+01:00",
        "2027-03-28 03:00+02:00",
        "2027-03-28 03:45+02:00",
    ]


def test_a_half_hour_clock_change_still_follows_the_wall_clock() -> None:
    # Lord Howe Island moves from +10:30 to +11:00 at 02:00 on 2027-10-03: 02:00 never shows,
    # and 01:00 to 03:00 is an hour and a half.
    assert walls(LORD_HOWE, utc("2027-10-02 14:00"), utc("2027-10-02 16:00"), 60) == [
        "2027-10-03 01:00+10:30",
        "2027-10-03 03:00+11:00",
    ]


@pytest.mark.parametrize(
    ("instant", "zone", "slot", "expected"),
    [
        (utc("2027-03-29 06:15"), BERLIN, 15, True),
        (utc("2027-03-29 06:15"), BERLIN, 30, False),
        (utc("2027-03-29 06:15:01"), BERLIN, 15, False),
        (utc("2027-03-29 06:15:00.000001"), BERLIN, 15, False),
        (utc("2027-03-29 03:30"), KOLKATA, 60, True),
        (utc("2027-03-29 03:00"), KOLKATA, 60, False),
    ],
)
def test_one_instant_on_or_off_the_grid(
    instant: datetime, zone: ZoneInfo, slot: int, expected: bool
) -> None:
    assert is_slot_boundary(instant=instant, time_zone=zone, slot_minutes=slot) is expected


@given(
    zone=st.sampled_from([BERLIN, NEW_YORK, LORD_HOWE, KOLKATA]),
    slot=st.sampled_from([5, 15, 40, 45, 60, 90, 1440]),
    day=st.sampled_from(["2027-03-14", "2027-03-28", "2027-10-03", "2027-10-31", "2027-11-07"]),
    offset=st.integers(min_value=-36 * 60, max_value=36 * 60),
)
def test_the_grid_holds_exactly_the_instants_on_it(
    zone: ZoneInfo, slot: int, day: str, offset: int
) -> None:
    start = utc(f"{day} 00:00") + timedelta(minutes=offset)
    end = start + timedelta(hours=6)
    grid = slot_boundaries(time_zone=zone, slot_minutes=slot, start=start, end=end)
    assert grid == sorted(set(grid))
    backwards = boundaries_from(time_zone=zone, slot_minutes=slot, instant=end, backwards=True)
    assert list(takewhile(lambda instant: instant >= start, backwards)) == grid[::-1]
    minutes = [start + timedelta(minutes=step) for step in range(6 * 60 + 1)]
    assert grid == [
        instant
        for instant in minutes
        if is_slot_boundary(instant=instant, time_zone=zone, slot_minutes=slot)
    ]


def test_walking_backwards_crosses_days_and_the_repeated_hour() -> None:
    walk = boundaries_from(
        time_zone=BERLIN, slot_minutes=30, instant=utc("2027-10-31 01:10"), backwards=True
    )
    assert [wall(instant, BERLIN) for instant in islice(walk, 4)] == [
        "2027-10-31 02:00+01:00",
        "2027-10-31 02:30+02:00",
        "2027-10-31 02:00+02:00",
        "2027-10-31 01:30+02:00",
    ]
    late = boundaries_from(
        time_zone=BERLIN, slot_minutes=60, instant=utc("2027-03-29 22:30"), backwards=True
    )
    assert [wall(instant, BERLIN) for instant in islice(late, 2)] == [
        "2027-03-30 00:00+02:00",
        "2027-03-29 23:00+02:00",
    ]


@pytest.mark.parametrize(
    ("instant", "before", "after"),
    [
        (utc("2027-03-29 06:07"), "2027-03-29 08:00+02:00", "2027-03-29 08:15+02:00"),
        (utc("2027-03-29 06:15"), "2027-03-29 08:15+02:00", "2027-03-29 08:15+02:00"),
        (utc("2027-03-29 21:59"), "2027-03-29 23:45+02:00", "2027-03-30 00:00+02:00"),
        (utc("2027-03-28 00:50"), "2027-03-28 01:45+01:00", "2027-03-28 03:00+02:00"),
    ],
)
def test_the_boundaries_around_an_instant(instant: datetime, before: str, after: str) -> None:
    earlier = previous_boundary(time_zone=BERLIN, slot_minutes=15, instant=instant)
    later = next_boundary(time_zone=BERLIN, slot_minutes=15, instant=instant)
    assert (wall(earlier, BERLIN), wall(later, BERLIN)) == (before, after)
