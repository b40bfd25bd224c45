"""Recurring series: expansion on the room's clock, both conflict modes, and the edit scopes."""

from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from httpx import AsyncClient, Response
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.models import AuditEvent
from app.bookings.models import Booking, Room
from app.bookings.series import expand, parse_recurrence
from app.bookings.series_models import BookingSeries
from app.users.schemas import Role
from tests.auth.conftest import audit_actions
from tests.bookings.conftest import BERLIN, BOOKINGS, CreateRoom, InsertBooking, if_match, local
from tests.conftest import AuthHeaders, CreateUser

pytestmark = pytest.mark.usefixtures("fixed_clock")

SERIES = f"{BOOKINGS}/series"
NEW_YORK = ZoneInfo("America/New_York")


def series_body(
    room: Room, start: datetime, end: datetime, rrule: str, **fields: Any
) -> dict[str, Any]:
    """A `SeriesCreate` body; `fields` add or replace members."""
    return {
        "room_id": str(room.id),
        "title": "Stand-up",
        "attendees": 2,
        "starts_at": start.isoformat(),
        "ends_at": end.isoformat(),
        "rrule": rrule,
        **fields,
    }


def starts(answer: Response) -> list[str]:
    """The occurrences' starts of a series answer or refusal, in UTC."""
    return [occurrence["starts_at"] for occurrence in answer.json()["occurrences"]]


def outcomes(answer: Response) -> list[tuple[str, list[str]]]:
    """Each occurrence's outcome and violation codes."""
    return [
        (o["outcome"], [v["code"] for v in o["violations"]]) for o in answer.json()["occurrences"]
    ]


async def count(session: AsyncSession, model: type[Any]) -> int:
    """Rows of a table, as the test's transaction sees them."""
    return await session.scalar(select(func.count()).select_from(model)) or 0


@pytest.mark.parametrize(
    ("zone", "first", "expected"),
    [
        # Berlin springs forward on Sunday 31 March 2030 and falls back on 27 October.
        ("Europe/Berlin", (2030, 3, 25), ["2030-03-25T08:00:00Z", "2030-04-01T07:00:00Z"]),
        ("Europe/Berlin", (2030, 10, 21), ["2030-10-21T07:00:00Z", "2030-10-28T08:00:00Z"]),
        # New York springs forward on Sunday 10 March 2030 and falls back on 3 November.
        ("America/New_York", (2030, 3, 4), ["2030-03-04T14:00:00Z", "2030-03-11T13:00:00Z"]),
        ("America/New_York", (2030, 10, 28), ["2030-10-28T13:00:00Z", "2030-11-04T14:00:00Z"]),
    ],
)
def test_weekly_nine_oclock_stays_nine_oclock_local_across_the_clock_change(
    zone: str, first: tuple[int, int, int], expected: list[str]
) -> None:
    time_zone = ZoneInfo(zone)
    occurrences = expand(
        recurrence=parse_recurrence("FREQ=WEEKLY;COUNT=2"),
        starts_at=datetime(*first, 9, 0, tzinfo=time_zone),
        ends_at=datetime(*first, 10, 0, tzinfo=time_zone),
        time_zone=time_zone,
        limit=10,
    )
    assert [start.strftime("%Y-%m-%dT%H:%M:%SZ") for start, _ in occurrences] == expected
    assert {start.astimezone(time_zone).hour for start, _ in occurrences} == {9}
    assert {(end - start).total_seconds() for start, end in occurrences} == {3600}


def test_interval_byday_and_the_forms_of_until() -> None:
    monday = datetime(2030, 1, 7, 9, tzinfo=BERLIN)

    def days(rule: str) -> list[int]:
        return [
            start.astimezone(BERLIN).day
            for start, _ in expand(
                recurrence=parse_recurrence(rule),
                starts_at=monday,
                ends_at=monday.replace(hour=10),
                time_zone=BERLIN,
                limit=50,
            )
        ]

    assert days("FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,WE;COUNT=4") == [7, 9, 21, 23]
    assert days("FREQ=DAILY;UNTIL=20300110") == [7, 8, 9, 10]
    assert days("FREQ=DAILY;UNTIL=20300110T090000") == [7, 8, 9, 10]
    assert days("FREQ=DAILY;UNTIL=20300110T075959Z") == [7, 8, 9]
    assert parse_recurrence("RRULE:BYDAY=MO;FREQ=WEEKLY;COUNT=3").text() == (
        "FREQ=WEEKLY;BYDAY=MO;COUNT=3"
    )


