"""Calendar feeds: tokens issued, replaced and revoked; feeds parsed back with `icalendar`."""

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from fastapi import FastAPI
from httpx import AsyncClient, Response
from icalendar import Calendar, Event
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.models import AuditEvent
from app.bookings.models import Booking, CalendarToken, Room
from app.core.config import LogSettings
from app.core.logging import configure_logging
from app.users.schemas import Role
from tests.bookings.conftest import (
    BOOKINGS,
    NOW,
    CreateRoom,
    InsertBooking,
    if_match,
    local,
)
from tests.conftest import AuthHeaders, CreateUser
from tests.core.support import captured_logs, captured_statements

pytestmark = pytest.mark.usefixtures("fixed_clock")

TOKEN_PATH = "/api/v1/users/me/calendar-token"
NEW_YORK = ZoneInfo("America/New_York")


async def issue(client: AsyncClient, headers: dict[str, str]) -> str:
    """Get a feed token through the API; return the feed's path."""
    response = await client.post(TOKEN_PATH, headers=headers)
    assert response.status_code == 201, response.text
    answer = response.json()
    assert answer["feed_url"] == f"http://testserver/api/v1/calendar/{answer['token']}.ics"
    assert response.headers["cache-control"] == "no-store"
    return f"/api/v1/calendar/{answer['token']}.ics"


def events_of(response: Response) -> dict[str, Event]:
    """The feed's events by UID, parsed back with `icalendar`."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/calendar; charset=utf-8"
    calendar = Calendar.from_ical(response.content)
    return {str(event["UID"]): event for event in calendar.events}


def gone(response: Response) -> bool:
    """Whether the answer is the feed's one 404."""
    return response.status_code == 404 and response.json()["code"] == "calendar-feed-not-found"


@dataclass(frozen=True)
class Subscriber:
    """A member with one booking on Tuesday 10:00 to 11:00 and the path of their feed."""

    headers: dict[str, str]
    booking: Booking
    feed: str


@pytest.fixture
async def subscriber(
    client: AsyncClient,
    create_user: CreateUser,
    auth_headers: AuthHeaders,
    room: Room,
    insert_booking: InsertBooking,
) -> Subscriber:
    """A member who booked the room and got a feed token."""
    member = await create_user()
    headers = await auth_headers(member)
    booking = await insert_booking(room=room, owner_id=member, start=local(8, 10), end=local(8, 11))
    return Subscriber(headers=headers, booking=booking, feed=await issue(client, headers))


async def test_the_personal_feed_holds_ones_active_bookings_without_a_bearer_header(
    client: AsyncClient,
    create_user: CreateUser,
    auth_headers: AuthHeaders,
    create_room: CreateRoom,
    insert_booking: InsertBooking,
) -> None:
    member = await create_user()
    other = await create_user()
    berlin = await create_room(name="Aurora", building="Main", floor="2")
    new_york = await create_room(name="Hudson", building="East", time_zone="America/New_York")
    confirmed = await insert_booking(
        room=berlin, owner_id=member, start=local(8, 10), end=local(8, 11), note="Bring the plan"
    )
    pending = await insert_booking(
        room=new_york, owner_id=member, start=local(9, 15), end=local(9, 16), status="pending"
    )
    for status in ("cancelled", "rejected"):
        await insert_booking(
            room=berlin, owner_id=member, start=local(10, 9), end=local(10, 10), status=status
        )
    await insert_booking(room=berlin, owner_id=other, start=local(11, 9), end=local(11, 10))
    await insert_booking(
        room=berlin, owner_id=member, start=local(14, 9), end=local(14, 10), kind="blackout"
    )
    past, ahead = NOW - timedelta(days=31), NOW + timedelta(days=181)
    for start in (past, ahead):
        await insert_booking(
            room=berlin, owner_id=member, start=start, end=start + timedelta(hours=1)
        )
    feed = await issue(client, await auth_headers(member))

    response = await client.get(feed)

    events = events_of(response)
    assert set(events) == {str(confirmed.id), str(pending.id)}
    event = events[str(confirmed.id)]
    assert event["SUMMARY"] == "Team meeting"
    assert event["DESCRIPTION"] == "Bring the plan"
    assert event["LOCATION"] == "Aurora, Main, floor 2"
    assert event["STATUS"] == "CONFIRMED"
    assert event["SEQUENCE"] == 0
    assert event.stamp == confirmed.updated_at.replace(microsecond=0)  # whole seconds
    assert event.start == local(8, 10)
    assert event.end == local(8, 11)
    assert event["DTSTART"].params["TZID"] == "Europe/Berlin"
    away = events[str(pending.id)]
    assert away["STATUS"] == "TENTATIVE"
    assert away["DTSTART"].params["TZID"] == "America/New_York"
    assert away.start == datetime(2030, 1, 9, 9, 0, tzinfo=NEW_YORK)  # 15:00 in Berlin
    assert away["DTSTART"].to_ical() == b"20300109T090000"  # on New York's wall clock
    calendar = Calendar.from_ical(response.content)
    assert {zone.tz_name for zone in calendar.timezones} == {"Europe/Berlin", "America/New_York"}
    assert calendar.get_missing_tzids() == set()
    assert response.headers["cache-control"] == "private, no-cache"


