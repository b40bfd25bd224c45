"""The admin-only audit API: guards, filters, pagination, single events, verification."""

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.routing import APIRoute
from httpx import AsyncClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.actions import AuditAction, AuditEntity
from app.audit.router import router as audit_router
from app.audit.service import AuditService
from app.core.context import RequestContext, bind_actor, start_context
from tests.audit.conftest import KEYS, events_by_seq

EVENTS = "/api/v1/audit/events"
T0 = datetime(2020, 1, 1, tzinfo=UTC)
BEFORE_2021 = {"until": "2021-01-01T00:00:00Z"}
ACTOR_A = uuid.UUID("00000000-0000-4000-8000-00000000000a")
ACTOR_B = uuid.UUID("00000000-0000-4000-8000-00000000000b")


@dataclass(frozen=True)
class Step:
    """One event of the timeline."""

    action: AuditAction
    entity_type: AuditEntity
    entity_id: str
    actor: uuid.UUID | None


TIMELINE = [
    Step(AuditAction.BOOKING_CREATED, AuditEntity.BOOKING, "b1", ACTOR_A),
    Step(AuditAction.BOOKING_CANCELLED, AuditEntity.BOOKING, "b1", ACTOR_A),
    Step(AuditAction.ROOM_UPDATED, AuditEntity.ROOM, "r1", ACTOR_B),
    Step(AuditAction.USER_ROLE_CHANGED, AuditEntity.USER, "u1", ACTOR_B),
    Step(AuditAction.BOOKING_CREATED, AuditEntity.BOOKING, "b2", None),
]


def _clock_at(moment: datetime) -> Callable[[], datetime]:
    return lambda: moment


@pytest.fixture
async def timeline(db_session: AsyncSession) -> list[str]:
    """Five events one minute apart from 2020-01-01 00:00 UTC; returns their ids in order."""
    ids = []
    for minute, step in enumerate(TIMELINE):
        start_context(RequestContext(request_id=f"req-{minute}"))
        if step.actor is not None:
            bind_actor(actor_id=step.actor, actor_role="manager")
        audit = AuditService(db_session, keys=KEYS, clock=_clock_at(T0 + timedelta(minutes=minute)))
        await audit.record(
            action=step.action,
            entity_type=step.entity_type,
            entity_id=step.entity_id,
            before={"state": minute - 1},
            after={"state": minute},
        )
    start_context(RequestContext())
    await db_session.commit()
    for event in await events_by_seq(db_session):
        if event.occurred_at < T0 + timedelta(days=1):
            ids.append(str(event.id))
    return ids


def _ids(body: dict[str, Any]) -> list[str]:
    return [item["id"] for item in body["items"]]


def _audit_paths() -> list[str]:
    """A concrete path for every route of the audit router, so a new route cannot be missed."""
    paths = [
        "/api/v1" + route.path.replace("{event_id}", str(uuid.uuid4()))
        for route in audit_router.routes
        if isinstance(route, APIRoute)
    ]
    assert len(paths) == 4
    return paths


async def test_anonymous_callers_get_401(client: AsyncClient) -> None:
    for path in _audit_paths():
        response = await client.get(path)
        assert response.status_code == 401, path
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["status"] == 401


async def test_members_and_managers_get_403(
    client: AsyncClient, member_headers: dict[str, str], manager_headers: dict[str, str]
) -> None:
    for headers in (member_headers, manager_headers):
        for path in _audit_paths():
            response = await client.get(path, headers=headers)
            assert response.status_code == 403, path
            assert response.json()["code"] == "role-forbidden"


