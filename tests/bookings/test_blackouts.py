"""`/rooms/{id}/blackouts`: managers close a room; the closure blocks it like a booking."""

import uuid
from datetime import datetime

import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from app.bookings.models import Room
from tests.auth.conftest import audit_actions, audit_changes
from tests.bookings.conftest import BOOKINGS, CreateRoom, InsertBooking, body, local

pytestmark = pytest.mark.usefixtures("fixed_clock")


def blackouts_of(room: Room) -> str:
    """The blackouts URL of a room."""
    return f"/api/v1/rooms/{room.id}/blackouts"


def closure(start: datetime, end: datetime, reason: str = "Carpet cleaning") -> dict[str, str]:
    """A `BlackoutCreate` body."""
    return {"starts_at": start.isoformat(), "ends_at": end.isoformat(), "reason": reason}


async def test_a_manager_closes_a_room_and_anyone_signed_in_sees_it(
    client: AsyncClient,
    manager_headers: dict[str, str],
    member_headers: dict[str, str],
    room: Room,
    db_session: AsyncSession,
) -> None:
    added = await client.post(
        blackouts_of(room), json=closure(local(8, 12), local(8, 14)), headers=manager_headers
    )
    listed = await client.get(blackouts_of(room), headers=member_headers)

    assert added.status_code == 201, added.text
    blackout = added.json()
    assert (blackout["starts_at"], blackout["ends_at"]) == (
        "2030-01-08T11:00:00Z",
        "2030-01-08T13:00:00Z",
    )
    assert blackout["reason"] == "Carpet cleaning"
    assert listed.json() == {"items": [blackout], "next_cursor": None}
    assert await audit_actions(db_session, entity_id=blackout["id"]) == ["blackout.added"]
    [changes] = await audit_changes(db_session, action="blackout.added")
    assert changes["after"]["reason"] == "Carpet cleaning"


async def test_a_blackout_refuses_bookings_as_the_constraint_does(
    client: AsyncClient,
    manager_headers: dict[str, str],
    member_headers: dict[str, str],
    room: Room,
) -> None:
    await client.post(
        blackouts_of(room), json=closure(local(8, 12), local(8, 14)), headers=manager_headers
    )
    inside = await client.post(
        BOOKINGS, json=body(room, local(8, 13), local(8, 15)), headers=member_headers
    )
    overridden = await client.post(
        BOOKINGS,
        json=body(room, local(8, 13), local(8, 15), override_rules=True),
        headers=manager_headers,
    )
    after = await client.post(
        BOOKINGS, json=body(room, local(8, 14), local(8, 15)), headers=member_headers
    )

    for refused in (inside, overridden):
        assert refused.status_code == 409
        assert [v["code"] for v in refused.json()["violations"]] == ["in_blackout"]
    assert after.status_code == 201


async def test_a_blackout_over_bookings_is_refused_naming_nothing_private(
    client: AsyncClient,
    manager_headers: dict[str, str],
    room: Room,
    owner_id: uuid.UUID,
    insert_booking: InsertBooking,
) -> None:
    await insert_booking(
        room=room,
        owner_id=owner_id,
        start=local(8, 9),
        end=local(8, 10),
        blocked_until=local(8, 10, 30),
        title="Secret merger talks",
        note="Do not disclose",
    )
    await client.post(
        blackouts_of(room), json=closure(local(8, 11), local(8, 12)), headers=manager_headers
    )
    response = await client.post(
        blackouts_of(room),
        json=closure(local(8, 10, 15), local(8, 11, 30)),
        headers=manager_headers,
    )

    assert response.status_code == 409
    problem = response.json()
    assert problem["code"] == "blackout-conflict"
    assert problem["conflicts"] == [
        {
            "starts_at": "2030-01-08T08:00:00Z",
            "ends_at": "2030-01-08T09:00:00Z",
            "blocked_until": "2030-01-08T09:30:00Z",
            "kind": "booking",
            "status": "confirmed",
            "mine": False,
        },
        {
            "starts_at": "2030-01-08T10:00:00Z",
            "ends_at": "2030-01-08T11:00:00Z",
            "blocked_until": "2030-01-08T11:00:00Z",
            "kind": "blackout",
            "status": "confirmed",
            "mine": False,
        },
    ]
    for private in ("Secret", "disclose", str(owner_id)):
        assert private not in response.text


