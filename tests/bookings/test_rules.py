"""The booking rules: each violation alone, several at once, their edges, and DST nights."""

from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from app.bookings.policy import BookingPolicy, Weekday
from app.bookings.rules import (
    Violation,
    ViolationCode,
    check_booking_rules,
    within_member_cutoff,
)
from tests.bookings.policies import (
    BERLIN,
    NEW_YORK,
    every_day,
    local,
    make_policy,
    spans,
)

# Monday 2027-03-29, a week day in summer time (CEST, UTC+2).
MONDAY = "2027-03-29"
LEAD = timedelta(days=28)
"""How long before its start a booking is made unless a test says otherwise."""


def verdict(
    starts_at: datetime,
    ends_at: datetime,
    *,
    policy: BookingPolicy | None = None,
    zone: ZoneInfo = BERLIN,
    now: datetime | None = None,
    attendees: int = 4,
    capacity: int = 10,
    room_active: bool = True,
) -> list[Violation]:
    """The violations of one booking, with a valid room and request unless told otherwise."""
    return check_booking_rules(
        policy=policy or make_policy(),
        time_zone=zone,
        starts_at=starts_at,
        ends_at=ends_at,
        now=now or starts_at - LEAD,
        attendees=attendees,
        capacity=capacity,
        room_active=room_active,
    )


def codes(starts_at: datetime, ends_at: datetime, **context: Any) -> list[ViolationCode]:
    """Just the codes of `verdict`."""
    return [violation.code for violation in verdict(starts_at, ends_at, **context)]


def on_monday(start: str, end: str) -> tuple[datetime, datetime]:
    """A booking on the Monday, local Berlin times."""
    return local(f"{MONDAY} {start}", BERLIN), local(f"{MONDAY} {end}", BERLIN)


def test_a_booking_within_every_rule_has_no_violations() -> None:
    assert verdict(*on_monday("09:00", "10:00")) == []


def test_instants_in_any_offset_are_judged_alike() -> None:
    plus_five = timezone(timedelta(hours=5))
    start, end = on_monday("09:00", "10:00")
    assert verdict(start.astimezone(plus_five), end.astimezone(plus_five)) == []
    now = (start - LEAD).astimezone(plus_five)
    assert verdict(start.astimezone(plus_five), end, now=now) == []


# --- each code alone ---------------------------------------------------------------------


def test_a_start_before_now_is_past() -> None:
    start, end = on_monday("09:00", "10:00")
    assert codes(start, end, now=start + timedelta(minutes=1)) == [ViolationCode.PAST]


def test_starting_exactly_now_is_not_past() -> None:
    start, end = on_monday("09:00", "10:00")
    assert codes(start, end, now=start) == []


def test_past_is_reported_alone_even_with_a_notice_period() -> None:
    start, end = on_monday("09:00", "10:00")
    policy = make_policy(min_notice_minutes=120)
    assert codes(start, end, now=start + timedelta(minutes=1), policy=policy) == [
        ViolationCode.PAST
    ]


def test_notice_shorter_than_required_is_too_little_notice() -> None:
    start, end = on_monday("09:00", "10:00")
    policy = make_policy(min_notice_minutes=60)
    assert codes(start, end, policy=policy, now=start - timedelta(minutes=59)) == [
        ViolationCode.TOO_LITTLE_NOTICE
    ]
    assert codes(start, end, policy=policy, now=start - timedelta(minutes=60)) == []


def test_a_start_beyond_the_horizon_is_too_far_ahead() -> None:
    policy = make_policy(max_ahead_days=30)
    # 30 days (of 24 hours) before Monday 09:00 CEST is Saturday 08:00 CET: the clocks
    # changed in between, so the horizon is elapsed time, not the same wall-clock time.
    start, end = on_monday("09:00", "10:00")
    now = start - timedelta(days=30)
    assert now.astimezone(BERLIN).hour == 8
    assert codes(start, end, policy=policy, now=now) == []
    assert codes(start, end, policy=policy, now=now - timedelta(minutes=1)) == [
        ViolationCode.TOO_FAR_AHEAD
    ]


@pytest.mark.parametrize(
    ("start", "end"), [("09:05", "10:05"), ("09:00", "10:10"), ("09:00:30", "10:00")]
)
def test_a_start_or_end_between_slots_is_off_granularity(start: str, end: str) -> None:
    assert codes(*on_monday(start, end), policy=make_policy(min_duration_minutes=1)) == [
        ViolationCode.OFF_GRANULARITY
    ]


def test_slots_are_counted_from_local_midnight() -> None:
    # With 40-minute slots the grid is 00:00, 00:40, ... 08:40, 09:20, 10:00: not whole hours.
    policy = make_policy(slot_minutes=40)
    assert codes(*on_monday("08:40", "10:00"), policy=policy) == []
    assert codes(*on_monday("09:00", "10:00"), policy=policy) == [ViolationCode.OFF_GRANULARITY]


