"""`/rooms`: create, read, list, change, deactivate and reactivate rooms over HTTP."""

from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from app.bookings.models import Room
from tests.auth.conftest import audit_actions, audit_changes
from tests.bookings.conftest import BOOKINGS, CreateRoom, body, if_match, local

pytestmark = pytest.mark.usefixtures("fixed_clock")

ROOMS = "/api/v1/rooms"


def room_body(**fields: Any) -> dict[str, Any]:
    """A `RoomCreate` body; `fields` add or replace members."""
    return {
        "name": "Aurora",
        "building": "Main",
        "floor": "2",
        "capacity": 6,
        "amenities": ["whiteboard", "projector"],
        "time_zone": "Europe/Berlin",
        **fields,
    }


def error_fields(response: Any) -> list[str]:
    """The fields a 422 problem names."""
    assert response.status_code == 422, response.text
    return [error["field"] for error in response.json()["errors"]]


async def test_a_manager_creates_a_room_and_it_is_audited(
    client: AsyncClient, manager_headers: dict[str, str], db_session: AsyncSession
) -> None:
    policy = {
        "opening_hours": {"sat": [{"opens": "09:00", "closes": "13:00"}]},
        "buffer_minutes": 10,
    }
    response = await client.post(
        ROOMS, json=room_body(policy=policy, description="South light"), headers=manager_headers
    )

    assert response.status_code == 201, response.text
    created = response.json()
    assert response.headers["location"] == f"{ROOMS}/{created['id']}"
    assert response.headers["etag"] == '"1"'
    assert created["amenities"] == ["projector", "whiteboard"]
    assert created["is_active"] is True
    overridden = {name: value for name, value in created["policy"].items() if value is not None}
    assert overridden == {
        "opening_hours": {"sat": [{"opens": "09:00:00", "closes": "13:00:00"}]},
        "buffer_minutes": 10,
    }
    effective = created["effective_policy"]
    assert effective["buffer_minutes"] == 10
    assert effective["slot_minutes"] == 15
    assert list(effective["opening_hours"]) == ["sat"]
    assert created["created_at"].endswith("Z")
    assert await audit_actions(db_session, entity_id=created["id"]) == ["room.created"]
    [changes] = await audit_changes(db_session, action="room.created")
    assert changes["after"]["name"] == "Aurora"
    assert changes["after"]["policy"]["buffer_minutes"] == 10


async def test_a_name_taken_in_any_case_is_a_conflict(
    client: AsyncClient, manager_headers: dict[str, str], create_room: CreateRoom
) -> None:
    await create_room(name="Aurora")
    response = await client.post(ROOMS, json=room_body(name="AURORA"), headers=manager_headers)

    assert response.status_code == 409
    assert response.json()["code"] == "room-name-taken"


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"time_zone": "Europe/Atlantis"}, "time_zone"),
        ({"time_zone": "localtime"}, "time_zone"),
        ({"capacity": 0}, "capacity"),
        ({"capacity": "6"}, "capacity"),
        ({"amenities": ["Projector"]}, "amenities.0"),
        ({"amenities": ["video conference"]}, "amenities.0"),
        ({"name": "   "}, "name"),
        ({"name": "Aur\x00ora"}, "name"),
        ({"colour": "red"}, "colour"),
        ({"policy": {"slot_minutes": "15"}}, "policy.slot_minutes"),
        ({"policy": {"slot_minutes": 0}}, "policy.slot_minutes"),
        ({"policy": {"requires_approval": "yes"}}, "policy.requires_approval"),
        ({"policy": {"cleaning": 5}}, "policy.cleaning"),
        (
            {"policy": {"opening_hours": {"mon": [{"opens": 28800, "closes": "12:00"}]}}},
            "policy.opening_hours.mon.0.opens",
        ),
        ({"policy": {"opening_hours": {"monday": []}}}, "policy.opening_hours.monday.[key]"),
        (
            {"policy": {"opening_hours": {"mon": [{"opens": "12:00", "closes": "09:00"}]}}},
            "policy.opening_hours.mon.0",
        ),
    ],
)
async def test_invalid_rooms_are_refused_naming_the_field(
    client: AsyncClient, manager_headers: dict[str, str], fields: dict[str, Any], field: str
) -> None:
    response = await client.post(ROOMS, json=room_body(**fields), headers=manager_headers)

    assert error_fields(response) == [field]


@pytest.mark.parametrize(
    "policy",
    [
        {"min_duration_minutes": 600},
        {
            "opening_hours": {
                "mon": [
                    {"opens": "08:00", "closes": "12:00"},
                    {"opens": "11:00", "closes": "14:00"},
                ]
            }
        },
    ],
)
async def test_overrides_that_make_an_inconsistent_policy_are_refused(
    client: AsyncClient, manager_headers: dict[str, str], policy: dict[str, Any]
) -> None:
    response = await client.post(ROOMS, json=room_body(policy=policy), headers=manager_headers)

    assert error_fields(response) == ["policy"]
    assert response.json()["errors"][0]["type"] == "policy_inconsistent"