async def test_a_blackout_may_start_where_a_booking_and_its_buffer_end(
    client: AsyncClient,
    manager_headers: dict[str, str],
    room: Room,
    owner_id: uuid.UUID,
    insert_booking: InsertBooking,
) -> None:
    await insert_booking(
        room=room,
        owner_id=owner_id,
        start=local(8, 9),
        end=local(8, 10),
        blocked_until=local(8, 10, 15),
    )
    response = await client.post(
        blackouts_of(room), json=closure(local(8, 10, 15), local(8, 11)), headers=manager_headers
    )

    assert response.status_code == 201


async def test_lifting_a_blackout_frees_the_room_and_is_audited(
    client: AsyncClient,
    manager_headers: dict[str, str],
    member_headers: dict[str, str],
    room: Room,
    db_session: AsyncSession,
) -> None:
    added = await client.post(
        blackouts_of(room), json=closure(local(8, 12), local(8, 14)), headers=manager_headers
    )
    url = f"{blackouts_of(room)}/{added.json()['id']}"
    by_member = await client.delete(url, headers=member_headers)
    removed = await client.delete(url, headers=manager_headers)
    again = await client.delete(url, headers=manager_headers)
    booked = await client.post(
        BOOKINGS, json=body(room, local(8, 12), local(8, 13)), headers=member_headers
    )
    listed = await client.get(blackouts_of(room), headers=member_headers)

    assert by_member.status_code == 403
    assert removed.status_code == 204
    assert (again.status_code, again.json()["code"]) == (404, "blackout-not-found")
    assert booked.status_code == 201
    assert listed.json()["items"] == []
    assert await audit_actions(db_session, entity_id=added.json()["id"]) == [
        "blackout.added",
        "blackout.removed",
    ]
    [changes] = await audit_changes(db_session, action="blackout.removed")
    assert (changes["before"]["status"], changes["after"]["status"]) == ("confirmed", "cancelled")


async def test_a_blackout_is_found_only_under_its_own_room(
    client: AsyncClient, manager_headers: dict[str, str], create_room: CreateRoom
) -> None:
    room, other = await create_room(), await create_room()
    added = await client.post(
        blackouts_of(room), json=closure(local(8, 12), local(8, 14)), headers=manager_headers
    )
    response = await client.delete(
        f"{blackouts_of(other)}/{added.json()['id']}", headers=manager_headers
    )

    assert response.status_code == 404


async def test_a_booking_id_is_no_blackout(
    client: AsyncClient,
    manager_headers: dict[str, str],
    room: Room,
    owner_id: uuid.UUID,
    insert_booking: InsertBooking,
) -> None:
    booking = await insert_booking(
        room=room, owner_id=owner_id, start=local(8, 9), end=local(8, 10)
    )
    response = await client.delete(f"{blackouts_of(room)}/{booking.id}", headers=manager_headers)

    assert response.status_code == 404


async def test_blackouts_page_by_start(
    client: AsyncClient, manager_headers: dict[str, str], room: Room
) -> None:
    for day in (10, 8, 9):
        await client.post(
            blackouts_of(room), json=closure(local(day, 8), local(day, 9)), headers=manager_headers
        )
    first = await client.get(blackouts_of(room), params={"limit": 2}, headers=manager_headers)
    cursor = first.json()["next_cursor"]
    second = await client.get(
        blackouts_of(room), params={"limit": 2, "cursor": cursor}, headers=manager_headers
    )

    starts = [item["starts_at"] for item in first.json()["items"] + second.json()["items"]]
    assert starts == ["2030-01-08T07:00:00Z", "2030-01-09T07:00:00Z", "2030-01-10T07:00:00Z"]
    assert second.json()["next_cursor"] is None


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"ends_at": local(8, 12).isoformat()}, "ends_at"),
        ({"reason": " "}, "reason"),
        ({"starts_at": "2030-01-08T12:00:00"}, "starts_at"),
    ],
)
async def test_invalid_blackouts_are_refused_naming_the_field(
    client: AsyncClient,
    manager_headers: dict[str, str],
    room: Room,
    fields: dict[str, str],
    field: str,
) -> None:
    response = await client.post(
        blackouts_of(room),
        json=closure(local(8, 12), local(8, 14)) | fields,
        headers=manager_headers,
    )

    assert response.status_code == 422
    assert [error["field"] for error in response.json()["errors"]] == [field]


async def test_a_blackout_of_an_unknown_room_is_not_found(
    client: AsyncClient, manager_headers: dict[str, str]
) -> None:
    response = await client.post(
        f"/api/v1/rooms/{uuid.uuid4()}/blackouts",
        json=closure(local(8, 12), local(8, 14)),
        headers=manager_headers,
    )

    assert (response.status_code, response.json()["code"]) == (404, "room-not-found")
