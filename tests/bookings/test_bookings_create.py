"""`POST /bookings` and `POST /bookings/check`: booked under the room's rules, or refused with
every reason and, when the time is taken, alternatives that reveal nothing of other people."""

import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.models import AuditEvent
from app.bookings.models import Booking, Room
from app.users.schemas import Role
from tests.auth.conftest import audit_actions, audit_changes
from tests.bookings.conftest import BOOKINGS, CreateRoom, InsertBooking, body, local
from tests.conftest import AuthHeaders, CreateUser
from tests.core.support import captured_statements

pytestmark = pytest.mark.usefixtures("fixed_clock")

SECRET_TITLE = "Secret merger talks"
TUESDAY_NINE, TUESDAY_TEN = local(8, 9), local(8, 10)


async def booked(session: AsyncSession) -> int:
    """How many bookings and blackouts the table holds."""
    return await session.scalar(select(func.count()).select_from(Booking)) or 0


def codes(response_body: dict[str, Any]) -> list[str]:
    """The violation codes of a refusal or a verdict, in order."""
    return [violation["code"] for violation in response_body["violations"]]


async def test_a_member_books_a_free_slot(
    client: AsyncClient,
    room: Room,
    create_user: CreateUser,
    auth_headers: AuthHeaders,
    db_session: AsyncSession,
) -> None:
    member = await create_user()
    response = await client.post(
        BOOKINGS,
        json=body(room, TUESDAY_NINE, TUESDAY_TEN, note="Bring the roadmap"),
        headers=await auth_headers(member),
    )

    assert response.status_code == 201, response.text
    created = response.json()
    assert response.headers["location"] == f"{BOOKINGS}/{created['id']}"
    assert response.headers["etag"] == '"1"'
    assert created["status"] == "confirmed"
    assert created["owner_id"] == str(member)
    assert created["room_id"] == str(room.id)
    assert (created["starts_at"], created["ends_at"]) == (
        "2030-01-08T08:00:00Z",
        "2030-01-08T09:00:00Z",
    )
    assert created["note"] == "Bring the roadmap"
    assert created["rules_overridden"] is False
    assert created["cancelled_at"] is None
    row = await db_session.get(Booking, uuid.UUID(created["id"]))
    assert row is not None
    assert row.blocked_until == row.ends_at
    assert await audit_actions(db_session, entity_id=created["id"]) == ["booking.created"]
    [changes] = await audit_changes(db_session, action="booking.created")
    assert changes["after"]["title"] == "Planning"
    assert changes["after"]["status"] == "confirmed"


async def test_a_member_books_with_one_statement_per_step(
    app: FastAPI,
    client: AsyncClient,
    room: Room,
    create_user: CreateUser,
    auth_headers: AuthHeaders,
) -> None:
    headers = await auth_headers(await create_user())
    warm = await client.post(BOOKINGS, json=body(room, local(8, 8), local(8, 9)), headers=headers)
    assert warm.status_code == 201, warm.text
    with captured_statements(app.state.engine) as captured:
        response = await client.post(
            BOOKINGS, json=body(room, TUESDAY_NINE, TUESDAY_TEN), headers=headers
        )
    assert response.status_code == 201, response.text
    # The test's transaction wraps each request in a savepoint; the app sends the rest.
    seen = [statement for statement, _ in captured if "SAVEPOINT" not in statement]
    # Guard, room, quota lock, quota read, the room's turn, insert, event, audit head and
    # audit append: both quotas are read in one statement.
    assert len(seen) == 9, seen
    [quota_read] = [statement for statement in seen if "count(*)" in statement]
    assert "sum(EXTRACT(epoch" in quota_read


