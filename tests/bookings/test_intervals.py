"""Open, free and nearest free intervals, on ordinary days and across DST weeks."""

from bisect import bisect_right
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta, timezone
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.bookings.intervals import (
    ALTERNATIVES_SEARCH_DAYS,
    Interval,
    alternatives_window,
    as_utc,
    list_free_intervals,
    nearest_free_slots,
    open_intervals,
    start_limits,
)
from app.bookings.policy import BookingPolicy, Weekday
from app.bookings.rules import check_booking_rules
from app.bookings.slots import is_slot_boundary
from tests.bookings.policies import (
    BERLIN,
    NEW_YORK,
    every_day,
    local,
    make_policy,
    spans,
    utc,
    wall,
)

MONDAY = "2027-03-29"
"""A week day in Berlin summer time, the day after the clocks went forward."""


def on_monday(start: str, end: str, zone: ZoneInfo = BERLIN) -> Interval:
    """Local wall-clock times of the Monday as a UTC interval."""
    return local(f"{MONDAY} {start}", zone), local(f"{MONDAY} {end}", zone)


def walls(intervals: Sequence[Interval], zone: ZoneInfo = BERLIN) -> list[tuple[str, str]]:
    """Intervals as local wall-clock readings."""
    return [(wall(start, zone), wall(end, zone)) for start, end in intervals]


def free(
    busy: Sequence[Interval] = (),
    *,
    policy: BookingPolicy | None = None,
    window: Interval | None = None,
    zone: ZoneInfo = BERLIN,
) -> list[Interval]:
    """Free intervals of the Monday (or `window`) under the default policy."""
    window_start, window_end = window or on_monday("00:00", "23:59")
    return list_free_intervals(
        policy=policy or make_policy(),
        time_zone=zone,
        window_start=window_start,
        window_end=window_end,
        busy=busy,
    )


# --- open intervals ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "change", "before", "after"),
    [
        (BERLIN, "2027-03-28", "+01:00", "+02:00"),
        (BERLIN, "2027-10-31", "+02:00", "+01:00"),
        (NEW_YORK, "2027-03-14", "-05:00", "-04:00"),
        (NEW_YORK, "2027-11-07", "-04:00", "-05:00"),
    ],
)
def test_opening_hours_stay_at_local_08_to_20_through_a_dst_week(
    zone: ZoneInfo, change: str, before: str, after: str
) -> None:
    changed = date.fromisoformat(change)
    days = [changed + timedelta(days=offset) for offset in range(-3, 4)]
    opened = open_intervals(
        policy=make_policy(opening_hours=every_day(("08:00", "20:00"))),
        time_zone=zone,
        window_start=local(f"{days[0]} 00:00", zone),
        window_end=local(f"{days[-1]} 23:59", zone),
    )
    offsets = [before if day < changed else after for day in days]
    assert walls(opened, zone) == [
        (f"{day} 08:00{offset}", f"{day} 20:00{offset}")
        for day, offset in zip(days, offsets, strict=True)
    ]
    assert all(end - start == timedelta(hours=12) for start, end in opened)
    assert all(start.tzinfo is UTC and end.tzinfo is UTC for start, end in opened)


def test_the_default_week_is_open_on_work_days_only() -> None:
    opened = open_intervals(
        policy=make_policy(),
        time_zone=BERLIN,
        window_start=local("2027-03-22 00:00", BERLIN),
        window_end=local("2027-04-05 00:00", BERLIN),
    )
    assert [start.astimezone(BERLIN).strftime("%a %d") for start, _ in opened] == [
        "Mon 22", "Tue 23", "Wed 24", "Thu 25", "Fri 26",
        "Mon 29", "Tue 30", "Wed 31", "Thu 01", "Fri 02",
    ]  # fmt: skip
    assert opened[4] == (utc("2027-03-26 07:00"), utc("2027-03-26 19:00"))
    assert opened[5] == (utc("2027-03-29 06:00"), utc("2027-03-29 18:00"))


def test_the_window_clips_the_intervals() -> None:
    opened = open_intervals(
        policy=make_policy(),
        time_zone=BERLIN,
        window_start=local(f"{MONDAY} 10:07", BERLIN),
        window_end=local(f"{MONDAY} 12:00", BERLIN),
    )
    assert walls(opened) == [(f"{MONDAY} 10:07+02:00", f"{MONDAY} 12:00+02:00")]


