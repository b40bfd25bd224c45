"""`Idempotency-Key` on creating rooms and blackouts: a retry replays, a reused key is refused."""

import pytest
from httpx import AsyncClient, Response
from sqlalchemy.ext.asyncio import AsyncSession

from app.bookings.models import Room
from tests.auth.conftest import audit_changes
from tests.bookings.conftest import local
from tests.bookings.test_blackouts import blackouts_of, closure
from tests.bookings.test_rooms import ROOMS, room_body

pytestmark = pytest.mark.usefixtures("fixed_clock")


def keyed(headers: dict[str, str], key: str = "room-once-4b1d") -> dict[str, str]:
    """`headers` with an `Idempotency-Key`."""
    return {**headers, "Idempotency-Key": key}


def assert_replay_of(replay: Response, first: Response) -> None:
    """The retry got the first answer again, marked as a replay."""
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    assert replay.status_code == first.status_code
    assert replay.content == first.content
    assert replay.headers["idempotent-replayed"] == "true"


async def test_a_retried_room_creation_is_replayed_not_made_again(
    client: AsyncClient, manager_headers: dict[str, str], db_session: AsyncSession
) -> None:
    first = await client.post(ROOMS, json=room_body(), headers=keyed(manager_headers))
    replay = await client.post(ROOMS, json=room_body(), headers=keyed(manager_headers))

    assert_replay_of(replay, first)
    assert (
        replay.headers["location"] == first.headers["location"] == f"{ROOMS}/{first.json()['id']}"
    )
    assert replay.headers["etag"] == first.headers["etag"] == '"1"'
    created = await audit_changes(db_session, action="room.created")
    assert [change["after"]["name"] for change in created] == ["Aurora"]


async def test_a_key_reused_for_another_room_is_refused(
    client: AsyncClient, manager_headers: dict[str, str], db_session: AsyncSession
) -> None:
    first = await client.post(ROOMS, json=room_body(), headers=keyed(manager_headers))
    assert first.status_code == 201, first.text

    reused = await client.post(
        ROOMS, json=room_body(name="Borealis"), headers=keyed(manager_headers)
    )

    assert reused.status_code == 422
    assert reused.json()["code"] == "idempotency-key-reused"
    assert len(await audit_changes(db_session, action="room.created")) == 1


async def test_a_retried_blackout_is_replayed_not_added_again(
    client: AsyncClient, manager_headers: dict[str, str], room: Room, db_session: AsyncSession
) -> None:
    closed = closure(local(8, 12), local(8, 14))
    first = await client.post(blackouts_of(room), json=closed, headers=keyed(manager_headers))
    replay = await client.post(blackouts_of(room), json=closed, headers=keyed(manager_headers))

    assert_replay_of(replay, first)
    assert len(await audit_changes(db_session, action="blackout.added")) == 1
    listed = await client.get(blackouts_of(room), headers=manager_headers)
    assert [item["id"] for item in listed.json()["items"]] == [first.json()["id"]]