@pytest.mark.parametrize(
    ("zone", "first", "expected"),
    [
        ("Europe/Berlin", (2030, 3, 25), ["2030-03-25T08:00:00Z", "2030-04-01T07:00:00Z"]),
        ("America/New_York", (2030, 10, 28), ["2030-10-28T13:00:00Z", "2030-11-04T14:00:00Z"]),
    ],
)
async def test_a_member_books_a_weekly_series_across_a_clock_change(
    *,
    client: AsyncClient,
    create_room: CreateRoom,
    member_headers: dict[str, str],
    db_session: AsyncSession,
    zone: str,
    first: tuple[int, int, int],
    expected: list[str],
) -> None:
    time_zone = ZoneInfo(zone)
    room = await create_room(time_zone=zone, policy={"max_ahead_days": 400})
    response = await client.post(
        SERIES,
        json=series_body(
            room,
            datetime(*first, 9, 0, tzinfo=time_zone),
            datetime(*first, 10, 0, tzinfo=time_zone),
            "FREQ=WEEKLY;COUNT=2",
        ),
        headers=member_headers,
    )

    assert response.status_code == 201, response.text
    created = response.json()
    assert response.headers["location"] == f"{SERIES}/{created['series']['id']}"
    assert response.headers["etag"] == '"1"'
    assert created["series"]["rrule"] == "FREQ=WEEKLY;COUNT=2"
    assert created["series"]["time_zone"] == zone
    assert starts(response) == expected
    assert outcomes(response) == [("booked", []), ("booked", [])]
    rows = (await db_session.scalars(select(Booking).order_by(Booking.starts_at))).all()
    assert [str(row.id) for row in rows] == [o["booking_id"] for o in created["occurrences"]]
    assert {str(row.series_id) for row in rows} == {created["series"]["id"]}


async def test_all_or_nothing_books_nothing_when_one_occurrence_is_taken(
    *,
    client: AsyncClient,
    room: Room,
    member_headers: dict[str, str],
    owner_id: Any,
    insert_booking: InsertBooking,
    db_session: AsyncSession,
) -> None:
    await insert_booking(room=room, owner_id=owner_id, start=local(15, 9, 30), end=local(15, 11))
    before = await count(db_session, Booking)
    response = await client.post(
        SERIES,
        json=series_body(room, local(8, 9), local(8, 10), "FREQ=WEEKLY;COUNT=3"),
        headers=member_headers,
    )

    assert response.status_code == 409
    assert response.json()["code"] == "series-refused"
    assert starts(response) == [
        "2030-01-08T08:00:00Z",
        "2030-01-15T08:00:00Z",
        "2030-01-22T08:00:00Z",
    ]
    assert outcomes(response) == [("free", []), ("refused", ["overlap"]), ("free", [])]
    assert all(o["booking_id"] is None for o in response.json()["occurrences"])
    assert await count(db_session, Booking) == before
    assert await count(db_session, BookingSeries) == 0
    assert await count(db_session, AuditEvent) == 0


async def test_skip_conflicts_books_the_free_ones_and_reports_the_rest(
    *,
    client: AsyncClient,
    room: Room,
    member_headers: dict[str, str],
    owner_id: Any,
    insert_booking: InsertBooking,
    db_session: AsyncSession,
) -> None:
    await insert_booking(
        room=room, owner_id=owner_id, start=local(14, 9), end=local(14, 10), kind="blackout"
    )
    # Daily from Friday: the weekend is closed, Monday blacked out, Tuesday free.
    response = await client.post(
        SERIES,
        json=series_body(
            room, local(11, 9), local(11, 10), "FREQ=DAILY;COUNT=5", mode="skip_conflicts"
        ),
        headers=member_headers,
    )

    assert response.status_code == 201, response.text
    assert outcomes(response) == [
        ("booked", []),
        ("skipped", ["outside_opening_hours"]),
        ("skipped", ["outside_opening_hours"]),
        ("skipped", ["in_blackout"]),
        ("booked", []),
    ]
    series_id = response.json()["series"]["id"]
    actions = await audit_actions(db_session)
    assert sorted(actions) == ["booking.created", "booking.created", "booking_series.created"]
    assert await audit_actions(db_session, entity_id=series_id) == ["booking_series.created"]


