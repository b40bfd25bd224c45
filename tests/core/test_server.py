"""uvicorn as `make run` and `make serve` configure it, started in-process on a free port."""

import asyncio
import os
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from httpx import AsyncClient

from app import cli, devdb
from app.core.config import get_settings
from app.factory import create_app
from tests.conftest import TEST_SECRET
from tests.factories import unique_email

CREDENTIALS_BUDGET = 4
PASSWORD = "correct horse battery staple on a long line"
SHUTDOWN_WAIT_S = 30
CLOSE_WAIT_S = 10


@pytest.fixture
def server_environment(
    monkeypatch: pytest.MonkeyPatch, fresh_settings: None, migrated_database_url: str
) -> str:
    """Test settings in the environment, as the CLI reads them, on a free port and no proxy."""
    for name in list(os.environ):
        if name == "ENVIRONMENT" or "__" in name:
            monkeypatch.delenv(name)
    monkeypatch.setenv("ENVIRONMENT", "test")
    monkeypatch.setenv("DATABASE__URL", migrated_database_url)
    monkeypatch.setenv("SECURITY__JWT_SECRET", TEST_SECRET)
    monkeypatch.setenv("SECURITY__ARGON2_TIME_COST", "1")
    monkeypatch.setenv("SECURITY__ARGON2_MEMORY_KIB", "64")
    monkeypatch.setenv("RATE_LIMIT__CREDENTIALS_PER_IP", f"{CREDENTIALS_BUDGET}/minute")
    monkeypatch.setenv("SERVER__PORT", "0")
    monkeypatch.setenv("HTTP__TRUSTED_PROXIES", "[]")
    return migrated_database_url


@dataclass
class Running:
    """A uvicorn server started by a test, and a client of it."""

    server: uvicorn.Server
    client: AsyncClient
    port: int


@asynccontextmanager
async def running(config: uvicorn.Config) -> AsyncIterator[Running]:
    """Serve a uvicorn config from a thread of its own (as `serve` does in its process)."""
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            assert thread.is_alive(), "uvicorn did not start"
            await asyncio.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        async with AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            yield Running(server, client, port)
    finally:
        server.should_exit = True
        await asyncio.to_thread(thread.join, SHUTDOWN_WAIT_S)
        assert not thread.is_alive(), "uvicorn did not stop"


@pytest.mark.parametrize("reload", [True, False], ids=["run", "serve"])
async def test_forwarded_for_from_loopback_is_not_believed(
    server_environment: str, reload: bool
) -> None:
    config = uvicorn.Config(cli.APP_FACTORY, **cli.server_options(get_settings(), reload=reload))
    email = unique_email()
    async with running(config) as served:
        client = served.client
        registered = await client.post(
            "/api/v1/auth/register",
            json={"email": email, "password": PASSWORD, "full_name": "Spoofer"},
            headers={"X-Forwarded-For": "198.51.100.1"},
        )
        assert registered.status_code == 201, registered.text
        login = await client.post(
            "/api/v1/auth/login",
            data={"username": email, "password": PASSWORD},
            headers={"X-Forwarded-For": "198.51.100.2"},
        )
        assert login.status_code == 200, login.text
        # Every guess claims a new address; the budget is still the one of 127.0.0.1.
        statuses = [
            (
                await client.post(
                    "/api/v1/auth/login",
                    data={"username": email, "password": "wrong password, guess number x"},
                    headers={"X-Forwarded-For": f"198.51.100.{10 + n}"},
                )
            ).status_code
            for n in range(15)
        ]
        sessions = await client.get(
            "/api/v1/auth/sessions",
            headers={"Authorization": f"Bearer {login.json()['access_token']}"},
        )
    assert statuses == [401] * (CREDENTIALS_BUDGET - 2) + [429] * (17 - CREDENTIALS_BUDGET)
    assert [s["client_ip"] for s in sessions.json()] == ["127.0.0.1"]
    connection = await devdb.connect(server_environment)
    try:
        recorded = await connection.fetch("SELECT DISTINCT client_ip FROM audit_events")
    finally:
        await connection.close()
    assert [row["client_ip"] for row in recorded] == ["127.0.0.1"]


@pytest.mark.parametrize("reload", [True, False], ids=["run", "serve"])
async def test_no_server_banner_but_a_date(server_environment: str, reload: bool) -> None:
    config = uvicorn.Config(cli.APP_FACTORY, **cli.server_options(get_settings(), reload=reload))
    async with running(config) as served:
        client = served.client
        response = await client.get("/health/live")
    assert response.status_code == 200
    assert "server" not in response.headers
    assert response.headers["date"].endswith(" GMT")