async def test_list_is_newest_first_with_every_field(
    client: AsyncClient, admin_headers: dict[str, str], timeline: list[str]
) -> None:
    response = await client.get(EVENTS, params=BEFORE_2021, headers=admin_headers)

    assert response.status_code == 200
    body = response.json()
    assert _ids(body) == timeline[::-1]
    assert body["next_cursor"] is None
    newest = body["items"][0]
    assert newest == {
        "id": timeline[4],
        "seq": newest["seq"],
        "occurred_at": "2020-01-01T00:04:00Z",
        "action": "booking.created",
        "actor_id": None,
        "actor_role": "anonymous",
        "request_id": "req-4",
        "client_ip": None,
        "user_agent": None,
        "entity_type": "booking",
        "entity_id": "b2",
        "changes": {"before": {"state": 3}, "after": {"state": 4}},
        "prev_hash": newest["prev_hash"],
        "hash": newest["hash"],
    }
    assert body["items"][1]["actor_id"] == str(ACTOR_B)
    assert body["items"][1]["hash"] == newest["prev_hash"]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"actor_id": str(ACTOR_A)}, [1, 0]),
        ({"actor_id": str(ACTOR_B)}, [3, 2]),
        ({"action": "booking.created"}, [4, 0]),
        ({"action": "booking."}, [4, 1, 0]),
        ({"action": "room."}, [2]),
        ({"entity_type": "booking"}, [4, 1, 0]),
        ({"entity_type": "user"}, [3]),
        ({"entity_id": "b1"}, [1, 0]),
        ({"entity_type": "booking", "entity_id": "b2"}, [4]),
        ({"since": "2020-01-01T00:02:00Z"}, [4, 3, 2]),
        ({"since": "2020-01-01T00:01:00Z", "until": "2020-01-01T00:03:00Z"}, [2, 1]),
        ({"since": "2020-01-01T01:01:00+01:00", "until": "2020-01-01T00:02:00Z"}, [1]),
        ({"actor_id": str(ACTOR_A), "action": "booking.cancelled"}, [1]),
        ({"action": "auth."}, []),
    ],
)
async def test_each_filter_selects_its_events(
    client: AsyncClient,
    admin_headers: dict[str, str],
    timeline: list[str],
    params: dict[str, str],
    expected: list[int],
) -> None:
    response = await client.get(EVENTS, params={**BEFORE_2021, **params}, headers=admin_headers)

    assert response.status_code == 200, response.text
    assert _ids(response.json()) == [timeline[i] for i in expected]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"action": "nope"}, "action"),
        ({"action": "nope."}, "action"),
        ({"action": "Booking."}, "action"),
        ({"action": "user.teleported"}, "action"),
        ({"actor_id": "not-a-uuid"}, "actor_id"),
        ({"since": "2020-01-01T00:00:00"}, "since"),
        ({"since": "2020-01-02T00:00:00Z", "until": "2020-01-01T00:00:00Z"}, "until"),
        ({"entity_id": "x" * 129}, "entity_id"),
        ({"entity_type": "widget"}, "entity_type"),
    ],
)
async def test_invalid_filters_are_422_naming_the_field(
    client: AsyncClient, admin_headers: dict[str, str], params: dict[str, str], field: str
) -> None:
    response = await client.get(EVENTS, params=params, headers=admin_headers)

    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "validation-failed"
    assert field in [error["field"].split(".")[-1] for error in body["errors"]]


async def test_pages_follow_the_cursor_to_the_end(
    client: AsyncClient, admin_headers: dict[str, str], timeline: list[str]
) -> None:
    seen: list[str] = []
    params = {**BEFORE_2021, "limit": "2"}
    pages = 0
    while True:
        body = (await client.get(EVENTS, params=params, headers=admin_headers)).json()
        seen += _ids(body)
        pages += 1
        if body["next_cursor"] is None:
            break
        params = {**params, "cursor": body["next_cursor"]}

    assert seen == timeline[::-1]
    assert pages == 3


async def _walk(
    client: AsyncClient, headers: dict[str, str], params: dict[str, str]
) -> tuple[list[str], int]:
    seen: list[str] = []
    pages = 0
    while True:
        body = (await client.get(EVENTS, params=params, headers=headers)).json()
        seen += _ids(body)
        pages += 1
        if body["next_cursor"] is None:
            return seen, pages
        params = {**params, "cursor": body["next_cursor"]}


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"action": "booking."}, [4, 1, 0]),
        ({"actor_id": str(ACTOR_B)}, [3, 2]),
        ({"since": "2020-01-01T00:01:00Z"}, [4, 3, 2, 1]),
    ],
)
async def test_filtered_pages_follow_the_cursor_one_event_at_a_time(
    client: AsyncClient,
    admin_headers: dict[str, str],
    timeline: list[str],
    params: dict[str, str],
    expected: list[int],
) -> None:
    seen, pages = await _walk(client, admin_headers, {**BEFORE_2021, **params, "limit": "1"})

    assert seen == [timeline[i] for i in expected]
    assert pages == len(expected)  # the page holding the last match says it is the last