async def test_anyone_signed_in_reads_a_room_with_its_etag(
    client: AsyncClient, member_headers: dict[str, str], room: Room
) -> None:
    response = await client.get(f"{ROOMS}/{room.id}", headers=member_headers)

    assert response.status_code == 200
    assert response.headers["etag"] == '"1"'
    assert response.json()["time_zone"] == "Europe/Berlin"
    assert response.json()["effective_policy"]["opening_hours"]["mon"] == [
        {"opens": "08:00:00", "closes": "20:00:00"}
    ]


async def test_an_unknown_room_is_not_found(
    client: AsyncClient, member_headers: dict[str, str], manager_headers: dict[str, str]
) -> None:
    missing = f"{ROOMS}/00000000-0000-4000-8000-000000000000"
    read = await client.get(missing, headers=member_headers)
    change = await client.patch(missing, json={}, headers=if_match(manager_headers, 1))

    assert (read.status_code, read.json()["code"]) == (404, "room-not-found")
    assert (change.status_code, change.json()["code"]) == (404, "room-not-found")


async def test_members_may_not_change_a_room_whether_or_not_it_exists(
    client: AsyncClient, member_headers: dict[str, str], room: Room
) -> None:
    response = await client.patch(
        f"{ROOMS}/{room.id}", json={"capacity": 9}, headers=if_match(member_headers, 1)
    )

    assert response.status_code == 403
    assert response.json()["code"] == "role-forbidden"


async def _names(client: AsyncClient, headers: dict[str, str], **params: Any) -> list[str]:
    response = await client.get(ROOMS, params=params, headers=headers)
    assert response.status_code == 200, response.text
    return [item["name"] for item in response.json()["items"]]


async def test_the_list_filters_by_capacity_amenities_location_and_text(
    client: AsyncClient, member_headers: dict[str, str], create_room: CreateRoom
) -> None:
    await create_room(name="Alpha", capacity=4, amenities=["projector"], building="Main")
    await create_room(
        name="Beta",
        capacity=12,
        amenities=["projector", "video"],
        building="Annex",
        description="Corner room, 100% daylight",
    )
    await create_room(name="Gamma", capacity=20, amenities=["video"], building="main")
    await create_room(name="Delta_1", capacity=8, is_active=False, building="Annex")

    assert await _names(client, member_headers) == ["Alpha", "Beta", "Delta_1", "Gamma"]
    assert await _names(client, member_headers, min_capacity=10) == ["Beta", "Gamma"]
    assert await _names(client, member_headers, amenities=["projector", "video"]) == ["Beta"]
    assert await _names(client, member_headers, amenities="video") == ["Beta", "Gamma"]
    assert await _names(client, member_headers, location="MAIN") == ["Alpha", "Gamma"]
    assert await _names(client, member_headers, q="corner") == ["Beta"]
    assert await _names(client, member_headers, q="% d") == ["Beta"]
    assert await _names(client, member_headers, q="A_1") == ["Delta_1"]
    assert await _names(client, member_headers, q="amm") == ["Gamma"]
    assert await _names(client, member_headers, location="Annex", min_capacity=9) == ["Beta"]
    every_filter = {"min_capacity": 5, "amenities": "video", "location": "MAIN", "q": "mm"}
    assert await _names(client, member_headers, **every_filter) == ["Gamma"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"min_capacity": "0"}, "min_capacity"),
        ({"amenities": "Video"}, "amenities.0"),
        ({"q": ""}, "q"),
        ({"location": "Main\x01"}, "location"),
    ],
)
async def test_invalid_list_filters_are_refused(
    client: AsyncClient, member_headers: dict[str, str], params: dict[str, str], field: str
) -> None:
    response = await client.get(ROOMS, params=params, headers=member_headers)

    assert error_fields(response) == [field]


async def test_the_list_pages_through_every_room_once_by_name(
    client: AsyncClient, member_headers: dict[str, str], create_room: CreateRoom
) -> None:
    for index in range(7):
        await create_room(name=f"Room {index:02d}")
    seen: list[str] = []
    params: dict[str, Any] = {"limit": 3}
    while True:
        response = await client.get(ROOMS, params=params, headers=member_headers)
        page = response.json()
        seen += [item["name"] for item in page["items"]]
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]

    assert seen == [f"Room {index:02d}" for index in range(7)]


async def test_a_change_needs_the_current_etag(
    client: AsyncClient, manager_headers: dict[str, str], room: Room
) -> None:
    url = f"{ROOMS}/{room.id}"
    missing = await client.patch(url, json={"capacity": 9}, headers=manager_headers)
    star = await client.patch(
        url, json={"capacity": 9}, headers={**manager_headers, "If-Match": "*"}
    )
    stale = await client.patch(url, json={"capacity": 9}, headers=if_match(manager_headers, 7))
    invalid = await client.patch(url, json={"capacity": -1}, headers=manager_headers)

    assert (missing.status_code, star.status_code, stale.status_code) == (428, 428, 412)
    assert stale.json()["code"] == "stale-version"
    assert error_fields(invalid) == ["capacity"]


