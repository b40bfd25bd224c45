"""`PATCH /bookings/{id}`: `If-Match` required, a move judged like a new booking, members held
to their own bookings and the cut-off."""

import uuid
from datetime import timedelta
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from app.bookings.models import Booking, Room
from tests.auth.conftest import audit_actions, audit_changes
from tests.bookings.conftest import BOOKINGS, CreateRoom, InsertBooking, if_match, local
from tests.conftest import AuthHeaders, CreateUser

pytestmark = pytest.mark.usefixtures("fixed_clock")


@pytest.fixture
async def member(create_user: CreateUser) -> uuid.UUID:
    """The member who owns the booking under change."""
    return await create_user()


@pytest.fixture
async def headers(member: uuid.UUID, auth_headers: AuthHeaders) -> dict[str, str]:
    """The owner's headers."""
    return await auth_headers(member)


@pytest.fixture
async def booking(room: Room, member: uuid.UUID, insert_booking: InsertBooking) -> Booking:
    """The member's booking on Tuesday 09:00 to 10:00, well before the cut-off."""
    return await insert_booking(room=room, owner_id=member, start=local(8, 9), end=local(8, 10))


async def patch(
    client: AsyncClient, booking: Booking, headers: dict[str, str], **fields: Any
) -> Any:
    """Send a PATCH with the booking's current version in `If-Match`."""
    return await client.patch(
        f"{BOOKINGS}/{booking.id}", json=fields, headers=if_match(headers, booking.version)
    )


async def test_a_change_needs_the_current_etag(
    client: AsyncClient, booking: Booking, headers: dict[str, str]
) -> None:
    url = f"{BOOKINGS}/{booking.id}"
    missing = await client.patch(url, json={"title": "New"}, headers=headers)
    stale = await client.patch(url, json={"title": "New"}, headers=if_match(headers, 7))
    star = await client.patch(url, json={"title": "New"}, headers={**headers, "If-Match": "*"})
    invalid = await client.patch(url, json={"title": "Nul\x00"}, headers=headers)

    assert missing.status_code == star.status_code == 428
    assert stale.status_code == 412
    assert stale.json()["code"] == "stale-version"
    assert invalid.status_code == 422


async def test_the_owner_renames_and_clears_the_note(
    *,
    client: AsyncClient,
    room: Room,
    member: uuid.UUID,
    headers: dict[str, str],
    insert_booking: InsertBooking,
    db_session: AsyncSession,
) -> None:
    booking = await insert_booking(
        room=room, owner_id=member, start=local(8, 9), end=local(8, 10), note="Old note"
    )
    response = await patch(client, booking, headers, title="Retro", note=None)

    assert response.status_code == 200, response.text
    assert response.headers["etag"] == '"2"'
    assert (response.json()["title"], response.json()["note"]) == ("Retro", None)
    assert await audit_actions(db_session, entity_id=booking.id) == ["booking.updated"]
    [changes] = await audit_changes(db_session, action="booking.updated")
    assert changes == {
        "before": {"note": "Old note", "title": "Team meeting"},
        "after": {"note": None, "title": "Retro"},
    }


async def test_an_unchanged_body_changes_nothing(
    client: AsyncClient, booking: Booking, headers: dict[str, str], db_session: AsyncSession
) -> None:
    response = await patch(
        client, booking, headers, title=booking.title, starts_at=local(8, 9).isoformat()
    )

    assert response.status_code == 200
    assert response.headers["etag"] == '"1"'
    assert await audit_actions(db_session, entity_id=booking.id) == []


async def test_a_reschedule_takes_the_buffer_of_the_room_it_lands_in(
    *,
    client: AsyncClient,
    booking: Booking,
    create_room: CreateRoom,
    headers: dict[str, str],
    db_session: AsyncSession,
) -> None:
    buffered = await create_room(policy={"buffer_minutes": 30})
    response = await patch(
        client,
        booking,
        headers,
        room_id=str(buffered.id),
        starts_at=local(9, 14).isoformat(),
        ends_at=local(9, 15).isoformat(),
    )

    assert response.status_code == 200, response.text
    assert response.json()["room_id"] == str(buffered.id)
    assert response.json()["starts_at"] == "2030-01-09T13:00:00Z"
    row = await db_session.get(Booking, booking.id, populate_existing=True)
    assert row is not None
    assert row.blocked_until == local(9, 15) + timedelta(minutes=30)


async def test_a_booking_may_move_over_its_own_old_time(
    client: AsyncClient, booking: Booking, headers: dict[str, str]
) -> None:
    response = await patch(
        client,
        booking,
        headers,
        starts_at=local(8, 9, 30).isoformat(),
        ends_at=local(8, 10, 30).isoformat(),
    )

    assert response.status_code == 200, response.text


async def test_a_move_onto_a_taken_time_is_refused_with_alternatives(
    *,
    client: AsyncClient,
    room: Room,
    booking: Booking,
    owner_id: uuid.UUID,
    headers: dict[str, str],
    insert_booking: InsertBooking,
    db_session: AsyncSession,
) -> None:
    await insert_booking(
        room=room, owner_id=owner_id, start=local(8, 11), end=local(8, 12), title="Board"
    )
    response = await patch(
        client,
        booking,
        headers,
        starts_at=local(8, 11).isoformat(),
        ends_at=local(8, 12).isoformat(),
    )

    assert response.status_code == 409
    assert [v["code"] for v in response.json()["violations"]] == ["overlap"]
    # 09:45 to 10:45 overlaps the booking's own old time, which is not in its way.
    starts = [slot["starts_at"] for slot in response.json()["alternatives"]["slots"]]
    assert starts == ["2030-01-08T09:00:00Z", "2030-01-08T11:00:00Z", "2030-01-08T08:45:00Z"]
    assert "Board" not in response.text
    row = await db_session.get(Booking, booking.id, populate_existing=True)
    assert row is not None
    assert (row.starts_at, row.version) == (local(8, 9), 1)


