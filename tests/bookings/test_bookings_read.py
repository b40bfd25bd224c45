"""`GET /bookings/{id}` and `GET /bookings`: owners see theirs, managers and admins every one,
and nobody learns that someone else's booking exists."""

import uuid
from datetime import datetime, timedelta

import pytest
from httpx import AsyncClient

from app.bookings.models import Booking, Room
from app.users.schemas import Role
from tests.bookings.conftest import BOOKINGS, CreateRoom, InsertBooking, local
from tests.conftest import AuthHeaders, CreateUser

pytestmark = pytest.mark.usefixtures("fixed_clock")


async def _ids(client: AsyncClient, headers: dict[str, str], **params: str) -> list[str]:
    response = await client.get(BOOKINGS, params=params, headers=headers)
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


async def test_the_owner_reads_a_booking_with_its_etag(
    client: AsyncClient,
    room: Room,
    create_user: CreateUser,
    auth_headers: AuthHeaders,
    insert_booking: InsertBooking,
) -> None:
    member = await create_user()
    booking = await insert_booking(room=room, owner_id=member, start=local(8, 9), end=local(8, 10))
    response = await client.get(f"{BOOKINGS}/{booking.id}", headers=await auth_headers(member))

    assert response.status_code == 200
    assert response.headers["etag"] == '"1"'
    assert response.json()["title"] == booking.title
    assert response.json()["starts_at"] == "2030-01-08T08:00:00Z"


@pytest.mark.parametrize("role", [Role.MANAGER, Role.ADMIN])
async def test_managers_and_admins_read_any_booking(
    *,
    client: AsyncClient,
    room: Room,
    owner_id: uuid.UUID,
    create_user: CreateUser,
    auth_headers: AuthHeaders,
    insert_booking: InsertBooking,
    role: Role,
) -> None:
    booking = await insert_booking(
        room=room, owner_id=owner_id, start=local(8, 9), end=local(8, 10)
    )
    headers = await auth_headers(await create_user(role=role))

    assert (await client.get(f"{BOOKINGS}/{booking.id}", headers=headers)).status_code == 200


async def test_another_members_booking_is_not_found(
    *,
    client: AsyncClient,
    room: Room,
    owner_id: uuid.UUID,
    member_headers: dict[str, str],
    insert_booking: InsertBooking,
) -> None:
    booking = await insert_booking(
        room=room, owner_id=owner_id, start=local(8, 9), end=local(8, 10)
    )
    theirs = await client.get(f"{BOOKINGS}/{booking.id}", headers=member_headers)
    missing = await client.get(f"{BOOKINGS}/{uuid.uuid4()}", headers=member_headers)

    assert theirs.status_code == missing.status_code == 404
    assert theirs.json()["code"] == missing.json()["code"] == "booking-not-found"
    assert booking.title not in theirs.text


async def test_a_blackout_is_no_booking(
    client: AsyncClient,
    room: Room,
    create_user: CreateUser,
    auth_headers: AuthHeaders,
    insert_booking: InsertBooking,
) -> None:
    manager = await create_user(role=Role.MANAGER)
    blackout = await insert_booking(
        room=room, owner_id=manager, start=local(8, 9), end=local(8, 10), kind="blackout"
    )
    response = await client.get(f"{BOOKINGS}/{blackout.id}", headers=await auth_headers(manager))

    assert response.status_code == 404


async def test_members_list_only_their_own_bookings(
    *,
    client: AsyncClient,
    room: Room,
    owner_id: uuid.UUID,
    create_user: CreateUser,
    auth_headers: AuthHeaders,
    insert_booking: InsertBooking,
) -> None:
    member = await create_user()
    headers = await auth_headers(member)
    mine = await insert_booking(room=room, owner_id=member, start=local(8, 9), end=local(8, 10))
    await insert_booking(room=room, owner_id=owner_id, start=local(8, 11), end=local(8, 12))

    assert await _ids(client, headers) == [str(mine.id)]
    assert await _ids(client, headers, owner_id=str(member)) == [str(mine.id)]
    refused = await client.get(BOOKINGS, params={"owner_id": str(owner_id)}, headers=headers)
    assert refused.status_code == 403
    assert refused.json()["code"] == "owner-filter-forbidden"