async def test_any_offset_is_read_and_answered_in_utc(
    client: AsyncClient, room: Room, member_headers: dict[str, str]
) -> None:
    response = await client.post(
        BOOKINGS,
        json=body(room, TUESDAY_NINE, TUESDAY_TEN)
        | {"starts_at": "2030-01-08T03:00:00-05:00", "ends_at": "2030-01-08T13:30:00+04:30"},
        headers=member_headers,
    )

    assert response.status_code == 201, response.text
    assert response.json()["starts_at"] == "2030-01-08T08:00:00Z"
    assert response.json()["ends_at"] == "2030-01-08T09:00:00Z"


async def test_a_room_that_needs_approval_books_pending(
    client: AsyncClient, create_room: CreateRoom, member_headers: dict[str, str]
) -> None:
    room = await create_room(policy={"requires_approval": True})
    response = await client.post(
        BOOKINGS, json=body(room, TUESDAY_NINE, TUESDAY_TEN), headers=member_headers
    )

    assert response.status_code == 201, response.text
    assert response.json()["status"] == "pending"


async def test_the_buffer_blocks_the_room_after_a_booking(
    client: AsyncClient,
    create_room: CreateRoom,
    member_headers: dict[str, str],
    db_session: AsyncSession,
) -> None:
    room = await create_room(policy={"buffer_minutes": 15})
    first = await client.post(
        BOOKINGS, json=body(room, TUESDAY_NINE, TUESDAY_TEN), headers=member_headers
    )
    assert first.status_code == 201, first.text
    row = await db_session.get(Booking, uuid.UUID(first.json()["id"]))
    assert row is not None
    assert row.blocked_until == TUESDAY_TEN + timedelta(minutes=15)

    back_to_back = await client.post(
        BOOKINGS, json=body(room, TUESDAY_TEN, local(8, 11)), headers=member_headers
    )
    after_buffer = await client.post(
        BOOKINGS, json=body(room, local(8, 10, 15), local(8, 11)), headers=member_headers
    )

    assert back_to_back.status_code == 409
    assert codes(back_to_back.json()) == ["overlap"]
    assert after_buffer.status_code == 201, after_buffer.text


@pytest.mark.parametrize(
    ("policy", "start", "end", "fields", "expected"),
    [
        pytest.param({}, local(4, 10), local(4, 11), {}, "past", id="past"),
        pytest.param(
            {"min_notice_minutes": 120},
            local(7, 9),
            local(7, 10),
            {},
            "too_little_notice",
            id="too_little_notice",
        ),
        pytest.param(
            {"max_ahead_days": 7},
            local(21, 9),
            local(21, 10),
            {},
            "too_far_ahead",
            id="too_far_ahead",
        ),
        pytest.param(
            {}, local(8, 9, 5), local(8, 10, 5), {}, "off_granularity", id="off_granularity"
        ),
        pytest.param(
            {"min_duration_minutes": 30, "max_duration_minutes": 480},
            TUESDAY_NINE,
            local(8, 9, 15),
            {},
            "too_short",
            id="too_short",
        ),
        pytest.param({}, local(8, 8), local(8, 17), {}, "too_long", id="too_long"),
        pytest.param(
            {}, local(8, 19), local(8, 21), {}, "outside_opening_hours", id="closing_time"
        ),
        pytest.param({}, local(12, 10), local(12, 11), {}, "outside_opening_hours", id="saturday"),
        pytest.param(
            {}, TUESDAY_NINE, TUESDAY_TEN, {"attendees": 9}, "over_capacity", id="over_capacity"
        ),
    ],
)
async def test_each_rule_refuses_with_its_code(
    *,
    client: AsyncClient,
    create_room: CreateRoom,
    member_headers: dict[str, str],
    db_session: AsyncSession,
    policy: dict[str, Any],
    start: datetime,
    end: datetime,
    fields: dict[str, Any],
    expected: str,
) -> None:
    room = await create_room(policy=policy)
    response = await client.post(
        BOOKINGS, json=body(room, start, end, **fields), headers=member_headers
    )

    assert response.status_code == 422, response.text
    problem = response.json()
    assert response.headers["content-type"] == "application/problem+json"
    assert problem["code"] == "booking-rules-violated"
    assert codes(problem) == [expected]
    assert all(violation["message"] for violation in problem["violations"])
    assert problem["alternatives"] == {"slots": [], "rooms": []}
    assert await booked(db_session) == 0