def test_shorter_than_the_minimum_is_too_short() -> None:
    policy = make_policy(min_duration_minutes=30)
    assert codes(*on_monday("09:00", "09:15"), policy=policy) == [ViolationCode.TOO_SHORT]
    assert codes(*on_monday("09:00", "09:30"), policy=policy) == []


def test_longer_than_the_maximum_is_too_long() -> None:
    policy = make_policy(max_duration_minutes=120)
    assert codes(*on_monday("09:00", "11:15"), policy=policy) == [ViolationCode.TOO_LONG]
    assert codes(*on_monday("09:00", "11:00"), policy=policy) == []


@pytest.mark.parametrize(("start", "end"), [("07:45", "08:45"), ("19:00", "20:15")])
def test_beyond_opening_or_closing_is_outside_opening_hours(start: str, end: str) -> None:
    assert codes(*on_monday(start, end)) == [ViolationCode.OUTSIDE_OPENING_HOURS]


@pytest.mark.parametrize(("start", "end"), [("08:00", "09:00"), ("19:00", "20:00")])
def test_exactly_at_opening_or_closing_is_inside(start: str, end: str) -> None:
    assert codes(*on_monday(start, end)) == []


def test_a_closed_day_is_outside_opening_hours() -> None:
    saturday = local("2027-03-27 10:00", BERLIN)
    assert codes(saturday, saturday + timedelta(hours=1)) == [ViolationCode.OUTSIDE_OPENING_HOURS]


def test_a_booking_across_a_break_between_spans_is_outside() -> None:
    policy = make_policy(opening_hours={Weekday.MON: spans(("08:00", "12:00"), ("13:00", "18:00"))})
    assert codes(*on_monday("11:00", "12:00"), policy=policy) == []
    assert codes(*on_monday("11:00", "13:30"), policy=policy) == [
        ViolationCode.OUTSIDE_OPENING_HOURS
    ]


def test_touching_spans_form_one_stretch() -> None:
    policy = make_policy(opening_hours={Weekday.MON: spans(("08:00", "12:00"), ("12:00", "18:00"))})
    assert codes(*on_monday("11:00", "13:00"), policy=policy) == []


def test_more_attendees_than_seats_is_over_capacity() -> None:
    booking = on_monday("09:00", "10:00")
    assert codes(*booking, attendees=11, capacity=10) == [ViolationCode.OVER_CAPACITY]
    assert codes(*booking, attendees=10, capacity=10) == []
    assert codes(*booking, attendees=0, capacity=10) == []


def test_an_inactive_room_takes_no_bookings() -> None:
    assert codes(*on_monday("09:00", "10:00"), room_active=False) == [ViolationCode.ROOM_INACTIVE]


# --- several at once ---------------------------------------------------------------------


def test_every_broken_rule_is_reported_not_just_the_first() -> None:
    policy = make_policy(min_duration_minutes=30)
    start = local("2027-03-27 21:05", BERLIN)  # a closed Saturday, between slots
    found = codes(
        start,
        start + timedelta(minutes=10),
        policy=policy,
        now=start + timedelta(days=1),
        attendees=12,
        capacity=10,
        room_active=False,
    )
    assert found == [
        ViolationCode.PAST,
        ViolationCode.OFF_GRANULARITY,
        ViolationCode.TOO_SHORT,
        ViolationCode.OUTSIDE_OPENING_HOURS,
        ViolationCode.OVER_CAPACITY,
        ViolationCode.ROOM_INACTIVE,
    ]


def test_notice_too_long_and_outside_hours_together() -> None:
    policy = make_policy(min_notice_minutes=24 * 60, max_duration_minutes=60)
    start, end = on_monday("19:00", "20:30")
    assert codes(start, end, policy=policy, now=start - timedelta(hours=2)) == [
        ViolationCode.TOO_LITTLE_NOTICE,
        ViolationCode.TOO_LONG,
        ViolationCode.OUTSIDE_OPENING_HOURS,
    ]


def test_a_reversed_range_is_too_short_and_outside_opening_hours() -> None:
    start, end = on_monday("10:00", "09:00")
    assert codes(start, end) == [ViolationCode.TOO_SHORT, ViolationCode.OUTSIDE_OPENING_HOURS]


# --- messages ----------------------------------------------------------------------------


