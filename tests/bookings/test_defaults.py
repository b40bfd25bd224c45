"""The default policy comes from the `BOOKINGS__` settings, which refuse inconsistent values."""

from datetime import time

import pytest
from pydantic import ValidationError

from app.bookings.policy import OpeningSpan, Weekday
from app.bookings.service import default_policy
from app.core.config import BookingSettings, Settings


def test_the_defaults_open_weekdays_eight_to_eight() -> None:
    policy = default_policy(BookingSettings())

    eight_to_eight = [OpeningSpan(opens=time(8), closes=time(20))]
    weekdays = (Weekday.MON, Weekday.TUE, Weekday.WED, Weekday.THU, Weekday.FRI)
    assert policy.opening_hours == dict.fromkeys(weekdays, eight_to_eight)
    assert policy.spans_on(Weekday.SAT) == policy.spans_on(Weekday.SUN) == []
    assert (policy.slot_minutes, policy.min_duration_minutes, policy.max_duration_minutes) == (
        15,
        15,
        480,
    )
    assert (policy.min_notice_minutes, policy.max_ahead_days, policy.buffer_minutes) == (0, 180, 0)
    assert policy.requires_approval is False
    assert policy.member_cutoff_minutes == 60


def test_the_policy_is_built_once_per_settings_value() -> None:
    assert default_policy(BookingSettings()) is default_policy(BookingSettings())


def test_environment_variables_shape_the_default_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOOKINGS__DEFAULT_OPENS", "07:30")
    monkeypatch.setenv("BOOKINGS__DEFAULT_CLOSES", "00:00")
    monkeypatch.setenv("BOOKINGS__DEFAULT_OPEN_DAYS", '["sat", "sun"]')
    monkeypatch.setenv("BOOKINGS__BUFFER_MINUTES", "10")
    monkeypatch.setenv("BOOKINGS__REQUIRES_APPROVAL", "true")

    policy = default_policy(Settings(_env_file=None).bookings)

    until_midnight = [OpeningSpan(opens=time(7, 30), closes=time(0))]
    assert policy.opening_hours == {Weekday.SAT: until_midnight, Weekday.SUN: until_midnight}
    assert policy.spans_on(Weekday.SAT)[0].closes_minute == 24 * 60
    assert policy.buffer_minutes == 10
    assert policy.requires_approval is True


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"default_open_days": ("mon", "funday")}, "unknown day names .'funday'."),
        ({"default_opens": time(20), "default_closes": time(8)}, "must come before"),
        ({"default_opens": time(8, 0, 30)}, "whole minutes"),
        ({"min_duration_minutes": 90, "max_duration_minutes": 60}, "must not exceed"),
        ({"slot_minutes": 0}, "greater than or equal to 1"),
    ],
)
def test_inconsistent_defaults_are_refused(values: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        BookingSettings.model_validate(values)
