"""Availability over HTTP: a room's free and busy time, and the rooms free for a time.

Instants go in with any offset and come back in UTC with `Z`; opening hours stay on the
room's wall clock through the changes to and from summer time.
"""

import uuid
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from httpx import AsyncClient

from app.bookings.models import Room
from app.core.config import Settings
from tests.bookings.conftest import CreateRoom, InsertBooking
from tests.bookings.policies import BERLIN, NEW_YORK, local
from tests.conftest import AuthHeaders, CreateUser

ROOMS = "/api/v1/rooms"
MONDAY = "2027-03-29"
"""A work day in Berlin summer time (UTC+2)."""


def at(clock: str) -> datetime:
    """The instant of a wall-clock time on `MONDAY` in Berlin."""
    return local(f"{MONDAY} {clock}", BERLIN)


def z(instant: datetime) -> str:
    """An instant as the API answers it: `2027-03-29T06:00:00Z`."""
    return instant.strftime("%Y-%m-%dT%H:%M:%SZ")


def window(start: datetime, end: datetime) -> dict[str, str]:
    """The query of a room's availability."""
    return {"from": start.isoformat(), "to": end.isoformat()}


async def availability(
    client: AsyncClient, room: Room, headers: dict[str, str], start: datetime, end: datetime
) -> dict[str, Any]:
    """A room's availability in the window, asserted to be a 200."""
    response = await client.get(
        f"{ROOMS}/{room.id}/availability", params=window(start, end), headers=headers
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def intervals(items: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """`(starts_at, ends_at)` of answered intervals."""
    return [(item["starts_at"], item["ends_at"]) for item in items]


@pytest.mark.parametrize(
    ("zone", "day_of_change", "before", "after"),
    [
        (BERLIN, "2027-03-28", timedelta(hours=1), timedelta(hours=2)),
        (BERLIN, "2027-10-31", timedelta(hours=2), timedelta(hours=1)),
        (NEW_YORK, "2027-03-14", timedelta(hours=-5), timedelta(hours=-4)),
        (NEW_YORK, "2027-11-07", timedelta(hours=-4), timedelta(hours=-5)),
    ],
    ids=["berlin-spring", "berlin-autumn", "new-york-spring", "new-york-autumn"],
)
async def test_a_dst_week_keeps_opening_hours_on_the_wall_clock(
    *,
    client: AsyncClient,
    member_headers: dict[str, str],
    create_room: CreateRoom,
    zone: ZoneInfo,
    day_of_change: str,
    before: timedelta,
    after: timedelta,
) -> None:
    room = await create_room(time_zone=zone.key)
    changed = date.fromisoformat(day_of_change)
    monday_before = changed - timedelta(days=6)
    start = local(f"{monday_before} 00:00", zone)
    result = await availability(client, room, member_headers, start, start + timedelta(days=14))

    # Weekdays 08:00 to 20:00 local: UTC minus the offset of that day.
    expected = []
    for offset in range(14):
        day = monday_before + timedelta(days=offset)
        if day.weekday() < 5:
            utc_offset = before if day < changed else after
            opens = datetime(day.year, day.month, day.day, 8) - utc_offset
            expected.append((z(opens), z(opens + timedelta(hours=12))))
    assert intervals(result["free"]) == expected
    assert result["time_zone"] == zone.key
    assert result["window_start"] == z(start)
    assert result["busy"] == []


async def test_bookings_with_their_buffers_and_blackouts_are_busy_and_not_free(
    *,
    client: AsyncClient,
    create_user: CreateUser,
    auth_headers: AuthHeaders,
    manager_headers: dict[str, str],
    create_room: CreateRoom,
    insert_booking: InsertBooking,
) -> None:
    member = await create_user()
    someone = await create_user()
    room = await create_room(policy={"buffer_minutes": 15})
    await insert_booking(
        room=room,
        owner_id=member,
        start=at("09:00"),
        end=at("10:00"),
        blocked_until=at("10:15"),
        title="Mine",
    )
    await insert_booking(
        room=room,
        owner_id=someone,
        start=at("12:00"),
        end=at("13:00"),
        blocked_until=at("13:15"),
        title="Secret merger talks",
    )
    added = await client.post(
        f"{ROOMS}/{room.id}/blackouts",
        json={"starts_at": z(at("16:00")), "ends_at": z(at("18:00")), "reason": "Painting"},
        headers=manager_headers,
    )
    assert added.status_code == 201, added.text

    response = await client.get(
        f"{ROOMS}/{room.id}/availability",
        params=window(at("00:00"), at("23:45")),
        headers=await auth_headers(member),
    )

    result = response.json()
    assert intervals(result["free"]) == [
        # A booking must leave its own 15-minute buffer before the next one starts.
        (z(at("08:00")), z(at("08:45"))),
        (z(at("10:15")), z(at("11:45"))),
        (z(at("13:15")), z(at("15:45"))),
        (z(at("18:00")), z(at("20:00"))),
    ]
    assert result["busy"] == [
        {
            "starts_at": z(at("09:00")),
            "ends_at": z(at("10:00")),
            "blocked_until": z(at("10:15")),
            "kind": "booking",
            "status": "confirmed",
            "mine": True,
        },
        {
            "starts_at": z(at("12:00")),
            "ends_at": z(at("13:00")),
            "blocked_until": z(at("13:15")),
            "kind": "booking",
            "status": "confirmed",
            "mine": False,
        },
        {
            "starts_at": z(at("16:00")),
            "ends_at": z(at("18:00")),
            "blocked_until": z(at("18:00")),
            "kind": "blackout",
            "status": "confirmed",
            "mine": False,
        },
    ]
    for private in ("Secret", "Mine", "Painting", str(someone)):
        assert private not in response.text


async def test_a_deactivated_room_is_busy_but_never_free(
    client: AsyncClient, member_headers: dict[str, str], create_room: CreateRoom
) -> None:
    room = await create_room(is_active=False)
    start = at("00:00")
    result = await availability(client, room, member_headers, start, start + timedelta(days=1))

    assert result["free"] == []


async def test_the_window_is_capped_by_the_setting(
    client: AsyncClient, member_headers: dict[str, str], room: Room, settings: Settings
) -> None:
    start = at("00:00")
    cap = timedelta(days=settings.bookings.availability_max_days)
    url = f"{ROOMS}/{room.id}/availability"
    longest = await client.get(url, params=window(start, start + cap), headers=member_headers)
    too_long = await client.get(
        url, params=window(start, start + cap + timedelta(minutes=1)), headers=member_headers
    )
    reversed_ = await client.get(url, params=window(start, start), headers=member_headers)
    naive = await client.get(
        url, params={"from": "2027-03-29T00:00:00", "to": z(start)}, headers=member_headers
    )

    assert longest.status_code == 200
    assert too_long.status_code == 422
    assert too_long.json()["errors"] == [
        {
            "field": "to",
            "message": f"Must be at most {cap.days} days after `from`.",
            "type": "window_too_long",
        }
    ]
    assert [error["field"] for error in reversed_.json()["errors"]] == ["to"]
    assert [error["field"] for error in naive.json()["errors"]] == ["from"]


async def test_the_availability_of_an_unknown_room_is_not_found(
    client: AsyncClient, member_headers: dict[str, str]
) -> None:
    start = at("00:00")
    response = await client.get(
        f"{ROOMS}/{uuid.uuid4()}/availability",
        params=window(start, start + timedelta(days=1)),
        headers=member_headers,
    )

    assert (response.status_code, response.json()["code"]) == (404, "room-not-found")


async def _free(client: AsyncClient, headers: dict[str, str], **params: Any) -> dict[str, Any]:
    response = await client.get(f"{ROOMS}/available", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_rooms_free_for_the_whole_time_are_listed_with_their_zone(
    client: AsyncClient,
    member_headers: dict[str, str],
    create_room: CreateRoom,
    insert_booking: InsertBooking,
    owner_id: uuid.UUID,
) -> None:
    taken = await create_room(name="Alpha")
    await create_room(name="Beta", capacity=4, amenities=["projector"])
    await create_room(name="Gamma", capacity=12, amenities=["projector", "video"])
    await create_room(name="Delta", is_active=False)
    await create_room(name="Epsilon", time_zone="America/New_York")
    await insert_booking(room=taken, owner_id=owner_id, start=at("10:45"), end=at("11:15"))
    # 10:00 to 11:00 in Berlin is 04:00 to 05:00 in New York, before Epsilon opens.
    hour = {"start": at("10:00").isoformat(), "end": at("11:00").isoformat()}

    every = await _free(client, member_headers, **hour)
    large = await _free(client, member_headers, **hour, min_capacity=10)
    equipped = await _free(client, member_headers, **hour, amenities=["projector", "video"])

    assert [(room["name"], room["time_zone"]) for room in every["items"]] == [
        ("Beta", "Europe/Berlin"),
        ("Gamma", "Europe/Berlin"),
    ]
    assert [room["name"] for room in large["items"]] == ["Gamma"]
    assert [room["name"] for room in equipped["items"]] == ["Gamma"]


async def test_free_rooms_come_in_pages(
    client: AsyncClient, member_headers: dict[str, str], create_room: CreateRoom
) -> None:
    for name in ("Alpha", "Beta", "Gamma"):
        await create_room(name=name)
    hour = {
        "start": at("10:00").isoformat(),
        "end": at("11:00").isoformat(),
        "limit": 2,
    }
    first = await _free(client, member_headers, **hour)
    second = await _free(client, member_headers, **hour, cursor=first["next_cursor"])

    assert [room["name"] for room in first["items"] + second["items"]] == [
        "Alpha",
        "Beta",
        "Gamma",
    ]
    assert second["next_cursor"] is None


async def test_free_rooms_need_a_range_within_the_cap(
    client: AsyncClient, member_headers: dict[str, str]
) -> None:
    start = at("10:00")
    backwards = await client.get(
        f"{ROOMS}/available",
        params={"start": start.isoformat(), "end": (start - timedelta(hours=1)).isoformat()},
        headers=member_headers,
    )
    missing = await client.get(
        f"{ROOMS}/available", params={"start": start.isoformat()}, headers=member_headers
    )

    assert [error["field"] for error in backwards.json()["errors"]] == ["end"]
    assert [error["field"] for error in missing.json()["errors"]] == ["end"]
