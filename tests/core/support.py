"""Helpers of the core suite: serve a freshly built app, capture logs, cut the database off."""

import asyncio
import contextlib
import io
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient, Response
from sqlalchemy import event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine

PROBLEM_KEYS = {"type", "title", "status", "detail", "instance", "code", "request_id"}


@asynccontextmanager
async def serve(app: FastAPI, *, base_url: str = "http://testserver") -> AsyncIterator[AsyncClient]:
    """Run an app's lifespan and yield a client for it."""
    async with (
        LifespanManager(app),
        AsyncClient(transport=ASGITransport(app=app), base_url=base_url) as client,
    ):
        yield client


def client_for(app: FastAPI, *, base_url: str = "http://testserver") -> AsyncClient:
    """A client for an app whose lifespan already runs."""
    return AsyncClient(transport=ASGITransport(app=app), base_url=base_url)


def assert_problem(
    response: Response, *, status: int, code: str, instance: str, **expected: Any
) -> dict[str, Any]:
    """Check a problem+json response and its members; return the body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body.keys() >= PROBLEM_KEYS
    assert body["type"] == f"https://roombook.dev/problems/{code}"
    assert body["status"] == status
    assert body["code"] == code
    assert body["instance"] == instance
    assert isinstance(body["title"], str)
    assert body["title"]
    assert isinstance(body["detail"], str)
    assert body["detail"]
    assert body["request_id"] == response.headers["x-request-id"]
    for key, value in expected.items():
        assert body[key] == value, (key, body[key])
    return body


@contextlib.contextmanager
def captured_logs() -> Iterator[io.StringIO]:
    """Point the root handler installed by `configure_logging` at a buffer.

    Use after building the app: `create_app` installs a fresh handler.
    """
    buffer = io.StringIO()
    handlers = [h for h in logging.getLogger().handlers if isinstance(h, logging.StreamHandler)]
    previous = [h.setStream(buffer) for h in handlers]
    try:
        yield buffer
    finally:
        for handler, stream in zip(handlers, previous, strict=True):
            if stream is not None:
                handler.setStream(stream)


class DatabaseProxy:
    """A TCP front for the test PostgreSQL that can be taken down and brought back.

    Cutting it refuses new connections and drops open ones, as a database outage does.
    """

    def __init__(self, database_url: str) -> None:
        url = make_url(database_url)
        self._target_url = url
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.StreamWriter] = set()
        self.port = 0

    @property
    def running(self) -> bool:
        """Whether the proxy accepts connections."""
        return self._server is not None

    @property
    def url(self) -> str:
        """The database URL that goes through the proxy."""
        proxied = self._target_url.set(host="127.0.0.1", port=self.port, query={})
        return proxied.render_as_string(hide_password=False)

    async def _open_target(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        socket_dir = self._target_url.query.get("host")
        port = self._target_url.port or 5432
        if isinstance(socket_dir, str) and socket_dir.startswith("/"):
            return await asyncio.open_unix_connection(f"{socket_dir}/.s.PGSQL.{port}")
        return await asyncio.open_connection(self._target_url.host or "127.0.0.1", port)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        target_reader, target_writer = await self._open_target()
        self._pipes.update((writer, target_writer))

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pipe(reader, target_writer), pipe(target_reader, writer))
        self._pipes.difference_update((writer, target_writer))

    async def start(self) -> None:
        """Accept connections (on the same port as before, once one was chosen)."""
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Refuse new connections and cut the open ones."""
        assert self._server is not None
        self._server.close()
        for writer in list(self._pipes):
            writer.close()
        self._pipes.clear()
        await self._server.wait_closed()
        self._server = None


def assert_invalid_fields(response: Response, *fields: str) -> list[dict[str, Any]]:
    """Check a 422 problem that names exactly these fields; return its `errors`."""
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    errors: list[dict[str, Any]] = response.json()["errors"]
    assert {error["field"] for error in errors} == set(fields), errors
    return errors


@contextlib.contextmanager
def captured_statements(engine: AsyncEngine) -> Iterator[list[tuple[str, Any]]]:
    """Record the SQL and parameters sent to the server."""
    seen: list[tuple[str, Any]] = []

    def record(_conn: Connection, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        seen.append((statement, parameters))

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)