def test_messages_explain_with_the_room_s_numbers_and_local_time() -> None:
    policy = make_policy(min_notice_minutes=90, slot_minutes=30, max_duration_minutes=60)
    start = local(f"{MONDAY} 19:10", BERLIN)
    messages = {
        violation.code: violation.message
        for violation in verdict(
            start,
            start + timedelta(hours=2),
            policy=policy,
            now=start - timedelta(minutes=30),
            attendees=7,
            capacity=6,
            room_active=False,
        )
    }
    assert messages == {
        ViolationCode.TOO_LITTLE_NOTICE: (
            "This room must be booked at least 90 minutes before the booking starts."
        ),
        ViolationCode.OFF_GRANULARITY: (
            "Bookings of this room start and end on 30-minute steps from midnight, "
            "Europe/Berlin time."
        ),
        ViolationCode.TOO_LONG: "Bookings of this room last at most 60 minutes.",
        ViolationCode.OUTSIDE_OPENING_HOURS: (
            "The room is not open for the whole booking, "
            "Mon 2027-03-29 19:10 to Mon 2027-03-29 21:10 Europe/Berlin time."
        ),
        ViolationCode.OVER_CAPACITY: "The room holds 6 people; the booking is for 7.",
        ViolationCode.ROOM_INACTIVE: "The room is not taking bookings.",
    }


def test_other_messages() -> None:
    start, end = on_monday("09:00", "09:01")
    policy = make_policy(slot_minutes=1, min_duration_minutes=30, max_ahead_days=7)
    assert {v.code: v.message for v in verdict(start, end, policy=policy)} == {
        ViolationCode.TOO_FAR_AHEAD: "This room can be booked at most 7 days ahead.",
        ViolationCode.TOO_SHORT: "Bookings of this room last at least 30 minutes.",
    }
    assert verdict(*on_monday("09:00", "10:00"), now=end) == [
        Violation(ViolationCode.PAST, "The booking would start in the past.")
    ]


def test_codes_are_the_stable_names_of_the_api() -> None:
    assert sorted(ViolationCode) == sorted(
        [
            "overlap",
            "outside_opening_hours",
            "off_granularity",
            "too_short",
            "too_long",
            "too_little_notice",
            "too_far_ahead",
            "over_capacity",
            "in_blackout",
            "room_inactive",
            "past",
            "quota_exceeded",
        ]
    )


def test_a_booking_thousands_of_years_long_is_judged_at_once() -> None:
    start = local(f"{MONDAY} 08:00", BERLIN)
    end = datetime(8999, 12, 31, tzinfo=UTC)
    around_the_clock = make_policy(opening_hours=every_day(("00:00", "00:00")))
    assert codes(start, end, policy=around_the_clock) == [ViolationCode.TOO_LONG]
    assert codes(start, end) == [ViolationCode.TOO_LONG, ViolationCode.OUTSIDE_OPENING_HOURS]


@pytest.mark.parametrize(
    "closed", [Weekday.SUN, Weekday.MON], ids=["closed-after-a-week", "closed-at-the-start"]
)
def test_a_booking_of_weeks_is_outside_when_any_day_closes(closed: Weekday) -> None:
    hours = every_day(("00:00", "00:00")) | {closed: spans(("00:00", "23:45"))}
    start = local(f"{MONDAY} 00:00", BERLIN)
    end = start + timedelta(days=20)
    policy = make_policy(opening_hours=hours, max_duration_minutes=30 * 24 * 60)
    assert codes(start, end, policy=policy) == [ViolationCode.OUTSIDE_OPENING_HOURS]


# --- crossing midnight -------------------------------------------------------------------


def test_a_room_open_around_the_clock_takes_bookings_over_midnight() -> None:
    policy = make_policy(opening_hours=every_day(("00:00", "00:00")))
    start = local(f"{MONDAY} 22:00", BERLIN)
    assert codes(start, start + timedelta(hours=4), policy=policy) == []


def test_midnight_joins_a_day_closing_at_00_00_to_one_opening_at_00_00() -> None:
    policy = make_policy(
        opening_hours={
            Weekday.MON: spans(("18:00", "00:00")),
            Weekday.TUE: spans(("00:00", "02:00")),
        }
    )
    assert codes(*on_monday("22:00", "23:59"), policy=make_policy(slot_minutes=1)) == [
        ViolationCode.OUTSIDE_OPENING_HOURS
    ]
    start = local(f"{MONDAY} 23:00", BERLIN)
    assert codes(start, start + timedelta(hours=3), policy=policy) == []
    assert codes(start, start + timedelta(hours=3, minutes=15), policy=policy) == [
        ViolationCode.OUTSIDE_OPENING_HOURS
    ]


def test_a_booking_over_midnight_is_outside_when_the_room_closes_at_midnight() -> None:
    policy = make_policy(opening_hours=every_day(("08:00", "00:00")))
    start = local(f"{MONDAY} 22:00", BERLIN)
    assert codes(start, start + timedelta(hours=2), policy=policy) == []
    assert codes(start, start + timedelta(hours=3), policy=policy) == [
        ViolationCode.OUTSIDE_OPENING_HOURS
    ]


# --- the nights the clocks change --------------------------------------------------------

