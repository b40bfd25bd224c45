"""The status machine: cancel, approve and reject, each allowed step and each refused one."""

import uuid

import pytest
from httpx import AsyncClient, Response
from sqlalchemy.ext.asyncio import AsyncSession

from app.bookings.models import Booking, BookingStatus, Room
from app.users.schemas import Role
from tests.auth.conftest import audit_actions, audit_changes
from tests.bookings.conftest import BOOKINGS, InsertBooking, body, if_match, local
from tests.conftest import AuthHeaders, CreateUser

pytestmark = pytest.mark.usefixtures("fixed_clock")

PENDING, CONFIRMED = BookingStatus.PENDING.value, BookingStatus.CONFIRMED.value
REJECTED, CANCELLED = BookingStatus.REJECTED.value, BookingStatus.CANCELLED.value
ALLOWED = {
    ("cancel", PENDING): CANCELLED,
    ("cancel", CONFIRMED): CANCELLED,
    ("approve", PENDING): CONFIRMED,
    ("reject", PENDING): REJECTED,
}
"""Every legal step and where it leads; any other (step, status) is a 409."""
STEPS = ("cancel", "approve", "reject")
ACTIONS = {
    "cancel": "booking.cancelled",
    "approve": "booking.approved",
    "reject": "booking.rejected",
}
REQUESTS = {"cancel": {"reason": "Plans changed"}, "approve": None, "reject": {"reason": "Busy"}}


async def step(
    client: AsyncClient, booking: Booking, name: str, headers: dict[str, str]
) -> Response:
    """Take a step with the booking's current version in `If-Match`."""
    return await client.post(
        f"{BOOKINGS}/{booking.id}/{name}",
        json=REQUESTS[name],
        headers=if_match(headers, booking.version),
    )


@pytest.mark.parametrize("status", [PENDING, CONFIRMED, REJECTED, CANCELLED])
@pytest.mark.parametrize("name", STEPS)
async def test_each_step_from_each_status(
    *,
    client: AsyncClient,
    room: Room,
    owner_id: uuid.UUID,
    create_user: CreateUser,
    auth_headers: AuthHeaders,
    insert_booking: InsertBooking,
    db_session: AsyncSession,
    name: str,
    status: str,
) -> None:
    manager = await create_user(role=Role.MANAGER)
    booking = await insert_booking(
        room=room, owner_id=owner_id, start=local(8, 9), end=local(8, 10), status=status
    )
    response = await step(client, booking, name, await auth_headers(manager))

    if (name, status) not in ALLOWED:
        assert response.status_code == 409
        assert response.json()["code"] == "illegal-transition"
        assert await audit_actions(db_session, entity_id=booking.id) == []
        return
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["status"] == ALLOWED[(name, status)]
    assert response.headers["etag"] == '"2"'
    if name == "cancel":
        assert (answer["cancelled_by"], answer["cancel_reason"]) == (str(manager), "Plans changed")
        assert answer["cancelled_at"] == "2030-01-07T07:00:00Z"
    else:
        assert (answer["decided_by"], answer["decided_at"]) == (
            str(manager),
            "2030-01-07T07:00:00Z",
        )
    assert await audit_actions(db_session, entity_id=booking.id) == [ACTIONS[name]]
    [changes] = await audit_changes(db_session, action=ACTIONS[name])
    assert changes["before"]["status"] == status
    assert changes["after"]["status"] == ALLOWED[(name, status)]


async def test_a_rejection_keeps_its_reason_in_the_audit_trail(
    *,
    client: AsyncClient,
    room: Room,
    owner_id: uuid.UUID,
    manager_headers: dict[str, str],
    insert_booking: InsertBooking,
    db_session: AsyncSession,
) -> None:
    booking = await insert_booking(
        room=room, owner_id=owner_id, start=local(8, 9), end=local(8, 10), status=PENDING
    )
    without_reason = await client.post(
        f"{BOOKINGS}/{booking.id}/reject", headers=if_match(manager_headers, 1)
    )

    assert without_reason.status_code == 200, without_reason.text
    [changes] = await audit_changes(db_session, action="booking.rejected")
    assert "reject_reason" not in changes["after"]