async def test_a_change_bumps_the_version_and_audits_only_what_changed(
    client: AsyncClient,
    manager_headers: dict[str, str],
    create_room: CreateRoom,
    db_session: AsyncSession,
) -> None:
    room = await create_room(floor="3", capacity=8)
    response = await client.patch(
        f"{ROOMS}/{room.id}",
        json={
            "capacity": 10,
            "floor": None,
            "building": room.building,
            "policy": {"slot_minutes": 30},
        },
        headers=if_match(manager_headers, 1),
    )

    assert response.status_code == 200, response.text
    assert response.headers["etag"] == '"2"'
    changed = response.json()
    assert (changed["capacity"], changed["floor"], changed["version"]) == (10, None, 2)
    assert changed["effective_policy"]["slot_minutes"] == 30
    [changes] = await audit_changes(db_session, action="room.updated")
    assert changes["before"] == {"capacity": 8, "floor": "3", "policy": {}}
    assert changes["after"] == {"capacity": 10, "floor": None, "policy": {"slot_minutes": 30}}


async def test_policy_replaces_the_overrides_and_an_empty_one_restores_the_defaults(
    client: AsyncClient, manager_headers: dict[str, str], create_room: CreateRoom
) -> None:
    room = await create_room(policy={"buffer_minutes": 15, "slot_minutes": 30})
    response = await client.patch(
        f"{ROOMS}/{room.id}", json={"policy": {}}, headers=if_match(manager_headers, 1)
    )

    assert set(response.json()["policy"].values()) == {None}
    assert response.json()["effective_policy"]["buffer_minutes"] == 0


async def test_a_change_that_changes_nothing_keeps_the_version(
    client: AsyncClient, manager_headers: dict[str, str], room: Room, db_session: AsyncSession
) -> None:
    response = await client.patch(
        f"{ROOMS}/{room.id}", json={"name": room.name}, headers=if_match(manager_headers, 1)
    )

    assert response.status_code == 200
    assert response.headers["etag"] == '"1"'
    assert await audit_actions(db_session, entity_id=room.id) == []


async def test_a_rename_onto_a_taken_name_is_a_conflict(
    client: AsyncClient, manager_headers: dict[str, str], create_room: CreateRoom
) -> None:
    await create_room(name="Borealis")
    room = await create_room(name="Aurora")
    response = await client.patch(
        f"{ROOMS}/{room.id}", json={"name": "borealis"}, headers=if_match(manager_headers, 1)
    )

    assert response.status_code == 409
    assert response.json()["code"] == "room-name-taken"


async def test_a_deactivated_room_takes_no_bookings_until_reactivated(
    client: AsyncClient,
    manager_headers: dict[str, str],
    member_headers: dict[str, str],
    room: Room,
    db_session: AsyncSession,
) -> None:
    url = f"{ROOMS}/{room.id}"
    without_etag = await client.post(f"{url}/deactivate", headers=manager_headers)
    deactivated = await client.post(f"{url}/deactivate", headers=if_match(manager_headers, 1))
    again = await client.post(f"{url}/deactivate", headers=if_match(manager_headers, 2))
    refused = await client.post(
        BOOKINGS, json=body(room, local(8, 9), local(8, 10)), headers=member_headers
    )
    overridden = await client.post(
        BOOKINGS,
        json=body(room, local(8, 9), local(8, 10), override_rules=True),
        headers=manager_headers,
    )
    reactivated = await client.post(f"{url}/reactivate", headers=if_match(manager_headers, 2))
    booked = await client.post(
        BOOKINGS, json=body(room, local(8, 9), local(8, 10)), headers=member_headers
    )

    assert without_etag.status_code == 428
    assert deactivated.json()["is_active"] is False
    assert again.headers["etag"] == '"2"'
    for refusal in (refused, overridden):
        assert refusal.status_code == 422
        assert [v["code"] for v in refusal.json()["violations"]] == ["room_inactive"]
    assert reactivated.json()["is_active"] is True
    assert booked.status_code == 201
    assert await audit_actions(db_session, entity_id=room.id) == [
        "room.deactivated",
        "room.reactivated",
    ]
    changes = await audit_changes(db_session, action="room.deactivated")
    assert changes == [{"before": {"is_active": True}, "after": {"is_active": False}}]


async def test_a_deactivated_room_stays_readable_and_listed(
    client: AsyncClient, member_headers: dict[str, str], create_room: CreateRoom
) -> None:
    room = await create_room(is_active=False)
    response = await client.get(f"{ROOMS}/{room.id}", headers=member_headers)

    assert response.json()["is_active"] is False
    assert room.name in await _names(client, member_headers)