async def test_nothing_booked_is_refused_in_skip_mode_too(
    client: AsyncClient, room: Room, member_headers: dict[str, str]
) -> None:
    saturday = local(12, 9), local(12, 10)
    response = await client.post(
        SERIES,
        json=series_body(room, *saturday, "FREQ=WEEKLY;COUNT=2", mode="skip_conflicts"),
        headers=member_headers,
    )
    assert response.status_code == 409
    assert [outcome for outcome, _ in outcomes(response)] == ["skipped", "skipped"]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"rrule": "FREQ=MONTHLY;COUNT=2"}, "rrule"),
        ({"rrule": "FREQ=DAILY"}, "rrule"),
        ({"rrule": "FREQ=DAILY;COUNT=2;UNTIL=20300301"}, "rrule"),
        ({"rrule": "FREQ=DAILY;COUNT=2;BYMONTH=1"}, "rrule"),
        ({"rrule": "FREQ=WEEKLY;BYDAY=1MO;COUNT=2"}, "rrule"),
        ({"rrule": "FREQ=DAILY;COUNT=101"}, "rrule"),
        ({"exdates": ["2030-01-09T09:30:00+01:00"]}, "exdates.0"),
        ({"occurrences": 3}, "occurrences"),
    ],
)
async def test_a_rule_outside_the_subset_or_the_cap_is_a_422_naming_the_field(
    *,
    client: AsyncClient,
    room: Room,
    member_headers: dict[str, str],
    fields: dict[str, Any],
    field: str,
) -> None:
    data = series_body(room, local(8, 9), local(8, 10), "FREQ=DAILY;COUNT=3") | fields
    response = await client.post(SERIES, json=data, headers=member_headers)
    assert response.status_code == 422, response.text
    assert field in [error["field"] for error in response.json()["errors"]]


async def test_exdates_leave_occurrences_out(
    client: AsyncClient, room: Room, member_headers: dict[str, str]
) -> None:
    response = await client.post(
        SERIES,
        json=series_body(
            room,
            local(7, 9),
            local(7, 10),
            "FREQ=DAILY;UNTIL=20300111",
            exdates=[local(9, 9).isoformat()],
        ),
        headers=member_headers,
    )
    assert response.status_code == 201, response.text
    assert [start[8:10] for start in starts(response)] == ["07", "08", "10", "11"]
    assert response.json()["series"]["exdates"] == ["2030-01-09T08:00:00Z"]


@pytest.fixture
def small_quota(booking_settings: Callable[..., None]) -> None:
    """Members may hold 3 unended bookings while the test runs."""
    booking_settings(member_max_active_future=3)


@pytest.mark.usefixtures("small_quota")
async def test_every_occurrence_counts_against_the_quota(
    client: AsyncClient, room: Room, member_headers: dict[str, str]
) -> None:
    response = await client.post(
        SERIES,
        json=series_body(
            room, local(8, 9), local(8, 10), "FREQ=WEEKLY;COUNT=5", mode="skip_conflicts"
        ),
        headers=member_headers,
    )
    assert response.status_code == 201, response.text
    assert outcomes(response) == [("booked", [])] * 3 + [("skipped", ["quota_exceeded"])] * 2


