"""The policy model: spans, weekdays, consistency, and merging a room's overrides."""

from datetime import UTC, datetime, time

import pytest
from pydantic import ValidationError

from app.bookings.intervals import start_limits
from app.bookings.policy import (
    MAX_AHEAD_DAYS,
    MAX_POLICY_MINUTES,
    BookingPolicy,
    OpeningSpan,
    PolicyOverrides,
    Weekday,
    effective_policy,
)
from app.bookings.rules import within_member_cutoff
from tests.bookings.policies import WORKDAYS, make_policy, spans


def test_weekdays_number_like_date_weekday() -> None:
    assert [day.iso_index for day in Weekday] == list(range(7))
    assert Weekday("sun").iso_index == 6


def test_closing_at_midnight_means_the_end_of_the_day() -> None:
    whole_day = OpeningSpan(opens=time(0), closes=time(0))
    evening = OpeningSpan(opens=time(18), closes=time(0))
    assert (whole_day.opens_minute, whole_day.closes_minute) == (0, 1440)
    assert (evening.opens_minute, evening.closes_minute) == (18 * 60, 1440)


def test_a_span_closing_at_one_minute_to_midnight_ends_there() -> None:
    assert OpeningSpan(opens=time(8), closes=time(23, 59)).closes_minute == 1439


@pytest.mark.parametrize(
    ("opens", "closes"),
    [(time(20), time(8)), (time(9), time(9)), (time(0, 1), time(0, 1))],
)
def test_a_span_must_open_before_it_closes(opens: time, closes: time) -> None:
    with pytest.raises(ValidationError, match="open before it closes"):
        OpeningSpan(opens=opens, closes=closes)


@pytest.mark.parametrize(
    ("opens", "closes"),
    [
        (time(8, 0, 30), time(20)),
        (time(8), time(20, 0, 0, 1)),
        (time(8, tzinfo=UTC), time(20)),
    ],
)
def test_spans_are_whole_minutes_without_a_zone(opens: time, closes: time) -> None:
    with pytest.raises(ValidationError, match="whole minutes without a time zone"):
        OpeningSpan(opens=opens, closes=closes)


def test_overlapping_spans_of_one_day_are_refused() -> None:
    with pytest.raises(ValidationError, match="opening spans of tue overlap"):
        make_policy(opening_hours={Weekday.TUE: spans(("08:00", "12:30"), ("12:00", "18:00"))})


def test_touching_spans_are_accepted_and_listed_in_order() -> None:
    policy = make_policy(opening_hours={Weekday.WED: spans(("13:00", "00:00"), ("08:00", "13:00"))})
    assert [(s.opens, s.closes) for s in policy.spans_on(Weekday.WED)] == [
        (time(8), time(13)),
        (time(13), time(0)),
    ]


def test_a_missing_day_is_closed() -> None:
    policy = make_policy()
    assert policy.spans_on(Weekday.SAT) == []
    assert all(policy.spans_on(day) for day in WORKDAYS)


def test_minimum_duration_may_not_exceed_the_maximum() -> None:
    with pytest.raises(ValidationError, match="min_duration_minutes must not exceed"):
        make_policy(min_duration_minutes=90, max_duration_minutes=60)
    assert make_policy(min_duration_minutes=60, max_duration_minutes=60).max_duration_minutes == 60


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("slot_minutes", 0),
        ("slot_minutes", 1441),
        ("buffer_minutes", -1),
        ("buffer_minutes", 1441),
        ("max_ahead_days", 0),
        ("max_ahead_days", MAX_AHEAD_DAYS + 1),
        ("min_notice_minutes", MAX_POLICY_MINUTES + 1),
        ("member_cutoff_minutes", MAX_POLICY_MINUTES + 1),
        ("max_duration_minutes", MAX_POLICY_MINUTES + 1),
    ],
)
def test_out_of_range_numbers_are_refused(field: str, value: int) -> None:
    with pytest.raises(ValidationError, match=field):
        make_policy(**{field: value})
    with pytest.raises(ValidationError, match=field):
        PolicyOverrides.model_validate({field: value})


def test_the_largest_numbers_still_give_computable_instants() -> None:
    policy = make_policy(
        max_ahead_days=MAX_AHEAD_DAYS,
        min_notice_minutes=MAX_POLICY_MINUTES,
        member_cutoff_minutes=MAX_POLICY_MINUTES,
        max_duration_minutes=MAX_POLICY_MINUTES,
    )
    now = datetime(8999, 1, 1, tzinfo=UTC)
    earliest, latest = start_limits(policy=policy, now=now)
    assert earliest < latest < datetime.max.replace(tzinfo=UTC)
    assert within_member_cutoff(policy=policy, starts_at=latest, now=now) is False


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(ValidationError, match="extra_forbidden"):
        PolicyOverrides.model_validate({"slots": 10})


def test_no_overrides_keep_every_default() -> None:
    defaults = make_policy()
    assert effective_policy(defaults, PolicyOverrides()) == defaults


def test_overrides_replace_only_their_fields() -> None:
    defaults = make_policy()
    merged = effective_policy(
        defaults,
        PolicyOverrides(
            slot_minutes=30,
            requires_approval=True,
            opening_hours={Weekday.SAT: spans(("10:00", "14:00"))},
        ),
    )
    assert merged.slot_minutes == 30
    assert merged.requires_approval is True
    # Opening hours are replaced as a whole: the room is now open on Saturdays only.
    assert list(merged.opening_hours) == [Weekday.SAT]
    unchanged = merged.model_dump(exclude={"slot_minutes", "requires_approval", "opening_hours"})
    assert unchanged == defaults.model_dump(
        exclude={"slot_minutes", "requires_approval", "opening_hours"}
    )


def test_an_override_of_zero_is_kept_not_taken_for_missing() -> None:
    merged = effective_policy(make_policy(buffer_minutes=10), PolicyOverrides(buffer_minutes=0))
    assert merged.buffer_minutes == 0


def test_overrides_inconsistent_with_the_defaults_are_a_value_error() -> None:
    with pytest.raises(ValueError, match="min_duration_minutes must not exceed"):
        effective_policy(
            make_policy(max_duration_minutes=120), PolicyOverrides(min_duration_minutes=180)
        )


def test_overrides_round_trip_through_json_as_stored() -> None:
    overrides = PolicyOverrides(
        opening_hours={Weekday.MON: spans(("07:30", "00:00"))}, max_ahead_days=30
    )
    stored = overrides.model_dump(mode="json", exclude_none=True)
    assert stored == {
        "opening_hours": {"mon": [{"opens": "07:30:00", "closes": "00:00:00"}]},
        "max_ahead_days": 30,
    }
    assert PolicyOverrides.model_validate(stored) == overrides
    policy = effective_policy(make_policy(), PolicyOverrides.model_validate(stored))
    assert isinstance(policy, BookingPolicy)
    assert policy.spans_on(Weekday.MON)[0].closes_minute == 1440