async def test_a_deactivated_room_takes_no_bookings(
    client: AsyncClient, create_room: CreateRoom, member_headers: dict[str, str]
) -> None:
    room = await create_room(is_active=False)
    response = await client.post(
        BOOKINGS, json=body(room, TUESDAY_NINE, TUESDAY_TEN), headers=member_headers
    )

    assert response.status_code == 422
    assert codes(response.json()) == ["room_inactive"]


async def test_every_broken_rule_is_reported_at_once(
    client: AsyncClient, room: Room, member_headers: dict[str, str]
) -> None:
    saturday = body(room, local(12, 19, 5), local(12, 19, 10), attendees=20)
    response = await client.post(BOOKINGS, json=saturday, headers=member_headers)

    assert response.status_code == 422
    assert codes(response.json()) == [
        "off_granularity",
        "too_short",
        "outside_opening_hours",
        "over_capacity",
    ]


async def test_a_taken_time_is_a_conflict_that_names_nobody(
    *,
    client: AsyncClient,
    room: Room,
    create_user: CreateUser,
    member_headers: dict[str, str],
    insert_booking: InsertBooking,
    db_session: AsyncSession,
) -> None:
    other = await create_user(full_name="Olga Otherperson")
    await insert_booking(
        room=room,
        owner_id=other,
        start=local(8, 9, 30),
        end=local(8, 10, 30),
        title=SECRET_TITLE,
        note="confidential",
    )
    response = await client.post(
        BOOKINGS, json=body(room, TUESDAY_NINE, TUESDAY_TEN), headers=member_headers
    )

    assert response.status_code == 409
    problem = response.json()
    assert problem["code"] == "booking-refused"
    assert problem["type"] == "https://roombook.dev/problems/booking-refused"
    assert codes(problem) == ["overlap"]
    for private in (SECRET_TITLE, "confidential", str(other), "Olga"):
        assert private not in response.text
    assert await booked(db_session) == 1


async def test_a_blackout_refuses_as_in_blackout(
    *,
    client: AsyncClient,
    room: Room,
    create_user: CreateUser,
    member_headers: dict[str, str],
    insert_booking: InsertBooking,
) -> None:
    manager = await create_user(role=Role.MANAGER)
    await insert_booking(
        room=room,
        owner_id=manager,
        start=local(8, 8),
        end=local(8, 12),
        kind="blackout",
        title="Carpet replacement",
    )
    response = await client.post(
        BOOKINGS, json=body(room, TUESDAY_NINE, TUESDAY_TEN), headers=member_headers
    )

    assert response.status_code == 409
    assert codes(response.json()) == ["in_blackout"]
    assert "Carpet" not in response.text


async def test_a_taken_time_and_broken_rules_are_reported_together(
    *,
    client: AsyncClient,
    room: Room,
    owner_id: uuid.UUID,
    member_headers: dict[str, str],
    insert_booking: InsertBooking,
) -> None:
    await insert_booking(room=room, owner_id=owner_id, start=TUESDAY_NINE, end=TUESDAY_TEN)
    response = await client.post(
        BOOKINGS, json=body(room, TUESDAY_NINE, TUESDAY_TEN, attendees=30), headers=member_headers
    )

    assert response.status_code == 409
    assert codes(response.json()) == ["overlap", "over_capacity"]
    # Other times in a room too small for the booking are no alternative.
    assert response.json()["alternatives"]["slots"] == []


async def test_cancelled_and_rejected_bookings_do_not_hold_the_room(
    *,
    client: AsyncClient,
    room: Room,
    owner_id: uuid.UUID,
    member_headers: dict[str, str],
    insert_booking: InsertBooking,
) -> None:
    for status in ("cancelled", "rejected"):
        await insert_booking(
            room=room, owner_id=owner_id, start=TUESDAY_NINE, end=TUESDAY_TEN, status=status
        )
    response = await client.post(
        BOOKINGS, json=body(room, TUESDAY_NINE, TUESDAY_TEN), headers=member_headers
    )

    assert response.status_code == 201, response.text


