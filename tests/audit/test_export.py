"""NDJSON export: filtered content, and memory that does not grow with the row count."""

import asyncio
import json
import tracemalloc
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.types import Message

from app.audit.actions import AuditAction, AuditEntity
from app.audit.repository import EXPORT_BATCH_ROWS
from app.audit.service import AuditService
from app.core.context import RequestContext, bind_actor, start_context
from tests.audit.conftest import KEYS
from tests.audit.synthetic import insert_synthetic

EVENTS = "/api/v1/audit/events"
EXPORT = f"{EVENTS}/export"


async def test_export_streams_the_filtered_events_as_ndjson(
    client: AsyncClient, admin_headers: dict[str, str], db_session: AsyncSession
) -> None:
    # Every field populated, a timestamp with microseconds and non-ASCII text, so the raw-row
    # serialisation of the export is held to the API's JSON for each of them.
    start_context(RequestContext(request_id="exp-1", client_ip="203.0.113.4", user_agent="ua/1"))
    bind_actor(actor_id=uuid.uuid4(), actor_role="admin")
    moments = iter(datetime(2018, 5, 6, 7, 8, second, 10, tzinfo=UTC) for second in range(3))
    audit = AuditService(db_session, keys=KEYS, clock=lambda: next(moments))
    for number in range(3):
        await audit.record(
            action=AuditAction.ROOM_UPDATED,
            entity_type=AuditEntity.ROOM,
            entity_id=f"export-{number}",
            before={"name": "Salle Ä", "capacity": number},
            after={"name": "Salle Ö", "capacity": number + 1, "tags": ["a", "ß"]},
        )
    start_context(RequestContext())
    await db_session.commit()
    query = {"action": "room.", "until": "2019-01-01T00:00:00Z"}

    response = await client.get(EXPORT, params=query, headers=admin_headers)
    listed = await client.get(EVENTS, params=query, headers=admin_headers)

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-ndjson"
    assert response.text.endswith("\n")
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert [line["entity_id"] for line in lines] == ["export-2", "export-1", "export-0"]
    assert lines[0]["changes"] == {
        "before": {"name": "Salle Ä", "capacity": 2},
        "after": {"name": "Salle Ö", "capacity": 3, "tags": ["a", "ß"]},
    }
    # Same events, same order, same JSON (keys in the same order too) as the API's list.
    assert lines == listed.json()["items"]
    assert [list(line) for line in lines] == [list(item) for item in listed.json()["items"]]
    for line in lines:
        single = await client.get(f"{EVENTS}/{line['id']}", headers=admin_headers)
        assert line == single.json()


async def test_export_of_nothing_is_an_empty_body(
    client: AsyncClient, admin_headers: dict[str, str]
) -> None:
    response = await client.get(EXPORT, params={"entity_id": "no-such"}, headers=admin_headers)

    assert response.status_code == 200
    assert response.text == ""


@dataclass
class Drained:
    """What a client that throws the body away saw."""

    status: int = 0
    lines: int = 0
    first_line: bytes = b""
    chunks: list[int] = field(default_factory=list)


async def _drain_export(app: FastAPI, headers: dict[str, str], query: dict[str, str]) -> Drained:
    """Call the ASGI app directly and count lines without keeping the body.

    httpx's ASGITransport buffers whole bodies, which would measure the client, not the server.
    """
    drained = Drained()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": EXPORT,
        "raw_path": EXPORT.encode(),
        "root_path": "",
        "query_string": urlencode(query).encode(),
        "headers": [(b"host", b"testserver")]
        + [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    request_sent = False
    disconnected = asyncio.Event()

    async def receive() -> Message:
        nonlocal request_sent
        if not request_sent:
            request_sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await disconnected.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            drained.status = message["status"]
        elif message["type"] == "http.response.body":
            body: bytes = message.get("body", b"")
            if not drained.first_line and body:
                drained.first_line = body.split(b"\n", 1)[0]
            drained.lines += body.count(b"\n")

    await app(scope, receive, send)
    disconnected.set()
    return drained


async def _peak_while_draining(
    app: FastAPI, headers: dict[str, str], query: dict[str, str]
) -> tuple[Drained, int]:
    tracemalloc.start()
    try:
        drained = await _drain_export(app, headers, query)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return drained, peak


# At two sizes ten times apart: in the suite 2,000 and 20,000 rows (2 and 20 batches of the
# real 1,000), in `make bench-export` 10,000 and 100,000.
MEMORY_SIZES = [
    pytest.param(2_000, id="2k-20k"),
    pytest.param(10_000, id="10k-100k", marks=pytest.mark.bench),
]


# Coverage paused: tracing every row through the serialiser cost more than the rest of the
# test, and the export's lines are covered by the tests above; what this test measures
# (tracemalloc's peak) is the same either way.
@pytest.mark.no_cover
@pytest.mark.parametrize("small_rows", MEMORY_SIZES)
async def test_export_memory_does_not_grow_with_rows(
    app: FastAPI,
    client: AsyncClient,
    admin_headers: dict[str, str],
    db_session: AsyncSession,
    small_rows: int,
) -> None:
    # Synthetic rows (not a valid chain; the export does not verify): `small_rows`, then ten
    # times as many in all.
    large_rows = small_rows * 10
    start, later = datetime(2019, 1, 1, tzinfo=UTC), datetime(2019, 2, 1, tzinfo=UTC)
    query = {"until": "2019-12-31T00:00:00+00:00"}
    await insert_synthetic(db_session, rows=small_rows, start=start, step_us=1_000_000)
    small, small_peak = await _peak_while_draining(app, admin_headers, query)

    await insert_synthetic(
        db_session,
        rows=large_rows - small_rows,
        start=later,
        step_us=1_000_000,
        first_seq=small_rows,
    )
    large, large_peak = await _peak_while_draining(app, admin_headers, query)

    assert small_rows > EXPORT_BATCH_ROWS
    assert (small.status, small.lines) == (200, small_rows)
    assert (large.status, large.lines) == (200, large_rows)
    newest = later + timedelta(seconds=large_rows - small_rows)
    assert json.loads(large.first_line)["occurred_at"].startswith(newest.strftime("%Y-%m-%dT%H:%M"))
    # Ten times the rows, about the same peak: batches of rows, never the whole result.
    assert large_peak < small_peak * 1.5, (small_peak, large_peak)