def test_an_empty_or_reversed_window_has_no_open_intervals() -> None:
    start, end = on_monday("09:00", "10:00")
    assert (
        open_intervals(policy=make_policy(), time_zone=BERLIN, window_start=start, window_end=start)
        == []
    )
    assert (
        open_intervals(policy=make_policy(), time_zone=BERLIN, window_start=end, window_end=start)
        == []
    )


def test_spans_touching_at_midnight_and_noon_merge_into_one() -> None:
    policy = make_policy(
        opening_hours={
            Weekday.MON: spans(("08:00", "12:00"), ("12:00", "00:00")),
            Weekday.TUE: spans(("00:00", "06:00")),
        }
    )
    opened = open_intervals(
        policy=policy,
        time_zone=BERLIN,
        window_start=local("2027-03-28 00:00", BERLIN),
        window_end=local("2027-04-01 00:00", BERLIN),
    )
    assert walls(opened) == [("2027-03-29 08:00+02:00", "2027-03-30 06:00+02:00")]


def test_a_room_open_around_the_clock_is_one_interval_through_the_dst_change() -> None:
    start, end = local("2027-03-27 12:00", BERLIN), local("2027-03-28 12:00", BERLIN)
    assert open_intervals(
        policy=make_policy(opening_hours=every_day(("00:00", "00:00"))),
        time_zone=BERLIN,
        window_start=start,
        window_end=end,
    ) == [(start, end)]
    assert end - start == timedelta(hours=23)


@pytest.mark.parametrize(
    ("opens", "closes", "expected"),
    [
        # A skipped time reads with the offset before the jump (RFC 5545): one hour later.
        ("02:30", "06:00", [("2027-03-28 03:30+02:00", "2027-03-28 06:00+02:00")]),
        ("01:00", "02:30", [("2027-03-28 01:00+01:00", "2027-03-28 03:30+02:00")]),
        ("02:00", "02:30", [("2027-03-28 03:00+02:00", "2027-03-28 03:30+02:00")]),
        # 02:30 is read as 03:30 CEST, after 03:00 CEST: the span is empty that day.
        ("02:30", "03:00", []),
    ],
)
def test_opening_times_the_clocks_skip(
    opens: str, closes: str, expected: list[tuple[str, str]]
) -> None:
    policy = make_policy(opening_hours={Weekday.SUN: spans((opens, closes))})
    opened = open_intervals(
        policy=policy,
        time_zone=BERLIN,
        window_start=local("2027-03-27 00:00", BERLIN),
        window_end=local("2027-03-29 00:00", BERLIN),
    )
    assert walls(opened) == expected


def test_an_opening_time_the_clocks_repeat_means_its_first_occurrence() -> None:
    policy = make_policy(opening_hours={Weekday.SUN: spans(("01:30", "03:00"))})
    opened = open_intervals(
        policy=policy,
        time_zone=NEW_YORK,
        window_start=local("2027-11-06 00:00", NEW_YORK),
        window_end=local("2027-11-08 00:00", NEW_YORK),
    )
    assert walls(opened, NEW_YORK) == [("2027-11-07 01:30-04:00", "2027-11-07 03:00-05:00")]
    assert opened[0][1] - opened[0][0] == timedelta(hours=2, minutes=30)


def test_naive_instants_are_refused() -> None:
    with pytest.raises(ValueError, match="must carry a time zone"):
        open_intervals(
            policy=make_policy(),
            time_zone=BERLIN,
            window_start=datetime(2027, 3, 29, 8),
            window_end=datetime(2027, 3, 29, 9),
        )


def test_start_limits_come_from_notice_and_horizon() -> None:
    now = utc("2027-03-29 06:00")
    policy = make_policy(min_notice_minutes=90, max_ahead_days=2)
    assert start_limits(policy=policy, now=now.astimezone(BERLIN)) == (
        utc("2027-03-29 07:30"),
        utc("2027-03-31 06:00"),
    )


# --- free intervals ----------------------------------------------------------------------


def test_without_bookings_the_open_hours_are_free() -> None:
    assert walls(free()) == [(f"{MONDAY} 08:00+02:00", f"{MONDAY} 20:00+02:00")]