class ThreadGate:
    """Holds a request on uvicorn's event loop, which runs in another thread, until opened."""

    def __init__(self) -> None:
        self.arrived = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event: asyncio.Event | None = None

    async def wait(self) -> None:
        """Called by the route: announce the arrival and wait (cancellable)."""
        self._loop, self._event = asyncio.get_running_loop(), asyncio.Event()
        self.arrived.set()
        await self._event.wait()

    def open(self) -> None:
        """Let the held request go on, if its loop still runs."""
        if self._loop is not None and self._event is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._event.set)


def held_app() -> tuple[FastAPI, ThreadGate]:
    """The app from the environment's settings plus a route that waits at a gate."""
    app = create_app()
    gate = ThreadGate()

    @app.get("/held")
    async def held() -> dict[str, str]:
        await gate.wait()
        return {"status": "done"}

    return app, gate


def served_config(app: FastAPI) -> uvicorn.Config:
    """`serve`'s uvicorn options around an app object instead of the factory."""
    return uvicorn.Config(
        app, **cli.server_options(get_settings(), reload=False) | {"factory": False}
    )


async def refuses_connections(port: int) -> bool:
    """Whether the port refuses new connections, tried for a while."""
    for _ in range(200):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except ConnectionRefusedError:
            return True
        writer.close()
        await asyncio.sleep(0.05)
    return False


async def test_shutdown_refuses_new_connections_and_finishes_running_requests(
    server_environment: str,
) -> None:
    app, gate = held_app()
    async with running(served_config(app)) as served:
        try:
            in_flight = asyncio.create_task(served.client.get("/held"))
            assert await asyncio.to_thread(gate.arrived.wait, SHUTDOWN_WAIT_S)
            served.server.should_exit = True  # what SIGTERM does
            refused = await refuses_connections(served.port)
        finally:
            gate.open()
        response = await in_flight
    assert refused
    assert response.status_code == 200
    assert response.json() == {"status": "done"}
    assert response.headers["connection"] == "close"


async def test_shutdown_cancels_requests_running_past_the_grace_period(
    server_environment: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SERVER__GRACEFUL_SHUTDOWN_TIMEOUT_S", "1")
    get_settings.cache_clear()
    app, gate = held_app()
    try:
        async with running(served_config(app)) as served:
            in_flight = asyncio.create_task(served.client.get("/held"))
            assert await asyncio.to_thread(gate.arrived.wait, SHUTDOWN_WAIT_S)
            # `running` waits for uvicorn to stop: it must not wait for the held request.
        with pytest.raises(httpx.TransportError):
            await in_flight
    finally:
        gate.open()


async def closed_by_server(reader: asyncio.StreamReader) -> bool:
    """Whether the server closes the connection, waiting well past any deadline under test."""
    try:
        while await asyncio.wait_for(reader.read(65536), CLOSE_WAIT_S):
            pass
    except TimeoutError:
        return False
    return True


async def test_trickled_headers_are_cut_off(
    server_environment: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SERVER__HEADER_TIMEOUT_S", "0.5")
    config = uvicorn.Config(cli.APP_FACTORY, **cli.server_options(get_settings(), reload=False))
    async with running(config) as served:
        reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
        # Headers begun but never finished: uvicorn alone would wait for ever.
        writer.write(b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        await writer.drain()
        closed = await closed_by_server(reader)
        writer.close()
    assert closed


async def test_a_running_request_outlives_the_deadline_and_the_next_one_gets_its_own(
    server_environment: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SERVER__HEADER_TIMEOUT_S", "0.2")
    app, gate = held_app()
    async with running(served_config(app)) as served:
        reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
        try:
            writer.write(b"GET /held HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            await writer.drain()
            assert await asyncio.to_thread(gate.arrived.wait, SHUTDOWN_WAIT_S)
            await asyncio.sleep(1)  # the first deadline passes while the request runs
        finally:
            gate.open()
        first = await reader.readuntil(b'{"status":"done"}')
        # New bytes cancel uvicorn's keep-alive timer; a fresh header deadline still runs.
        writer.write(b"GET /health/live HTTP/1.1\r\nHost: ")
        await writer.drain()
        closed = await closed_by_server(reader)
        writer.close()
    assert first.startswith(b"HTTP/1.1 200 OK")
    assert closed