async def test_a_taken_time_offers_the_nearest_free_slots_and_free_rooms(
    *,
    client: AsyncClient,
    room: Room,
    create_room: CreateRoom,
    owner_id: uuid.UUID,
    member_headers: dict[str, str],
    insert_booking: InsertBooking,
) -> None:
    await insert_booking(room=room, owner_id=owner_id, start=TUESDAY_NINE, end=TUESDAY_TEN)
    small = await create_room(name="Small", capacity=2)
    large = await create_room(name="Large", capacity=12)
    too_small = await create_room(name="Tiny", capacity=1)
    busy = await create_room(name="Busy", capacity=4)
    await insert_booking(room=busy, owner_id=owner_id, start=local(8, 9, 45), end=local(8, 11))
    buffered = await create_room(name="Buffered", capacity=4, policy={"buffer_minutes": 30})
    await insert_booking(room=buffered, owner_id=owner_id, start=local(8, 10, 15), end=local(8, 11))
    closed = await create_room(name="Closed", capacity=4, policy={"opening_hours": {}})
    inactive = await create_room(name="Inactive", capacity=4, is_active=False)

    response = await client.post(
        BOOKINGS, json=body(room, TUESDAY_NINE, TUESDAY_TEN), headers=member_headers
    )

    assert response.status_code == 409
    alternatives = response.json()["alternatives"]
    assert alternatives["slots"] == [
        {"starts_at": "2030-01-08T07:00:00Z", "ends_at": "2030-01-08T08:00:00Z"},
        {"starts_at": "2030-01-08T09:00:00Z", "ends_at": "2030-01-08T10:00:00Z"},
        {"starts_at": "2030-01-08T09:15:00Z", "ends_at": "2030-01-08T10:15:00Z"},
    ]
    offered = [option["id"] for option in alternatives["rooms"]]
    assert offered == [str(small.id), str(large.id)]
    for refused in (too_small, busy, buffered, closed, inactive, room):
        assert str(refused.id) not in offered
    assert set(alternatives["rooms"][0]) == {
        "id",
        "name",
        "building",
        "floor",
        "capacity",
        "time_zone",
    }


async def test_alternative_slots_keep_clear_of_the_rooms_buffer(
    *,
    client: AsyncClient,
    create_room: CreateRoom,
    owner_id: uuid.UUID,
    member_headers: dict[str, str],
    insert_booking: InsertBooking,
) -> None:
    room = await create_room(policy={"buffer_minutes": 30})
    await insert_booking(
        room=room,
        owner_id=owner_id,
        start=TUESDAY_NINE,
        end=TUESDAY_TEN,
        blocked_until=local(8, 10, 30),
    )
    response = await client.post(
        BOOKINGS, json=body(room, local(8, 9, 30), local(8, 10, 30)), headers=member_headers
    )

    assert response.status_code == 409
    starts = [slot["starts_at"] for slot in response.json()["alternatives"]["slots"]]
    # 10:30 is the first start after the buffer; 08:00 to 09:00 would stay blocked until 09:30.
    assert starts == ["2030-01-08T09:30:00Z", "2030-01-08T09:45:00Z", "2030-01-08T10:00:00Z"]


async def test_members_may_not_override_the_rules(
    client: AsyncClient, room: Room, member_headers: dict[str, str]
) -> None:
    response = await client.post(
        BOOKINGS,
        json=body(room, TUESDAY_NINE, TUESDAY_TEN, override_rules=True),
        headers=member_headers,
    )

    assert response.status_code == 403
    assert response.json()["code"] == "rules-override-forbidden"