def test_bookings_split_the_day() -> None:
    busy = [on_monday("10:00", "11:00"), on_monday("14:00", "15:30")]
    assert walls(free(busy)) == [
        (f"{MONDAY} 08:00+02:00", f"{MONDAY} 10:00+02:00"),
        (f"{MONDAY} 11:00+02:00", f"{MONDAY} 14:00+02:00"),
        (f"{MONDAY} 15:30+02:00", f"{MONDAY} 20:00+02:00"),
    ]


def test_unsorted_overlapping_busy_ranges_in_any_offset_count_once() -> None:
    plus_three = timezone(timedelta(hours=3))
    start, end = on_monday("10:00", "13:30")
    busy = [
        on_monday("13:00", "15:00"),
        (start.astimezone(plus_three), end.astimezone(plus_three)),
        on_monday("09:00", "10:00"),
    ]
    assert walls(free(busy)) == [
        (f"{MONDAY} 08:00+02:00", f"{MONDAY} 09:00+02:00"),
        (f"{MONDAY} 15:00+02:00", f"{MONDAY} 20:00+02:00"),
    ]


def test_free_intervals_are_trimmed_to_the_slot_grid() -> None:
    policy = make_policy(opening_hours={Weekday.MON: spans(("08:10", "19:50"))})
    busy = [on_monday("10:07", "11:10")]
    assert walls(free(busy, policy=policy)) == [
        (f"{MONDAY} 08:15+02:00", f"{MONDAY} 10:00+02:00"),
        (f"{MONDAY} 11:15+02:00", f"{MONDAY} 19:45+02:00"),
    ]


def test_a_new_booking_needs_room_for_its_own_buffer() -> None:
    # A booking 10:00-11:00 with a 15-minute buffer blocks until 11:15, and a booking that
    # ends at 09:50 would block until 10:05: the last free stretch before it ends at 09:45.
    policy = make_policy(buffer_minutes=15, slot_minutes=5)
    busy = [on_monday("10:00", "11:15")]
    assert walls(free(busy, policy=policy)) == [
        (f"{MONDAY} 08:00+02:00", f"{MONDAY} 09:45+02:00"),
        (f"{MONDAY} 11:15+02:00", f"{MONDAY} 20:00+02:00"),
    ]


def test_the_buffer_may_run_past_closing_time() -> None:
    policy = make_policy(buffer_minutes=30)
    assert walls(free(policy=policy)) == [(f"{MONDAY} 08:00+02:00", f"{MONDAY} 20:00+02:00")]


def test_gaps_shorter_than_the_minimum_duration_are_left_out() -> None:
    busy = [on_monday("08:00", "10:00"), on_monday("10:30", "11:00"), on_monday("11:45", "20:00")]
    assert walls(free(busy, policy=make_policy(min_duration_minutes=45))) == [
        (f"{MONDAY} 11:00+02:00", f"{MONDAY} 11:45+02:00")
    ]
    assert walls(free(busy, policy=make_policy(min_duration_minutes=30))) == [
        (f"{MONDAY} 10:00+02:00", f"{MONDAY} 10:30+02:00"),
        (f"{MONDAY} 11:00+02:00", f"{MONDAY} 11:45+02:00"),
    ]


def test_a_gap_shorter_than_a_slot_after_trimming_is_left_out() -> None:
    busy = [on_monday("08:00", "10:05"), on_monday("10:25", "20:00")]
    assert free(busy) == []


def test_a_fully_booked_day_has_no_free_intervals() -> None:
    assert free([on_monday("06:00", "21:00")]) == []


def test_free_intervals_stay_at_local_hours_through_the_spring_change() -> None:
    busy = [
        (local("2027-03-26 09:00", BERLIN), local("2027-03-26 19:00", BERLIN)),
        (local("2027-03-29 09:00", BERLIN), local("2027-03-29 19:00", BERLIN)),
    ]
    found = free(busy, window=(utc("2027-03-26 00:00"), utc("2027-03-30 00:00")))
    assert walls(found) == [
        ("2027-03-26 08:00+01:00", "2027-03-26 09:00+01:00"),
        ("2027-03-26 19:00+01:00", "2027-03-26 20:00+01:00"),
        ("2027-03-29 08:00+02:00", "2027-03-29 09:00+02:00"),
        ("2027-03-29 19:00+02:00", "2027-03-29 20:00+02:00"),
    ]


