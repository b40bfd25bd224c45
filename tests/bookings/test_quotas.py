"""Members' quotas: bookings not yet ended, and hours per calendar week in the room's zone."""

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from httpx import AsyncClient

from app.bookings.models import Room
from app.bookings.quotas import weeks_touched
from app.users.schemas import Role
from tests.bookings.conftest import (
    BERLIN,
    BOOKINGS,
    InsertBooking,
    body,
    if_match,
    local,
)
from tests.conftest import AuthHeaders, CreateUser

pytestmark = pytest.mark.usefixtures("fixed_clock")

NEW_YORK = ZoneInfo("America/New_York")


@pytest.fixture
def quotas(booking_settings: Callable[..., None]) -> None:
    """Members may hold 3 unended bookings and 3 hours a week while the test runs."""
    booking_settings(member_max_active_future=3, member_max_week_hours=3)


def codes(answer: dict[str, Any]) -> list[str]:
    """The violation codes of a refusal or verdict."""
    return [violation["code"] for violation in answer["violations"]]


async def book(
    client: AsyncClient, room: Room, headers: dict[str, str], start: datetime, end: datetime
) -> dict[str, Any]:
    """Book and return the answer's body with its status under `_status`."""
    response = await client.post(BOOKINGS, json=body(room, start, end), headers=headers)
    return {**response.json(), "_status": response.status_code}


@pytest.mark.usefixtures("quotas")
async def test_a_member_holds_at_most_the_unended_quota(
    client: AsyncClient,
    room: Room,
    create_user: CreateUser,
    auth_headers: AuthHeaders,
    insert_booking: InsertBooking,
) -> None:
    member = await create_user()
    headers = await auth_headers(member)
    # Ended bookings and cancelled ones do not count.
    await insert_booking(room=room, owner_id=member, start=local(4, 9), end=local(4, 10))
    await insert_booking(
        room=room, owner_id=member, start=local(9, 9), end=local(9, 10), status="cancelled"
    )
    first = await book(client, room, headers, local(8, 9), local(8, 10))
    second = await book(client, room, headers, local(15, 9), local(15, 10))
    third = await book(client, room, headers, local(22, 9), local(22, 10))
    fourth = await book(client, room, headers, local(29, 9), local(29, 10))

    assert [answer["_status"] for answer in (first, second, third)] == [201, 201, 201]
    assert fourth["_status"] == 422
    assert fourth["code"] == "booking-rules-violated"
    assert codes(fourth) == ["quota_exceeded"]
    assert "at most 3 bookings" in fourth["violations"][0]["message"]

    cancel = await client.post(
        f"{BOOKINGS}/{first['id']}/cancel",
        json={"reason": "Not needed"},
        headers=if_match(headers, 1),
    )
    assert cancel.status_code == 200
    again = await book(client, room, headers, local(29, 9), local(29, 10))
    assert again["_status"] == 201


@pytest.mark.usefixtures("quotas")
async def test_a_member_books_at_most_the_weekly_hours_in_a_calendar_week(
    client: AsyncClient, room: Room, member_headers: dict[str, str]
) -> None:
    two_hours = await book(client, room, member_headers, local(8, 9), local(8, 11))
    one_more = await book(client, room, member_headers, local(11, 14), local(11, 15))
    too_many = await book(client, room, member_headers, local(9, 9), local(9, 9, 15))
    next_week = await book(client, room, member_headers, local(14, 9), local(14, 10))

    assert (two_hours["_status"], one_more["_status"], next_week["_status"]) == (201, 201, 201)
    assert too_many["_status"] == 422
    assert codes(too_many) == ["quota_exceeded"]
    assert "from Mon 2030-01-07 (Europe/Berlin)" in too_many["violations"][0]["message"]
    assert "3.25 hours" in too_many["violations"][0]["message"]


@pytest.mark.usefixtures("quotas")
async def test_a_move_is_judged_without_its_own_old_time(
    client: AsyncClient, room: Room, member_headers: dict[str, str]
) -> None:
    held = await book(client, room, member_headers, local(8, 9), local(8, 11))
    other = await book(client, room, member_headers, local(9, 9), local(9, 10))
    # Within the week: the two hours move, they are not counted twice.
    moved = await client.patch(
        f"{BOOKINGS}/{held['id']}",
        json={"starts_at": local(10, 9).isoformat(), "ends_at": local(10, 11).isoformat()},
        headers=if_match(member_headers, 1),
    )
    longer = await client.patch(
        f"{BOOKINGS}/{other['id']}",
        json={"ends_at": local(9, 11).isoformat()},
        headers=if_match(member_headers, 1),
    )

    assert moved.status_code == 200, moved.text
    assert longer.status_code == 422
    assert codes(longer.json()) == ["quota_exceeded"]


@pytest.mark.usefixtures("quotas")
async def test_check_reports_the_quota_and_managers_have_none(
    client: AsyncClient,
    room: Room,
    create_user: CreateUser,
    auth_headers: AuthHeaders,
    member_headers: dict[str, str],
) -> None:
    await book(client, room, member_headers, local(8, 9), local(8, 12))
    verdict = await client.post(
        f"{BOOKINGS}/check", json=body(room, local(9, 9), local(9, 10)), headers=member_headers
    )
    manager = await auth_headers(await create_user(role=Role.MANAGER))
    managed = [
        await book(client, room, manager, local(day, 9), local(day, 13)) for day in (14, 15, 16)
    ]

    assert verdict.status_code == 200
    assert verdict.json()["ok"] is False
    assert codes(verdict.json()) == ["quota_exceeded"]
    assert [answer["_status"] for answer in managed] == [201, 201, 201]


def test_weeks_run_monday_to_monday_on_the_rooms_wall_clock() -> None:
    # Sunday 22:00 in New York is Monday 03:00 UTC, still the week that began on the 7th there.
    sunday_night = datetime(2030, 1, 13, 22, 0, tzinfo=NEW_YORK)
    weeks = weeks_touched(
        starts_at=sunday_night,
        ends_at=datetime(2030, 1, 13, 23, 0, tzinfo=NEW_YORK),
        time_zone=NEW_YORK,
    )
    assert weeks == [
        (datetime(2030, 1, 7, tzinfo=NEW_YORK), datetime(2030, 1, 14, tzinfo=NEW_YORK))
    ]
    # Across midnight into Monday: both weeks are touched.
    spanning = weeks_touched(
        starts_at=sunday_night,
        ends_at=datetime(2030, 1, 14, 1, 0, tzinfo=NEW_YORK),
        time_zone=NEW_YORK,
    )
    assert [start.day for start, _ in spanning] == [7, 14]


def test_the_week_the_clocks_change_is_an_hour_shorter() -> None:
    [(start, end)] = weeks_touched(
        starts_at=datetime(2030, 3, 27, 9, tzinfo=BERLIN),
        ends_at=datetime(2030, 3, 27, 10, tzinfo=BERLIN),
        time_zone=BERLIN,
    )
    assert (start.date().isoformat(), end.date().isoformat()) == ("2030-03-25", "2030-04-01")
    assert (end.astimezone(UTC) - start.astimezone(UTC)).total_seconds() == (7 * 24 - 1) * 3600