async def test_a_move_is_judged_by_every_rule(
    client: AsyncClient, booking: Booking, headers: dict[str, str]
) -> None:
    response = await patch(
        client,
        booking,
        headers,
        starts_at=local(12, 9, 5).isoformat(),
        ends_at=local(12, 9, 10).isoformat(),
        attendees=50,
    )

    assert response.status_code == 422
    assert [v["code"] for v in response.json()["violations"]] == [
        "off_granularity",
        "too_short",
        "outside_opening_hours",
        "over_capacity",
    ]


async def test_a_new_attendee_count_is_judged_by_capacity_alone(
    *,
    client: AsyncClient,
    room: Room,
    owner_id: uuid.UUID,
    manager_headers: dict[str, str],
    insert_booking: InsertBooking,
) -> None:
    started = await insert_booking(
        room=room, owner_id=owner_id, start=local(4, 9), end=local(4, 10)
    )
    too_many = await patch(client, started, manager_headers, attendees=9)
    fitting = await patch(client, started, manager_headers, attendees=8)

    # The booking lies in the past, but only its capacity is judged again.
    assert too_many.status_code == 422
    assert [v["code"] for v in too_many.json()["violations"]] == ["over_capacity"]
    assert fitting.status_code == 200, fitting.text


async def test_one_new_end_must_follow_the_current_start(
    client: AsyncClient, booking: Booking, headers: dict[str, str]
) -> None:
    response = await patch(client, booking, headers, ends_at=local(8, 8).isoformat())

    assert response.status_code == 422
    assert [error["field"] for error in response.json()["errors"]] == ["ends_at"]


async def test_a_move_to_an_unknown_room_is_an_invalid_field(
    client: AsyncClient, booking: Booking, headers: dict[str, str]
) -> None:
    response = await patch(client, booking, headers, room_id=str(uuid.uuid4()))

    assert response.status_code == 422
    assert [error["field"] for error in response.json()["errors"]] == ["room_id"]


async def test_members_change_nothing_within_the_cut_off(
    *,
    client: AsyncClient,
    room: Room,
    member: uuid.UUID,
    headers: dict[str, str],
    manager_headers: dict[str, str],
    insert_booking: InsertBooking,
) -> None:
    soon = await insert_booking(room=room, owner_id=member, start=local(7, 8, 45), end=local(7, 10))
    refused = await patch(client, soon, headers, title="Too late")
    allowed = await patch(client, soon, manager_headers, title="Manager's fix")

    assert refused.status_code == 403
    assert refused.json()["code"] == "member-cutoff-passed"
    assert allowed.status_code == 200


async def test_a_cancelled_booking_no_longer_changes(
    *,
    client: AsyncClient,
    room: Room,
    member: uuid.UUID,
    headers: dict[str, str],
    insert_booking: InsertBooking,
) -> None:
    cancelled = await insert_booking(
        room=room, owner_id=member, start=local(8, 9), end=local(8, 10), status="cancelled"
    )
    response = await patch(client, cancelled, headers, title="Revived")

    assert response.status_code == 409
    assert response.json()["code"] == "booking-closed"


async def test_members_cannot_change_another_members_booking(
    client: AsyncClient, booking: Booking, member_headers: dict[str, str]
) -> None:
    response = await patch(client, booking, member_headers, title="Mine now")

    assert response.status_code == 404


async def test_a_members_move_into_a_room_that_needs_approval_waits_again(
    *,
    client: AsyncClient,
    booking: Booking,
    create_room: CreateRoom,
    headers: dict[str, str],
    manager_headers: dict[str, str],
    insert_booking: InsertBooking,
    member: uuid.UUID,
) -> None:
    approval = await create_room(policy={"requires_approval": True})
    moved = await patch(client, booking, headers, room_id=str(approval.id))
    assert moved.status_code == 200, moved.text
    assert moved.json()["status"] == "pending"

    other = await insert_booking(
        room=approval, owner_id=member, start=local(9, 9), end=local(9, 10)
    )
    by_manager = await patch(client, other, manager_headers, starts_at=local(9, 8).isoformat())
    assert by_manager.status_code == 200, by_manager.text
    assert by_manager.json()["status"] == "confirmed"


async def test_overrides_on_a_move_are_for_managers_and_audited(
    *,
    client: AsyncClient,
    booking: Booking,
    headers: dict[str, str],
    manager_headers: dict[str, str],
    db_session: AsyncSession,
) -> None:
    saturday = {
        "starts_at": local(12, 9).isoformat(),
        "ends_at": local(12, 10).isoformat(),
        "override_rules": True,
    }
    by_member = await patch(client, booking, headers, **saturday)
    by_manager = await patch(client, booking, manager_headers, **saturday)

    assert by_member.status_code == 403
    assert by_manager.status_code == 200, by_manager.text
    assert by_manager.json()["rules_overridden"] is True
    assert await audit_actions(db_session, entity_id=booking.id) == [
        "booking.updated",
        "booking.rules_overridden",
    ]