async def make_series(
    client: AsyncClient, room: Room, headers: dict[str, str], count: int = 4
) -> dict[str, Any]:
    """A weekly Tuesday 09:00 series of `count` from 8 January; its creation answer."""
    response = await client.post(
        SERIES,
        json=series_body(room, local(8, 9), local(8, 10), f"FREQ=WEEKLY;COUNT={count}"),
        headers=headers,
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def test_the_owner_and_managers_read_a_series_others_get_404(
    *,
    client: AsyncClient,
    room: Room,
    create_user: CreateUser,
    auth_headers: AuthHeaders,
    member_headers: dict[str, str],
    manager_headers: dict[str, str],
) -> None:
    made = await make_series(client, room, member_headers)
    url = f"{SERIES}/{made['series']['id']}"
    other = await auth_headers(await create_user(role=Role.MEMBER))

    own = await client.get(url, headers=member_headers)
    managed = await client.get(url, headers=manager_headers)
    hidden = await client.get(url, headers=other)

    assert own.status_code == managed.status_code == 200
    assert own.headers["etag"] == '"1"'
    assert [o["id"] for o in own.json()["occurrences"]] == [
        o["booking_id"] for o in made["occurrences"]
    ]
    assert {o["series_id"] for o in own.json()["occurrences"]} == {made["series"]["id"]}
    assert hidden.status_code == 404
    assert hidden.json()["code"] == "series-not-found"


async def test_cancel_one_then_following_then_all(
    client: AsyncClient, room: Room, member_headers: dict[str, str], db_session: AsyncSession
) -> None:
    made = await make_series(client, room, member_headers, count=5)
    url = f"{SERIES}/{made['series']['id']}"
    ids = [o["booking_id"] for o in made["occurrences"]]

    one = await client.post(
        f"{url}/cancel",
        json={"scope": "one", "occurrence_id": ids[1], "reason": "Holiday"},
        headers=if_match(member_headers, 1),
    )
    following = await client.post(
        f"{url}/cancel",
        json={"scope": "following", "occurrence_id": ids[3], "reason": "Project ends"},
        headers=if_match(member_headers, 2),
    )
    every = await client.post(
        f"{url}/cancel",
        json={"scope": "all", "reason": "Team split"},
        headers=if_match(member_headers, 3),
    )
    again = await client.post(
        f"{url}/cancel",
        json={"scope": "all", "reason": "Again"},
        headers=if_match(member_headers, 4),
    )

    assert [c["id"] for c in one.json()["changed"]] == [ids[1]]
    assert [c["id"] for c in following.json()["changed"]] == ids[3:]
    assert [c["id"] for c in every.json()["changed"]] == [ids[0], ids[2]]
    assert every.headers["etag"] == '"4"'
    assert {c["status"] for c in every.json()["changed"]} == {"cancelled"}
    assert again.status_code == 409
    assert again.json()["code"] == "series-nothing-to-change"
    actions = await audit_actions(db_session)
    assert actions.count("booking.cancelled") == 5
    assert actions.count("booking_series.cancelled") == 3


async def test_a_series_operation_needs_the_current_version(
    client: AsyncClient, room: Room, member_headers: dict[str, str]
) -> None:
    made = await make_series(client, room, member_headers)
    url = f"{SERIES}/{made['series']['id']}"
    missing = await client.post(
        f"{url}/cancel", json={"scope": "all", "reason": "x"}, headers=member_headers
    )
    stale = await client.patch(
        url, json={"scope": "all", "title": "Retro"}, headers=if_match(member_headers, 7)
    )
    no_anchor = await client.patch(
        url, json={"scope": "following", "title": "Retro"}, headers=if_match(member_headers, 1)
    )

    assert missing.status_code == 428
    assert stale.status_code == 412
    assert no_anchor.status_code == 422
    assert "occurrence_id" in [error["field"] for error in no_anchor.json()["errors"]]


async def test_edit_all_and_following_each_occurrence_judged_and_audited(
    client: AsyncClient, room: Room, member_headers: dict[str, str], db_session: AsyncSession
) -> None:
    made = await make_series(client, room, member_headers)
    url = f"{SERIES}/{made['series']['id']}"
    ids = [o["booking_id"] for o in made["occurrences"]]

    renamed = await client.patch(
        url, json={"scope": "all", "title": "Retro"}, headers=if_match(member_headers, 1)
    )
    crowded = await client.patch(
        url,
        json={"scope": "following", "occurrence_id": ids[2], "attendees": 9},
        headers=if_match(member_headers, 2),
    )
    bigger = await client.patch(
        url,
        json={"scope": "following", "occurrence_id": ids[2], "attendees": 6},
        headers=if_match(member_headers, 2),
    )

    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["series"]["title"] == "Retro"
    assert {c["title"] for c in renamed.json()["changed"]} == {"Retro"}
    assert crowded.status_code == 422
    assert [v["code"] for v in crowded.json()["violations"]] == ["over_capacity"]
    assert bigger.status_code == 200
    assert [c["id"] for c in bigger.json()["changed"]] == ids[2:]
    assert bigger.json()["series"]["attendees"] == 2
    actions = await audit_actions(db_session)
    assert actions.count("booking.updated") == 4 + 2
    assert actions.count("booking_series.updated") == 2


async def test_a_retried_series_is_replayed_not_booked_twice(
    client: AsyncClient, room: Room, member_headers: dict[str, str], db_session: AsyncSession
) -> None:
    data = series_body(room, local(8, 9), local(8, 10), "FREQ=WEEKLY;COUNT=2")
    headers = {**member_headers, "Idempotency-Key": "series-1"}
    first = await client.post(SERIES, json=data, headers=headers)
    retry = await client.post(SERIES, json=data, headers=headers)

    assert first.status_code == retry.status_code == 201
    assert retry.headers["idempotent-replayed"] == "true"
    assert retry.json() == first.json()
    assert await count(db_session, BookingSeries) == 1


async def test_following_occurrences_move_to_new_local_times_across_a_clock_change(
    client: AsyncClient, create_room: CreateRoom, member_headers: dict[str, str]
) -> None:
    room = await create_room(time_zone="America/New_York", policy={"max_ahead_days": 400})
    first = datetime(2030, 10, 21, 9, tzinfo=NEW_YORK)
    made = await client.post(
        SERIES,
        json=series_body(room, first, first.replace(hour=10), "FREQ=WEEKLY;COUNT=3"),
        headers=member_headers,
    )
    url = f"{SERIES}/{made.json()['series']['id']}"
    ids = [o["booking_id"] for o in made.json()["occurrences"]]

    moved = await client.patch(
        url,
        json={
            "scope": "following",
            "occurrence_id": ids[1],
            "start_time": "10:30",
            "end_time": "12:00",
        },
        headers=if_match(member_headers, 1),
    )

    assert moved.status_code == 200, moved.text
    # 10:30 New York is 14:30 UTC in October and 15:30 UTC after 3 November.
    assert [(c["starts_at"], c["ends_at"]) for c in moved.json()["changed"]] == [
        ("2030-10-28T14:30:00Z", "2030-10-28T16:00:00Z"),
        ("2030-11-04T15:30:00Z", "2030-11-04T17:00:00Z"),
    ]
    assert moved.json()["series"]["starts_at"] == "2030-10-21T13:00:00Z"


async def test_a_move_onto_a_taken_time_refuses_the_whole_edit(
    client: AsyncClient,
    room: Room,
    member_headers: dict[str, str],
    owner_id: Any,
    insert_booking: InsertBooking,
) -> None:
    made = await make_series(client, room, member_headers, count=3)
    url = f"{SERIES}/{made['series']['id']}"
    await insert_booking(room=room, owner_id=owner_id, start=local(22, 11), end=local(22, 12))

    refused = await client.patch(
        url,
        json={"scope": "all", "start_time": "11:00", "end_time": "12:00", "title": "Later"},
        headers=if_match(member_headers, 1),
    )
    lonely = await client.patch(
        url, json={"scope": "all", "start_time": "11:00"}, headers=if_match(member_headers, 1)
    )
    after = await client.get(url, headers=member_headers)

    assert refused.status_code == 409
    assert [v["code"] for v in refused.json()["violations"]] == ["overlap"]
    assert lonely.status_code == 422
    assert "end_time" in [error["field"] for error in lonely.json()["errors"]]
    assert after.headers["etag"] == '"1"'
    assert {(o["title"], o["starts_at"][11:16]) for o in after.json()["occurrences"]} == {
        ("Stand-up", "08:00")
    }