def test_free_intervals_over_the_fall_back_night_end_on_wall_clock_boundaries() -> None:
    policy = make_policy(opening_hours=every_day(("00:00", "00:00")), slot_minutes=45)
    busy = [(utc("2027-11-07 05:50"), utc("2027-11-07 06:10"))]
    window = (local("2027-11-07 00:00", NEW_YORK), local("2027-11-07 04:00", NEW_YORK))
    # 05:50Z is 01:50 EDT, 06:10Z is 01:10 EST: the free stretches end at 01:30 EDT and
    # resume at 01:30 EST, both on the 45-minute wall-clock grid (00:45, 01:30, 02:15, ...).
    assert walls(free(busy, policy=policy, window=window, zone=NEW_YORK), NEW_YORK) == [
        ("2027-11-07 00:00-04:00", "2027-11-07 01:30-04:00"),
        ("2027-11-07 01:30-05:00", "2027-11-07 03:45-05:00"),
    ]


# --- nearest free slots ------------------------------------------------------------------

NOW = utc("2027-03-22 06:00")


def nearest(
    starts_at: datetime,
    ends_at: datetime,
    busy: Sequence[Interval],
    *,
    policy: BookingPolicy | None = None,
    now: datetime = NOW,
    count: int = 3,
    zone: ZoneInfo = BERLIN,
) -> list[Interval]:
    """`nearest_free_slots` with the default policy."""
    return nearest_free_slots(
        policy=policy or make_policy(),
        time_zone=zone,
        starts_at=starts_at,
        ends_at=ends_at,
        now=now,
        busy=busy,
        count=count,
    )


def test_the_nearest_slots_before_and_after_alternate_earlier_first_on_ties() -> None:
    found = nearest(*on_monday("10:00", "11:00"), [on_monday("09:30", "11:30")], count=4)
    assert walls(found) == [
        (f"{MONDAY} 08:30+02:00", f"{MONDAY} 09:30+02:00"),
        (f"{MONDAY} 11:30+02:00", f"{MONDAY} 12:30+02:00"),
        (f"{MONDAY} 08:15+02:00", f"{MONDAY} 09:15+02:00"),
        (f"{MONDAY} 11:45+02:00", f"{MONDAY} 12:45+02:00"),
    ]


def test_alternatives_leave_room_for_their_buffer() -> None:
    policy = make_policy(buffer_minutes=15)
    # The booking 09:30-11:30 blocks until 11:45 with its buffer.
    busy = [on_monday("09:30", "11:45")]
    found = nearest(*on_monday("10:00", "11:00"), busy, policy=policy, count=2)
    assert walls(found) == [
        (f"{MONDAY} 08:15+02:00", f"{MONDAY} 09:15+02:00"),
        (f"{MONDAY} 11:45+02:00", f"{MONDAY} 12:45+02:00"),
    ]


def test_the_requested_start_itself_is_never_an_alternative() -> None:
    found = nearest(*on_monday("10:00", "11:00"), [], count=2)
    assert walls(found) == [
        (f"{MONDAY} 09:45+02:00", f"{MONDAY} 10:45+02:00"),
        (f"{MONDAY} 10:15+02:00", f"{MONDAY} 11:15+02:00"),
    ]


def test_an_off_grid_request_gets_the_grid_slots_around_it() -> None:
    found = nearest(*on_monday("10:05", "11:05"), [], count=2)
    assert walls(found) == [
        (f"{MONDAY} 10:00+02:00", f"{MONDAY} 11:00+02:00"),
        (f"{MONDAY} 10:15+02:00", f"{MONDAY} 11:15+02:00"),
    ]


def test_alternatives_obey_notice() -> None:
    policy = make_policy(min_notice_minutes=30)
    now = local(f"{MONDAY} 08:05", BERLIN)
    busy = [on_monday("09:00", "11:00")]
    found = nearest(*on_monday("09:00", "10:00"), busy, policy=policy, now=now, count=2)
    # 08:00 is past, 08:15 and 08:30 are too soon, and 08:45 would run into the booking.
    assert walls(found) == [
        (f"{MONDAY} 11:00+02:00", f"{MONDAY} 12:00+02:00"),
        (f"{MONDAY} 11:15+02:00", f"{MONDAY} 12:15+02:00"),
    ]