async def test_a_change_bumps_the_sequence_and_the_etag(
    client: AsyncClient, subscriber: Subscriber
) -> None:
    feed, booking = subscriber.feed, subscriber.booking
    first = await client.get(feed)
    tag = first.headers["etag"]

    unchanged = await client.get(feed, headers={"If-None-Match": tag})
    again = await client.get(feed)
    moved = await client.patch(
        f"{BOOKINGS}/{booking.id}",
        json={
            "title": "Planning, moved",
            "starts_at": local(8, 12).isoformat(),
            "ends_at": local(8, 13).isoformat(),
        },
        headers=if_match(subscriber.headers, booking.version),
    )
    assert moved.status_code == 200, moved.text
    changed = await client.get(feed, headers={"If-None-Match": tag})

    assert unchanged.status_code == 304
    assert unchanged.content == b""
    assert unchanged.headers["etag"] == tag
    assert again.content == first.content  # nothing changed, byte for byte
    event = events_of(changed)[str(booking.id)]
    assert changed.headers["etag"] != tag
    assert event["SEQUENCE"] == 1
    assert event["SUMMARY"] == "Planning, moved"
    assert event.start == local(8, 12)
    updated_at = datetime.fromisoformat(moved.json()["updated_at"])
    assert event.stamp == updated_at.replace(microsecond=0)


async def test_a_cancelled_booking_leaves_the_feed(
    client: AsyncClient, subscriber: Subscriber
) -> None:
    feed, booking = subscriber.feed, subscriber.booking
    before = await client.get(feed)

    cancelled = await client.post(
        f"{BOOKINGS}/{booking.id}/cancel",
        json={"reason": "Not needed"},
        headers=if_match(subscriber.headers, booking.version),
    )

    assert cancelled.status_code == 200, cancelled.text
    after = await client.get(feed, headers={"If-None-Match": before.headers["etag"]})
    assert str(booking.id) in events_of(before)
    assert events_of(after) == {}


async def test_the_token_is_stored_only_as_its_hash(
    client: AsyncClient,
    create_user: CreateUser,
    auth_headers: AuthHeaders,
    db_session: AsyncSession,
) -> None:
    member = await create_user()

    response = await client.post(TOKEN_PATH, headers=await auth_headers(member))

    token = response.json()["token"]
    assert len(token) >= 43  # 256 random bits, URL-safe base64
    row = await db_session.get(CalendarToken, member, populate_existing=True)
    assert row is not None
    assert row.token_hash == hashlib.sha256(token.encode()).digest()
    assert token.encode() not in row.token_hash


async def test_regenerating_replaces_the_token_and_revoking_ends_it(
    client: AsyncClient,
    create_user: CreateUser,
    auth_headers: AuthHeaders,
    db_session: AsyncSession,
) -> None:
    member = await create_user()
    headers = await auth_headers(member)
    old = await issue(client, headers)
    new = await issue(client, headers)

    assert gone(await client.get(old))
    assert events_of(await client.get(new)) == {}

    revoked = await client.delete(TOKEN_PATH, headers=headers)
    again = await client.delete(TOKEN_PATH, headers=headers)

    assert revoked.status_code == 204
    assert again.status_code == 204  # nothing left to revoke: the same answer
    assert gone(await client.get(new))
    entries = (
        await db_session.scalars(
            select(AuditEvent)
            .where(AuditEvent.entity_id == str(member), AuditEvent.entity_type == "calendar_token")
            .order_by(AuditEvent.seq)
        )
    ).all()
    assert [entry.action for entry in entries] == [
        "calendar_token.created",
        "calendar_token.revoked",
        "calendar_token.created",
        "calendar_token.revoked",
    ]
    assert all(entry.actor_id == member for entry in entries)
    assert [set(entry.changes) for entry in entries] == [
        {"after"},
        {"before"},  # regenerating revokes the first token ...
        {"after"},  # ... and issues the second
        {"before"},
    ]
    assert all("token" not in repr(entry.changes) for entry in entries)


@pytest.mark.parametrize("token", ["x", "A" * 43, "not a token", "a.b", "%E2%82%AC", "B" * 128])
async def test_unknown_tokens_all_get_the_same_404(client: AsyncClient, token: str) -> None:
    personal = await client.get(f"/api/v1/calendar/{token}.ics")
    room = await client.get(f"/api/v1/calendar/{token}/rooms/{uuid.uuid4()}.ics")

    assert gone(personal)
    assert gone(room)
    assert personal.json()["detail"] == room.json()["detail"]