@pytest.mark.parametrize("role", [Role.MANAGER, Role.ADMIN])
async def test_managers_override_rules_and_the_override_is_audited(
    *,
    client: AsyncClient,
    room: Room,
    create_user: CreateUser,
    auth_headers: AuthHeaders,
    db_session: AsyncSession,
    role: Role,
) -> None:
    headers = await auth_headers(await create_user(role=role))
    saturday = body(room, local(12, 10), local(12, 11), attendees=12, override_rules=True)
    response = await client.post(BOOKINGS, json=saturday, headers=headers)

    assert response.status_code == 201, response.text
    assert response.json()["rules_overridden"] is True
    booking_id = response.json()["id"]
    assert await audit_actions(db_session, entity_id=booking_id) == [
        "booking.created",
        "booking.rules_overridden",
    ]
    [changes] = await audit_changes(db_session, action="booking.rules_overridden")
    assert changes == {"after": {"violations": ["outside_opening_hours", "over_capacity"]}}


async def test_a_manager_without_override_is_held_to_the_rules(
    client: AsyncClient, room: Room, manager_headers: dict[str, str]
) -> None:
    response = await client.post(
        BOOKINGS, json=body(room, local(12, 10), local(12, 11)), headers=manager_headers
    )

    assert response.status_code == 422
    assert codes(response.json()) == ["outside_opening_hours"]


async def test_no_override_books_a_taken_time_or_a_deactivated_room(
    *,
    client: AsyncClient,
    room: Room,
    create_room: CreateRoom,
    owner_id: uuid.UUID,
    manager_headers: dict[str, str],
    insert_booking: InsertBooking,
) -> None:
    await insert_booking(room=room, owner_id=owner_id, start=TUESDAY_NINE, end=TUESDAY_TEN)
    taken = await client.post(
        BOOKINGS,
        json=body(room, TUESDAY_NINE, TUESDAY_TEN, attendees=40, override_rules=True),
        headers=manager_headers,
    )
    inactive = await create_room(is_active=False)
    closed = await client.post(
        BOOKINGS,
        json=body(inactive, TUESDAY_NINE, TUESDAY_TEN, override_rules=True),
        headers=manager_headers,
    )

    assert taken.status_code == 409
    # Only what refuses is listed; the capacity was set aside by the override.
    assert codes(taken.json()) == ["overlap"]
    assert closed.status_code == 422
    assert codes(closed.json()) == ["room_inactive"]


async def test_an_unknown_room_is_an_invalid_field(
    client: AsyncClient, room: Room, member_headers: dict[str, str]
) -> None:
    response = await client.post(
        BOOKINGS,
        json=body(room, TUESDAY_NINE, TUESDAY_TEN, room_id=str(uuid.uuid4())),
        headers=member_headers,
    )

    assert response.status_code == 422
    assert [error["field"] for error in response.json()["errors"]] == ["room_id"]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"title": "Nul\x00byte"}, "title"),
        ({"note": "Nul\x00byte"}, "note"),
        ({"title": "   "}, "title"),
        ({"starts_at": "2030-01-08T10:00:00+01:00"}, "ends_at"),
        ({"starts_at": "2030-01-08T09:00:00"}, "starts_at"),
        ({"starts_at": 1893484800}, "starts_at"),
        ({"attendees": 0}, "attendees"),
        ({"attendees": "2"}, "attendees"),
        ({"override_rules": "false"}, "override_rules"),
        ({"room_id": "not-a-uuid"}, "room_id"),
        ({"owner_id": str(uuid.uuid4())}, "owner_id"),
    ],
)
async def test_malformed_bodies_are_invalid(
    *,
    client: AsyncClient,
    room: Room,
    member_headers: dict[str, str],
    db_session: AsyncSession,
    fields: dict[str, Any],
    field: str,
) -> None:
    response = await client.post(
        BOOKINGS, json=body(room, TUESDAY_NINE, TUESDAY_TEN) | fields, headers=member_headers
    )

    assert response.status_code == 422, response.text
    assert response.json()["code"] == "validation-failed"
    assert field in [error["field"] for error in response.json()["errors"]]
    assert await booked(db_session) == 0