async def test_pages_of_events_sharing_one_instant_lose_and_repeat_nothing(
    client: AsyncClient, admin_headers: dict[str, str], db_session: AsyncSession
) -> None:
    instant = T0 - timedelta(days=1)
    audit = AuditService(db_session, keys=KEYS, clock=_clock_at(instant))
    for number in range(7):
        await audit.record(
            action=AuditAction.ROOM_UPDATED, entity_type=AuditEntity.ROOM, entity_id=f"tie-{number}"
        )
    await db_session.commit()
    tied = await client.get(EVENTS, params={"until": T0.isoformat()}, headers=admin_headers)
    everything = _ids(tied.json())

    seen, pages = await _walk(
        client, admin_headers, {"until": T0.isoformat(), "entity_type": "room", "limit": "3"}
    )

    assert len(everything) == 7
    assert seen == everything  # the id breaks the tie, the same way on every page
    assert pages == 3


async def test_a_tampered_cursor_is_422(
    client: AsyncClient, admin_headers: dict[str, str], timeline: list[str]
) -> None:
    first = await client.get(EVENTS, params={**BEFORE_2021, "limit": "1"}, headers=admin_headers)
    cursor = first.json()["next_cursor"]
    forged = cursor[:-2] + ("AA" if cursor[-2:] != "AA" else "BB")

    response = await client.get(EVENTS, params={"cursor": forged}, headers=admin_headers)

    assert len(timeline) == 5
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "cursor"


async def test_one_event_by_id(
    client: AsyncClient, admin_headers: dict[str, str], timeline: list[str]
) -> None:
    response = await client.get(f"{EVENTS}/{timeline[2]}", headers=admin_headers)

    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["action"], body["entity_id"]) == (timeline[2], "room.updated", "r1")
    assert body["actor_id"] == str(ACTOR_B)
    assert body["actor_role"] == "manager"


async def test_an_unknown_event_is_404(client: AsyncClient, admin_headers: dict[str, str]) -> None:
    missing = uuid.uuid4()

    response = await client.get(f"{EVENTS}/{missing}", headers=admin_headers)

    assert response.status_code == 404
    body = response.json()
    assert body["code"] == "audit-event-not-found"
    assert str(missing) in body["detail"]


async def test_verify_reports_ok_then_names_a_tampered_entry(
    client: AsyncClient,
    admin_headers: dict[str, str],
    timeline: list[str],
    db_session: AsyncSession,
) -> None:
    ok = await client.get("/api/v1/audit/verify", headers=admin_headers)
    assert ok.status_code == 200
    assert ok.json()["ok"] is True
    assert ok.json()["broken"] is None
    total = ok.json()["checked"]
    assert total >= len(timeline)

    await db_session.execute(text("SET LOCAL session_replication_role = replica"))
    await db_session.execute(
        text("UPDATE audit_events SET entity_id = 'r2' WHERE id = :id"), {"id": timeline[2]}
    )
    await db_session.execute(text("SET LOCAL session_replication_role = origin"))
    broken = await client.get("/api/v1/audit/verify", headers=admin_headers)

    body = broken.json()
    assert body["ok"] is False
    assert body["broken"]["id"] == timeline[2]
    assert body["broken"]["reason"] == "hash does not match the entry's content"
    assert body["checked"] == body["broken"]["seq"] - 1


async def test_an_http_change_records_who_and_where(
    client: AsyncClient, admin_headers: dict[str, str]
) -> None:
    headers = {**admin_headers, "X-Request-ID": "audit-e2e-1", "User-Agent": "roombook-tests/1"}
    created = await client.post(
        "/api/v1/users",
        json={
            "email": "audited@example.com",
            "full_name": "Audited Person",
            "password": "a-Strong-passphrase-42",
        },
        headers=headers,
    )
    assert created.status_code == 201, created.text
    user_id = created.json()["id"]

    events = await client.get(
        EVENTS, params={"entity_type": "user", "entity_id": user_id}, headers=admin_headers
    )

    (event,) = events.json()["items"]
    assert event["action"] == "user.created"
    assert event["request_id"] == "audit-e2e-1"
    assert event["user_agent"] == "roombook-tests/1"
    assert event["client_ip"] == "127.0.0.1"
    assert event["actor_role"] == "admin"
    me = await client.get("/api/v1/users/me", headers=admin_headers)
    assert event["actor_id"] == me.json()["id"]
    assert event["changes"]["after"]["email"] == "audited@example.com"
    assert event["changes"]["after"].get("password_hash", "[redacted]") == "[redacted]"
    assert "a-Strong-passphrase-42" not in events.text