async def test_an_unknown_token_costs_one_lookup_like_a_known_one(
    app: FastAPI, client: AsyncClient, create_user: CreateUser, auth_headers: AuthHeaders
) -> None:
    feed = await issue(client, await auth_headers(await create_user()))
    unknown = f"/api/v1/calendar/{'C' * 43}.ics"

    with captured_statements(app.state.engine) as missed:
        assert gone(await client.get(unknown))
    with captured_statements(app.state.engine) as found:
        assert (await client.get(feed)).status_code == 200

    lookups = [s for s, _ in missed if "SAVEPOINT" not in s]
    served = [s for s, _ in found if "SAVEPOINT" not in s]
    assert len(lookups) == 1, lookups
    assert lookups[0] == served[0]  # the same indexed lookup, then the known token's bookings
    assert "calendar_tokens.token_hash" in lookups[0]


async def test_a_deactivated_persons_feed_is_gone(
    client: AsyncClient,
    create_user: CreateUser,
    auth_headers: AuthHeaders,
    admin_headers: dict[str, str],
) -> None:
    member = await create_user()
    feed = await issue(client, await auth_headers(member))
    user = await client.get(f"/api/v1/users/{member}", headers=admin_headers)

    deactivated = await client.delete(
        f"/api/v1/users/{member}", headers={**admin_headers, "If-Match": user.headers["etag"]}
    )

    assert deactivated.status_code in (200, 204), deactivated.text
    assert gone(await client.get(feed))


@pytest.mark.parametrize("role", [Role.MANAGER, Role.ADMIN])
async def test_managers_and_admins_read_a_rooms_feed_with_their_token(
    *,
    client: AsyncClient,
    create_user: CreateUser,
    auth_headers: AuthHeaders,
    create_room: CreateRoom,
    insert_booking: InsertBooking,
    role: Role,
) -> None:
    manager = await create_user(role=role)
    members = [await create_user(), await create_user()]
    room = await create_room(name="Borealis", time_zone="America/New_York")
    elsewhere = await create_room()
    held = [
        await insert_booking(room=room, owner_id=members[0], start=local(8, 15), end=local(8, 16)),
        await insert_booking(
            room=room, owner_id=members[1], start=local(9, 15), end=local(9, 16), status="pending"
        ),
    ]
    await insert_booking(
        room=room, owner_id=members[1], start=local(10, 15), end=local(10, 16), status="cancelled"
    )
    await insert_booking(room=elsewhere, owner_id=members[0], start=local(8, 15), end=local(8, 16))
    feed = await issue(client, await auth_headers(manager))
    room_feed = feed.removesuffix(".ics") + f"/rooms/{room.id}.ics"

    response = await client.get(room_feed)

    events = events_of(response)
    assert set(events) == {str(booking.id) for booking in held}
    assert {str(event["DTSTART"].params["TZID"]) for event in events.values()} == {
        "America/New_York"
    }
    calendar = Calendar.from_ical(response.content)
    assert calendar.calendar_name == "Roombook: Borealis"
    assert gone(await client.get(feed.removesuffix(".ics") + f"/rooms/{uuid.uuid4()}.ics"))


async def test_a_members_token_opens_no_room_feed(
    client: AsyncClient, create_user: CreateUser, auth_headers: AuthHeaders, room: Room
) -> None:
    feed = await issue(client, await auth_headers(await create_user()))

    response = await client.get(feed.removesuffix(".ics") + f"/rooms/{room.id}.ics")

    assert gone(response)


async def test_the_window_follows_the_settings(
    *,
    app: FastAPI,
    client: AsyncClient,
    subscriber: Subscriber,
    room: Room,
    insert_booking: InsertBooking,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    owner = subscriber.booking.owner_id
    await insert_booking(room=room, owner_id=owner, start=local(21, 10), end=local(21, 11))
    narrow = app.state.settings.calendar.model_copy(update={"ahead_days": 7})
    monkeypatch.setattr(app.state.settings, "calendar", narrow)

    events = events_of(await client.get(subscriber.feed))

    assert set(events) == {str(subscriber.booking.id)}  # 21 January is 14 days ahead
    assert NOW.astimezone(UTC) + timedelta(days=7) < local(21, 10)


async def test_the_token_in_the_path_never_reaches_a_log_line(
    client: AsyncClient, subscriber: Subscriber
) -> None:
    token = subscriber.feed.removeprefix("/api/v1/calendar/").removesuffix(".ics")
    configure_logging(LogSettings(level="INFO"), production=True)
    try:
        with captured_logs() as buffer:
            assert (await client.get(subscriber.feed)).status_code == 200
            assert gone(await client.get(f"/api/v1/calendar/{token}x.ics"))
    finally:
        configure_logging(LogSettings(), production=False)

    output = buffer.getvalue()
    assert token not in output
    access = [json.loads(line) for line in output.splitlines() if "roombook.access" in line]
    assert [line["path"] for line in access] == ["/api/v1/calendar/[redacted].ics"] * 2