def test_alternatives_obey_the_horizon() -> None:
    policy = make_policy(max_ahead_days=7)
    request = on_monday("10:00", "11:00")
    busy = [on_monday("08:00", "10:15")]
    now = request[0] - timedelta(days=7)
    # 10:15 would be nearest but lies beyond the horizon: the nearest is Friday evening.
    found = nearest(*request, busy, policy=policy, now=now, count=1)
    assert walls(found) == [("2027-03-26 19:00+01:00", "2027-03-26 20:00+01:00")]
    assert walls(nearest(*request, busy, count=1)) == [
        (f"{MONDAY} 10:15+02:00", f"{MONDAY} 11:15+02:00")
    ]


def test_when_the_day_is_full_the_search_moves_to_other_days() -> None:
    busy = [(local("2027-03-26 08:00", BERLIN), local("2027-03-29 16:00", BERLIN))]
    found = nearest(*on_monday("09:00", "10:00"), busy, count=2)
    assert walls(found) == [
        (f"{MONDAY} 16:00+02:00", f"{MONDAY} 17:00+02:00"),
        (f"{MONDAY} 16:15+02:00", f"{MONDAY} 17:15+02:00"),
    ]
    # With the whole week booked, Friday before the change (winter time) is nearest.
    week = (local(f"{MONDAY} 08:00", BERLIN), local("2027-04-02 20:00", BERLIN))
    earlier = nearest(*on_monday("09:00", "10:00"), [week], count=2)
    assert walls(earlier) == [
        ("2027-03-26 19:00+01:00", "2027-03-26 20:00+01:00"),
        ("2027-03-26 18:45+01:00", "2027-03-26 19:45+01:00"),
    ]


def test_an_alternative_must_end_on_the_grid_too_over_the_spring_change() -> None:
    policy = make_policy(
        opening_hours=every_day(("00:00", "00:00")), slot_minutes=45, min_duration_minutes=45
    )
    request = (local("2027-03-28 05:15", BERLIN), local("2027-03-28 06:00", BERLIN))
    # Free only from 01:30 CET to 03:45 CEST, 75 minutes: 45 minutes from 01:30 CET end at
    # 03:15 CEST, off the grid, so the one slot that fits starts at 03:00 CEST.
    busy = [
        (request[0] - timedelta(days=8), local("2027-03-28 01:30", BERLIN)),
        (local("2027-03-28 03:45", BERLIN), request[1] + timedelta(days=8)),
    ]
    assert walls(nearest(*request, busy, policy=policy)) == [
        ("2027-03-28 03:00+02:00", "2027-03-28 03:45+02:00")
    ]


def test_lengths_the_policy_forbids_have_no_alternatives() -> None:
    policy = make_policy(min_duration_minutes=30, max_duration_minutes=120)
    assert nearest(*on_monday("10:00", "10:15"), [], policy=policy) == []
    assert nearest(*on_monday("10:00", "12:15"), [], policy=policy) == []
    assert nearest(*on_monday("10:00", "11:00"), [], count=0) == []


def test_the_search_ends_a_week_either_side() -> None:
    mondays_only = make_policy(opening_hours={Weekday.MON: spans(("08:00", "20:00"))})
    request = on_monday("09:00", "10:00")
    found = nearest(
        *request, [on_monday("08:00", "20:00")], policy=mondays_only, now=NOW, count=100
    )
    reach = timedelta(days=ALTERNATIVES_SEARCH_DAYS)
    assert all(abs(start - request[0]) <= reach for start, _ in found)
    # Seven elapsed days reach back to 08:00 CET on the Monday before (the clocks changed in
    # between): 45 starts up to 19:00; forward to 09:00 CEST the Monday after: 5 starts.
    starts = sorted(wall(start, BERLIN) for start, _ in found)
    assert len(starts) == 50
    assert (starts[0], starts[44]) == ("2027-03-22 08:00+01:00", "2027-03-22 19:00+01:00")
    assert (starts[45], starts[-1]) == ("2027-04-05 08:00+02:00", "2027-04-05 09:00+02:00")
    assert wall(found[0][0], BERLIN) == "2027-03-22 19:00+01:00"