async def test_managers_list_everyone_and_filter_by_owner(
    *,
    client: AsyncClient,
    room: Room,
    owner_id: uuid.UUID,
    create_user: CreateUser,
    manager_headers: dict[str, str],
    insert_booking: InsertBooking,
) -> None:
    other = await create_user()
    first = await insert_booking(room=room, owner_id=owner_id, start=local(8, 9), end=local(8, 10))
    second = await insert_booking(room=room, owner_id=other, start=local(8, 11), end=local(8, 12))

    assert await _ids(client, manager_headers) == [str(first.id), str(second.id)]
    assert await _ids(client, manager_headers, owner_id=str(other)) == [str(second.id)]


async def test_the_list_filters_by_room_status_and_start(
    *,
    client: AsyncClient,
    room: Room,
    create_room: CreateRoom,
    owner_id: uuid.UUID,
    auth_headers: AuthHeaders,
    insert_booking: InsertBooking,
) -> None:
    headers = await auth_headers(owner_id)
    other_room = await create_room()
    early = await insert_booking(room=room, owner_id=owner_id, start=local(8, 9), end=local(8, 10))
    late = await insert_booking(room=room, owner_id=owner_id, start=local(9, 9), end=local(9, 10))
    elsewhere = await insert_booking(
        room=other_room, owner_id=owner_id, start=local(8, 9), end=local(8, 10)
    )
    cancelled = await insert_booking(
        room=room, owner_id=owner_id, start=local(10, 9), end=local(10, 10), status="cancelled"
    )

    assert await _ids(client, headers, room_id=str(room.id)) == [
        str(early.id),
        str(late.id),
        str(cancelled.id),
    ]
    assert await _ids(client, headers, status="cancelled") == [str(cancelled.id)]
    # `from` is inclusive, `to` exclusive, both on the start; any offset is accepted.
    assert sorted(
        await _ids(client, headers, **{"from": "2030-01-08T09:00:00+01:00", "to": _at(local(9, 9))})
    ) == sorted([str(early.id), str(elsewhere.id)])
    assert await _ids(client, headers, **{"from": _at(local(9, 9))}) == [
        str(late.id),
        str(cancelled.id),
    ]


def _at(moment: datetime) -> str:
    return moment.isoformat()


async def test_the_list_pages_by_start_then_id(
    *,
    client: AsyncClient,
    room: Room,
    create_room: CreateRoom,
    owner_id: uuid.UUID,
    auth_headers: AuthHeaders,
    insert_booking: InsertBooking,
) -> None:
    headers = await auth_headers(owner_id)
    rooms = [room, *[await create_room() for _ in range(2)]]
    created: list[Booking] = []
    for hour in range(9, 13):
        for each in rooms:
            start = local(8, hour)
            created.append(
                await insert_booking(
                    room=each, owner_id=owner_id, start=start, end=start + timedelta(hours=1)
                )
            )
    expected = [str(b.id) for b in sorted(created, key=lambda b: (b.starts_at, b.id))]

    seen: list[str] = []
    cursor: str | None = None
    while True:
        params = {"limit": "5"} | ({"cursor": cursor} if cursor else {})
        page = (await client.get(BOOKINGS, params=params, headers=headers)).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert seen == expected


@pytest.mark.parametrize(
    "params",
    [
        {"status": "gone"},
        {"from": "yesterday"},
        {"to": "2030-01-08T09:00:00"},
        {"room_id": "x"},
        {"cursor": "tampered"},
    ],
)
async def test_malformed_filters_are_invalid(
    client: AsyncClient, member_headers: dict[str, str], params: dict[str, str]
) -> None:
    response = await client.get(BOOKINGS, params=params, headers=member_headers)

    assert response.status_code == 422
