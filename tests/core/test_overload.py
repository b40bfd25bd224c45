"""Load shedding: beyond the concurrency limit a request waits a little, then gets a 503."""

import asyncio

import pytest
from fastapi import FastAPI
from httpx import AsyncClient, Response

from app.core.config import DatabaseSettings, ServerSettings
from app.factory import create_app
from tests.conftest import make_settings
from tests.core.support import assert_problem, serve

LIMIT = 3


class Gate:
    """Holds requests inside the app until the test opens it."""

    def __init__(self) -> None:
        self.arrived = 0
        self.all_arrived = asyncio.Event()
        self.open = asyncio.Event()


@pytest.fixture
def held_app(database_url: str) -> tuple[FastAPI, Gate]:
    """An app serving `LIMIT` requests at once and shedding the rest without waiting."""
    return app_with_gate(database_url, wait_ms=0)


@pytest.fixture
def patient_app(database_url: str) -> tuple[FastAPI, Gate]:
    """An app serving `LIMIT` requests at once, where the rest wait for a place up to 30 s."""
    return app_with_gate(database_url, wait_ms=30_000)


def app_with_gate(database_url: str, *, wait_ms: int) -> tuple[FastAPI, Gate]:
    """An app serving at most `LIMIT` requests at once, with a route that waits at a gate."""
    gate = Gate()
    server = ServerSettings(max_concurrent_requests=LIMIT, admission_wait_ms=wait_ms)
    app = create_app(make_settings(database_url, server=server))

    @app.get("/held")
    async def held() -> dict[str, int]:
        gate.arrived += 1
        if gate.arrived == LIMIT:
            gate.all_arrived.set()
        await gate.open.wait()
        return {"arrived": gate.arrived}

    @app.get("/quick")
    async def quick() -> dict[str, str]:
        return {"status": "done"}

    @app.get("/crash")
    async def crash() -> None:
        raise RuntimeError("boom")

    return app, gate


async def take_every_place(client: AsyncClient, gate: Gate) -> list[asyncio.Task[Response]]:
    """`LIMIT` requests held at the gate, once all of them are inside."""
    holders = [asyncio.create_task(client.get("/held")) for _ in range(LIMIT)]
    await gate.all_arrived.wait()
    return holders


async def test_requests_beyond_the_limit_are_shed_then_served_again(
    held_app: tuple[FastAPI, Gate],
) -> None:
    app, gate = held_app
    async with serve(app) as client:
        holders = await take_every_place(client, gate)
        shed = await client.get("/quick", headers={"X-Request-ID": "shed-1"})
        live = await client.get("/health/live")
        gate.open.set()
        held = await asyncio.gather(*holders)
        after = await client.get("/quick")
    assert_problem(
        shed,
        status=503,
        code="service-unavailable",
        instance="/quick",
        detail="The server is busy.",
        request_id="shed-1",
    )
    assert shed.headers["retry-after"] == "1"
    assert shed.headers["x-content-type-options"] == "nosniff"
    # The liveness probe is never shed: an overloaded process is not a dead one.
    assert live.status_code == 200
    assert [r.status_code for r in held] == [200] * LIMIT
    assert after.status_code == 200
    assert after.json() == {"status": "done"}


async def test_a_request_beyond_the_limit_waits_for_a_place_and_is_served(
    patient_app: tuple[FastAPI, Gate],
) -> None:
    app, gate = patient_app
    async with serve(app) as client:
        holders = await take_every_place(client, gate)
        waiting = asyncio.create_task(client.get("/quick"))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        gate.open.set()
        held = await asyncio.gather(*holders)
        served = await waiting
    assert [r.status_code for r in held] == [200] * LIMIT
    assert served.status_code == 200
    assert served.json() == {"status": "done"}


async def test_failed_requests_give_their_place_back(held_app: tuple[FastAPI, Gate]) -> None:
    app, _ = held_app
    async with serve(app) as client:
        crashed = [(await client.get("/crash")).status_code for _ in range(LIMIT)]
        after = await client.get("/quick")
    assert crashed == [500] * LIMIT
    assert after.status_code == 200


def test_the_default_limit_follows_the_pool(database_url: str) -> None:
    default = make_settings(database_url)
    assert default.server.max_concurrent_requests is None
    # 64 clients (the bench's middle load) fit; beyond 80 they queue briefly, then are shed.
    assert default.concurrency_limit == 4 * (10 + 10) == 80
    small = make_settings(database_url, database=DatabaseSettings(pool_size=3, max_overflow=2))
    assert small.concurrency_limit == 20
    fixed = make_settings(database_url, server=ServerSettings(max_concurrent_requests=7))
    assert fixed.concurrency_limit == 7