def test_the_alternatives_window_covers_the_search_and_the_buffer() -> None:
    policy = make_policy(buffer_minutes=20)
    start, end = on_monday("09:00", "10:00")
    assert alternatives_window(policy=policy, starts_at=start, ends_at=end) == (
        start - timedelta(days=7),
        end + timedelta(days=7, minutes=20),
    )


# --- properties --------------------------------------------------------------------------

ZONES = [BERLIN, NEW_YORK, ZoneInfo("Australia/Lord_Howe"), ZoneInfo("UTC")]
DST_DAYS = ["2027-03-14", "2027-03-28", "2027-10-03", "2027-10-31", "2027-11-07"]
SPAN_CHOICES = [
    [],
    [("08:00", "20:00")],
    [("00:00", "00:00")],
    [("01:30", "03:00")],
    [("02:30", "04:15")],
    [("07:10", "12:00"), ("13:00", "00:00")],
    [("00:00", "02:00"), ("22:00", "00:00")],
]


@st.composite
def policies(draw: st.DrawFn) -> BookingPolicy:
    """Policies with varied grids, buffers and opening hours, including DST-night spans."""
    slot = draw(st.sampled_from([5, 15, 30, 45, 60]))
    hours = {day: spans(*draw(st.sampled_from(SPAN_CHOICES))) for day in Weekday}
    return make_policy(
        opening_hours=hours,
        slot_minutes=slot,
        min_duration_minutes=slot * draw(st.integers(1, 4)),
        max_duration_minutes=24 * 60,
        buffer_minutes=draw(st.sampled_from([0, 10, 15, 30])),
        min_notice_minutes=draw(st.sampled_from([0, 60])),
        max_ahead_days=draw(st.integers(1, 3)),
    )


def instants_near_dst(base: str) -> st.SearchStrategy[datetime]:
    """Instants, to the second, within two days either side of the day of a change."""
    return st.integers(-2 * 86400, 2 * 86400).map(
        lambda seconds: utc(f"{base} 00:00") + timedelta(seconds=seconds)
    )


def busy_ranges(around: datetime) -> st.SearchStrategy[list[Interval]]:
    """Up to eight blocked ranges of up to six hours near `around`."""

    def blocked(offset: int, length: int) -> Interval:
        start = around + timedelta(seconds=offset)
        return start, start + timedelta(seconds=length)

    one = st.builds(blocked, st.integers(-3 * 86400, 3 * 86400), st.integers(60, 6 * 3600))
    return st.lists(one, max_size=8)


def contains(outer: Sequence[Interval], inner: Interval) -> bool:
    """Whether one of the sorted disjoint `outer` intervals holds all of `inner`."""
    index = bisect_right(outer, (inner[0], datetime.max.replace(tzinfo=UTC))) - 1
    return index >= 0 and outer[index][0] <= inner[0] and inner[1] <= outer[index][1]


def clashes(interval: Interval, busy: Sequence[Interval], buffer: timedelta) -> bool:
    """Whether a booking over `interval`, with its buffer, would meet a busy range."""
    start, end = interval
    return any(
        start < blocked_end and blocked_start < end + buffer for blocked_start, blocked_end in busy
    )


@settings(max_examples=150, deadline=None)
@given(
    data=st.data(), policy=policies(), zone=st.sampled_from(ZONES), base=st.sampled_from(DST_DAYS)
)
def test_free_intervals_are_sorted_disjoint_open_free_and_on_the_grid(
    data: st.DataObject, policy: BookingPolicy, zone: ZoneInfo, base: str
) -> None:
    window_start = data.draw(instants_near_dst(base))
    window_end = window_start + timedelta(seconds=data.draw(st.integers(0, 3 * 86400)))
    busy = data.draw(busy_ranges(window_start))
    found = list_free_intervals(
        policy=policy, time_zone=zone, window_start=window_start, window_end=window_end, busy=busy
    )
    opened = open_intervals(
        policy=policy, time_zone=zone, window_start=window_start, window_end=window_end
    )
    buffer = timedelta(minutes=policy.buffer_minutes)
    shortest = timedelta(minutes=policy.min_duration_minutes)
    for (_, end), (start, _) in pairwise(found):
        assert end < start
    for interval in found:
        start, end = interval
        assert window_start <= start < end <= window_end
        assert end - start >= shortest
        assert contains(opened, interval)
        assert not clashes(interval, busy, buffer)
        for instant in interval:
            assert is_slot_boundary(
                instant=instant, time_zone=zone, slot_minutes=policy.slot_minutes
            )