async def test_anonymous_callers_book_nothing(client: AsyncClient, room: Room) -> None:
    response = await client.post(BOOKINGS, json=body(room, TUESDAY_NINE, TUESDAY_TEN))

    assert response.status_code == 401


async def test_check_answers_ok_and_writes_nothing(
    client: AsyncClient,
    create_room: CreateRoom,
    member_headers: dict[str, str],
    db_session: AsyncSession,
) -> None:
    room = await create_room(policy={"requires_approval": True})
    events = await db_session.scalar(select(func.count()).select_from(AuditEvent))
    response = await client.post(
        f"{BOOKINGS}/check", json=body(room, TUESDAY_NINE, TUESDAY_TEN), headers=member_headers
    )

    assert response.status_code == 200, response.text
    assert response.json() == {
        "ok": True,
        "status": "pending",
        "violations": [],
        "overridden": [],
        "alternatives": {"slots": [], "rooms": []},
    }
    assert await booked(db_session) == 0
    assert await db_session.scalar(select(func.count()).select_from(AuditEvent)) == events


async def test_check_gives_the_verdict_create_would_give(
    *,
    client: AsyncClient,
    room: Room,
    owner_id: uuid.UUID,
    member_headers: dict[str, str],
    insert_booking: InsertBooking,
) -> None:
    await insert_booking(
        room=room, owner_id=owner_id, start=TUESDAY_NINE, end=TUESDAY_TEN, title=SECRET_TITLE
    )
    request = body(room, TUESDAY_NINE, TUESDAY_TEN, attendees=9)
    verdict = await client.post(f"{BOOKINGS}/check", json=request, headers=member_headers)
    refusal = await client.post(BOOKINGS, json=request, headers=member_headers)

    assert verdict.status_code == 200
    assert verdict.json()["ok"] is False
    assert verdict.json()["status"] is None
    assert verdict.json()["violations"] == refusal.json()["violations"]
    assert verdict.json()["alternatives"] == refusal.json()["alternatives"]
    assert codes(verdict.json()) == ["overlap", "over_capacity"]
    assert SECRET_TITLE not in verdict.text


async def test_check_tells_a_manager_what_an_override_sets_aside(
    client: AsyncClient, room: Room, manager_headers: dict[str, str]
) -> None:
    response = await client.post(
        f"{BOOKINGS}/check",
        json=body(room, local(12, 10), local(12, 11), override_rules=True),
        headers=manager_headers,
    )

    assert response.status_code == 200
    assert response.json()["ok"] is True
    assert response.json()["status"] == "confirmed"
    assert [v["code"] for v in response.json()["overridden"]] == ["outside_opening_hours"]


async def test_check_refuses_a_members_override_as_create_does(
    client: AsyncClient, room: Room, member_headers: dict[str, str]
) -> None:
    response = await client.post(
        f"{BOOKINGS}/check",
        json=body(room, TUESDAY_NINE, TUESDAY_TEN, override_rules=True),
        headers=member_headers,
    )

    assert response.status_code == 403


@pytest.mark.parametrize(
    ("attendees", "status", "stored"),
    [(3.0, 201, 3), (2.5, 422, None), ("3", 422, None)],
    ids=["integral-float", "fraction", "string"],
)
async def test_attendees_is_a_json_integer(
    *,
    client: AsyncClient,
    room: Room,
    member_headers: dict[str, str],
    attendees: object,
    status: int,
    stored: int | None,
) -> None:
    response = await client.post(
        BOOKINGS,
        json=body(room, TUESDAY_NINE, TUESDAY_TEN) | {"attendees": attendees},
        headers=member_headers,
    )

    assert response.status_code == status, response.text
    if stored is None:
        assert [error["field"] for error in response.json()["errors"]] == ["attendees"]
    else:
        assert response.json()["attendees"] == stored