async def test_rejected_and_cancelled_bookings_free_the_room(
    *,
    client: AsyncClient,
    room: Room,
    owner_id: uuid.UUID,
    manager_headers: dict[str, str],
    member_headers: dict[str, str],
    insert_booking: InsertBooking,
) -> None:
    pending = await insert_booking(
        room=room, owner_id=owner_id, start=local(8, 9), end=local(8, 10), status=PENDING
    )
    confirmed = await insert_booking(
        room=room, owner_id=owner_id, start=local(8, 11), end=local(8, 12)
    )
    assert (await step(client, pending, "reject", manager_headers)).status_code == 200
    assert (await step(client, confirmed, "cancel", manager_headers)).status_code == 200

    for start, end in ((local(8, 9), local(8, 10)), (local(8, 11), local(8, 12))):
        again = await client.post(BOOKINGS, json=body(room, start, end), headers=member_headers)
        assert again.status_code == 201, again.text


@pytest.mark.parametrize("name", ["approve", "reject"])
async def test_members_may_not_decide_even_their_own_bookings(
    *,
    client: AsyncClient,
    room: Room,
    create_user: CreateUser,
    auth_headers: AuthHeaders,
    insert_booking: InsertBooking,
    name: str,
) -> None:
    member = await create_user()
    booking = await insert_booking(
        room=room, owner_id=member, start=local(8, 9), end=local(8, 10), status=PENDING
    )
    response = await step(client, booking, name, await auth_headers(member))

    assert response.status_code == 403
    assert response.json()["code"] == "role-forbidden"


async def test_a_member_cancels_their_own_booking_before_the_cut_off(
    client: AsyncClient,
    room: Room,
    create_user: CreateUser,
    auth_headers: AuthHeaders,
    insert_booking: InsertBooking,
) -> None:
    member = await create_user()
    headers = await auth_headers(member)
    later = await insert_booking(room=room, owner_id=member, start=local(7, 9), end=local(7, 10))
    soon = await insert_booking(room=room, owner_id=member, start=local(7, 8, 30), end=local(7, 9))

    allowed = await step(client, later, "cancel", headers)
    refused = await step(client, soon, "cancel", headers)

    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["cancelled_by"] == str(member)
    assert refused.status_code == 403
    assert refused.json()["code"] == "member-cutoff-passed"


@pytest.mark.parametrize("role", [Role.MANAGER, Role.ADMIN])
async def test_managers_cancel_any_booking_even_after_the_cut_off(
    *,
    client: AsyncClient,
    room: Room,
    owner_id: uuid.UUID,
    create_user: CreateUser,
    auth_headers: AuthHeaders,
    insert_booking: InsertBooking,
    role: Role,
) -> None:
    soon = await insert_booking(
        room=room, owner_id=owner_id, start=local(7, 8, 30), end=local(7, 9)
    )
    response = await step(client, soon, "cancel", await auth_headers(await create_user(role=role)))

    assert response.status_code == 200


async def test_members_cannot_cancel_another_members_booking(
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
    response = await step(client, booking, "cancel", member_headers)

    assert response.status_code == 404


@pytest.mark.parametrize("name", STEPS)
async def test_each_step_needs_the_current_etag(
    *,
    client: AsyncClient,
    room: Room,
    owner_id: uuid.UUID,
    manager_headers: dict[str, str],
    insert_booking: InsertBooking,
    name: str,
) -> None:
    booking = await insert_booking(
        room=room, owner_id=owner_id, start=local(8, 9), end=local(8, 10), status=PENDING
    )
    url = f"{BOOKINGS}/{booking.id}/{name}"
    missing = await client.post(url, json=REQUESTS[name], headers=manager_headers)
    stale = await client.post(url, json=REQUESTS[name], headers=if_match(manager_headers, 2))

    assert missing.status_code == 428
    assert stale.status_code == 412


@pytest.mark.parametrize("reason", ["", "   ", "Nul\x00", "x" * 501])
async def test_a_cancellation_needs_a_clean_reason(
    *,
    client: AsyncClient,
    room: Room,
    owner_id: uuid.UUID,
    manager_headers: dict[str, str],
    insert_booking: InsertBooking,
    reason: str,
) -> None:
    booking = await insert_booking(
        room=room, owner_id=owner_id, start=local(8, 9), end=local(8, 10)
    )
    response = await client.post(
        f"{BOOKINGS}/{booking.id}/cancel",
        json={"reason": reason},
        headers=if_match(manager_headers, 1),
    )

    assert response.status_code == 422
    assert [error["field"] for error in response.json()["errors"]] == ["reason"]