@settings(max_examples=60, deadline=None)
@given(
    data=st.data(), policy=policies(), zone=st.sampled_from(ZONES), base=st.sampled_from(DST_DAYS)
)
def test_free_intervals_miss_no_bookable_slot(
    data: st.DataObject, policy: BookingPolicy, zone: ZoneInfo, base: str
) -> None:
    window_start = data.draw(instants_near_dst(base))
    window_end = window_start + timedelta(hours=data.draw(st.integers(0, 36)))
    busy = data.draw(busy_ranges(window_start))
    found = list_free_intervals(
        policy=policy, time_zone=zone, window_start=window_start, window_end=window_end, busy=busy
    )
    opened = open_intervals(
        policy=policy, time_zone=zone, window_start=window_start, window_end=window_end
    )
    buffer = timedelta(minutes=policy.buffer_minutes)
    length = timedelta(minutes=policy.min_duration_minutes)
    minute = timedelta(minutes=1)
    start = as_utc(window_start).replace(second=0, microsecond=0) + minute
    while start + length <= window_end:
        slot = (start, start + length)
        bookable = (
            all(
                is_slot_boundary(instant=instant, time_zone=zone, slot_minutes=policy.slot_minutes)
                for instant in slot
            )
            and contains(opened, slot)
            and not clashes(slot, busy, buffer)
        )
        assert not bookable or contains(found, slot)
        start += minute


@settings(max_examples=60, deadline=None)
@given(
    data=st.data(), policy=policies(), zone=st.sampled_from(ZONES), base=st.sampled_from(DST_DAYS)
)
def test_nearest_slots_obey_every_rule_and_none_nearer_is_missed(
    data: st.DataObject, policy: BookingPolicy, zone: ZoneInfo, base: str
) -> None:
    starts_at = data.draw(instants_near_dst(base))
    length = timedelta(minutes=policy.slot_minutes * data.draw(st.integers(1, 6)))
    now = starts_at - timedelta(seconds=data.draw(st.integers(-3600, 2 * 86400)))
    busy = data.draw(busy_ranges(starts_at))
    count = data.draw(st.integers(1, 4))
    found = nearest_free_slots(
        policy=policy,
        time_zone=zone,
        starts_at=starts_at,
        ends_at=starts_at + length,
        now=now,
        busy=busy,
        count=count,
    )
    buffer = timedelta(minutes=policy.buffer_minutes)

    def allowed(slot: Interval) -> bool:
        verdict = check_booking_rules(
            policy=policy,
            time_zone=zone,
            starts_at=slot[0],
            ends_at=slot[1],
            now=now,
            attendees=1,
            capacity=1,
            room_active=True,
        )
        return not verdict and not clashes(slot, busy, buffer)

    assert len(found) <= count
    distances = [abs(start - starts_at) for start, _ in found]
    assert distances == sorted(distances)
    for slot in found:
        assert slot[1] - slot[0] == length
        assert slot[0] != starts_at
        assert allowed(slot)
    # Nothing allowed lies nearer than the farthest slot offered (or anywhere in the search
    # when fewer than `count` came back).
    reach = (
        distances[-1] - timedelta(microseconds=1)
        if len(found) == count
        else timedelta(days=ALTERNATIVES_SEARCH_DAYS)
    )
    earliest, latest = start_limits(policy=policy, now=now)
    start = max(starts_at - reach, earliest).replace(second=0, microsecond=0)
    offered = set(found)
    while start <= min(starts_at + reach, latest):
        slot = (start, start + length)
        nearer = start != starts_at and abs(start - starts_at) <= reach
        if nearer and is_slot_boundary(
            instant=start, time_zone=zone, slot_minutes=policy.slot_minutes
        ):
            assert not allowed(slot) or slot in offered
        start += timedelta(minutes=1)