AROUND_THE_CLOCK = every_day(("00:00", "00:00"))


@pytest.mark.parametrize(
    ("zone", "evening", "morning", "hours"),
    [
        (BERLIN, "2027-03-27 22:00", "2027-03-28 04:00", 5),
        (BERLIN, "2027-10-30 22:00", "2027-10-31 04:00", 7),
        (NEW_YORK, "2027-03-13 22:00", "2027-03-14 04:00", 5),
        (NEW_YORK, "2027-11-06 22:00", "2027-11-07 04:00", 7),
    ],
)
def test_a_booking_over_the_changed_night_lasts_its_elapsed_time(
    zone: ZoneInfo, evening: str, morning: str, hours: int
) -> None:
    start, end = local(evening, zone), local(morning, zone)
    assert end - start == timedelta(hours=hours)
    fits = make_policy(opening_hours=AROUND_THE_CLOCK, max_duration_minutes=hours * 60)
    assert codes(start, end, zone=zone, policy=fits) == []
    tight = make_policy(opening_hours=AROUND_THE_CLOCK, max_duration_minutes=6 * 60)
    expected = [] if hours < 6 else [ViolationCode.TOO_LONG]
    assert codes(start, end, zone=zone, policy=tight) == expected


@pytest.mark.parametrize(
    ("zone", "day"),
    [
        (BERLIN, "2027-03-28"),
        (BERLIN, "2027-10-31"),
        (NEW_YORK, "2027-03-14"),
        (NEW_YORK, "2027-11-07"),
    ],
)
def test_opening_hours_stay_on_the_wall_clock_on_the_day_of_the_change(
    zone: ZoneInfo, day: str
) -> None:
    policy = make_policy(opening_hours=every_day(("08:00", "20:00")), max_duration_minutes=720)
    opens, closes = local(f"{day} 08:00", zone), local(f"{day} 20:00", zone)
    assert codes(opens, closes, zone=zone, policy=policy) == []
    hour = timedelta(hours=1)
    assert codes(opens - hour, closes - hour, zone=zone, policy=policy) == [
        ViolationCode.OUTSIDE_OPENING_HOURS
    ]
    assert codes(opens + hour, closes + hour, zone=zone, policy=policy) == [
        ViolationCode.OUTSIDE_OPENING_HOURS
    ]


def test_the_slot_grid_follows_the_wall_clock_across_spring_forward() -> None:
    policy = make_policy(opening_hours=AROUND_THE_CLOCK, slot_minutes=45, min_duration_minutes=45)
    # 01:30 CET and 03:00 CEST are both on the 45-minute grid, but only 30 minutes apart.
    start = local("2027-03-28 01:30", BERLIN)
    end = local("2027-03-28 03:00", BERLIN)
    assert end - start == timedelta(minutes=30)
    assert codes(start, end, policy=policy) == [ViolationCode.TOO_SHORT]
    # After the change the grid is where the wall clock says: 08:15 and 09:00 CEST.
    assert (
        codes(*(local(f"2027-03-28 {t}", BERLIN) for t in ("08:15", "09:00")), policy=policy) == []
    )
    # 45 elapsed minutes after 01:30 CET is 03:15 CEST: not on the wall-clock grid.
    assert codes(start, start + timedelta(minutes=45), policy=policy) == [
        ViolationCode.OFF_GRANULARITY
    ]


def test_both_passes_of_the_repeated_hour_are_on_the_grid() -> None:
    policy = make_policy(opening_hours=AROUND_THE_CLOCK)
    first = local("2027-11-07 01:15", NEW_YORK, fold=0)
    second = local("2027-11-07 01:15", NEW_YORK, fold=1)
    assert second - first == timedelta(hours=1)
    assert codes(first, second, zone=NEW_YORK, policy=policy) == []
    assert codes(second, second + timedelta(minutes=30), zone=NEW_YORK, policy=policy) == []


# --- the member cut-off ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("minutes_left", "within"),
    [(61, False), (60, False), (59, True), (0, True), (-30, True)],
)
def test_the_member_cutoff_starts_exactly_the_cutoff_before_the_start(
    minutes_left: int, within: bool
) -> None:
    start = local(f"{MONDAY} 09:00", BERLIN)
    now = start - timedelta(minutes=minutes_left)
    assert within_member_cutoff(policy=make_policy(), starts_at=start, now=now) is within


def test_without_a_cutoff_members_may_change_a_booking_until_it_starts() -> None:
    policy = make_policy(member_cutoff_minutes=0)
    start = local(f"{MONDAY} 09:00", BERLIN)
    assert within_member_cutoff(policy=policy, starts_at=start, now=start) is False
    assert (
        within_member_cutoff(policy=policy, starts_at=start, now=start + timedelta(seconds=1))
        is True
    )
