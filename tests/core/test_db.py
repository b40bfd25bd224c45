"""Unit of work, retries and database failures, on real PostgreSQL."""

import socket
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from typing import Any, ClassVar

import pytest
from fastapi import FastAPI
from httpx import AsyncClient, Response
from pydantic import BaseModel, ConfigDict, SecretStr
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.core.config import DatabaseSettings
from app.core.db import SessionDep, async_url, commit_early
from app.core.db_errors import DbFailure, classify, sqlstate_of
from app.core.errors import NotFound
from app.factory import create_app
from tests.conftest import make_settings
from tests.core.support import assert_problem, serve

RAISE_SQLSTATE = "DO $$ BEGIN RAISE EXCEPTION 'simulated' USING ERRCODE = '{state}'; END $$"
INSERT_NOTE = text("INSERT INTO db_note (id, parent_id) VALUES (:id, :parent_id)")
UNSTORABLE: dict[str, tuple[str, object]] = {
    # Values no input type should let through; the backstop must still answer 422.
    "nul": ("SELECT CAST(:value AS text)", "a\x00b"),  # 22021 from the server
    "surrogate": ("SELECT CAST(:value AS text)", "a\ud800b"),  # 22000 from the driver
    "overflow": (
        "SELECT CAST(:value AS timestamptz)",
        datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14))),
    ),
    "raised": (RAISE_SQLSTATE.format(state="22008"), None),
}


class Note(BaseModel):
    """Request body of the test routes."""

    model_config = ConfigDict(extra="forbid")
    id: int
    parent_id: int


def build(url: str, **database: Any) -> FastAPI:
    """An app on `url` with database settings overridden (statement 4 s, lock 200 ms)."""
    values: dict[str, Any] = {
        "url": SecretStr(url),
        "statement_timeout_ms": 4000,
        "lock_timeout_ms": 200,
    } | database
    return create_app(make_settings(url, database=DatabaseSettings(**values)))


@pytest.fixture(scope="module")
async def engine(scratch_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on the scratch database with this module's tables."""
    engine = create_async_engine(async_url(scratch_url))
    async with engine.begin() as connection:
        await connection.execute(text("CREATE TABLE db_parent (id int PRIMARY KEY)"))
        # Checked at COMMIT, not at INSERT: the failure can only surface when committing.
        await connection.execute(
            text(
                "CREATE TABLE db_note (id int PRIMARY KEY, parent_id int NOT NULL "
                "REFERENCES db_parent DEFERRABLE INITIALLY DEFERRED)"
            )
        )
        await connection.execute(text("INSERT INTO db_parent VALUES (1)"))
    yield engine
    await engine.dispose()


@pytest.fixture(autouse=True)
async def empty_notes(engine: AsyncEngine) -> AsyncIterator[None]:
    """Each test starts without notes."""
    yield
    async with engine.begin() as connection:
        await connection.execute(text("DELETE FROM db_note"))


async def note_ids(engine: AsyncEngine) -> list[int]:
    """Ids of the notes that were really committed."""
    async with engine.connect() as connection:
        return list(
            (await connection.execute(text("SELECT id FROM db_note ORDER BY id"))).scalars()
        )


class Attempts:
    """Counts how often the conflicting routes ran, reset by each test."""

    seen: ClassVar[list[int]] = []


def add_routes(app: FastAPI) -> None:
    """Test routes that write, fail at commit, conflict, time out and lose their connection."""

    @app.post("/notes", status_code=201)
    async def create_note(note: Note, session: SessionDep) -> dict[str, int]:
        await session.execute(INSERT_NOTE, note.model_dump())
        # Answered 201 here; the deferred foreign key is only checked by the commit after.
        return {"id": note.id}

    @app.post("/notes/then-missing")
    async def write_then_fail(note: Note, session: SessionDep) -> None:
        await session.execute(INSERT_NOTE, note.model_dump())
        raise NotFound("No such room.")

    @app.post("/notes/conflicting/{state}", status_code=201)
    async def conflicting(state: str, note: Note, session: SessionDep) -> dict[str, int]:
        Attempts.seen.append(note.id)
        await session.execute(INSERT_NOTE, note.model_dump())
        if len(Attempts.seen) < 3:
            await session.execute(text(RAISE_SQLSTATE.format(state=state)))
        return {"id": note.id, "attempts": len(Attempts.seen)}

    @app.post("/notes/always-conflicting")
    async def always_conflicting(session: SessionDep) -> None:
        Attempts.seen.append(0)
        await session.execute(text("INSERT INTO db_note VALUES (5, 1)"))
        await session.execute(text(RAISE_SQLSTATE.format(state="40001")))

    @app.post("/notes/unstorable/{kind}")
    async def unstorable(kind: str, session: SessionDep) -> None:
        Attempts.seen.append(0)
        await session.execute(INSERT_NOTE, {"id": 6, "parent_id": 1})
        statement, value = UNSTORABLE[kind]
        await session.execute(text(statement), {"value": value} if value is not None else {})

    @app.post("/notes/committed-early-then-conflicting")
    async def committed_early(note: Note, session: SessionDep) -> None:
        Attempts.seen.append(note.id)
        await session.execute(INSERT_NOTE, note.model_dump())
        await commit_early(session)
        await session.execute(text(RAISE_SQLSTATE.format(state="40001")))

    @app.get("/broken-sql")
    async def broken_sql(session: SessionDep) -> None:
        Attempts.seen.append(0)
        await session.execute(text("SELECT * FROM no_such_table"))

    @app.get("/timeouts")
    async def timeouts(session: SessionDep) -> dict[str, str]:
        names = ("statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout")
        return {n: (await session.execute(text(f"SHOW {n}"))).scalar_one() for n in names}

    @app.get("/locked")
    async def locked(session: SessionDep) -> None:
        await session.execute(text("SELECT id FROM db_parent WHERE id = 1 FOR UPDATE"))

    @app.get("/slow")
    async def slow(session: SessionDep) -> None:
        # A real server-side timeout (57014), shortened so the test stays fast.
        await session.execute(text("SET LOCAL statement_timeout = '50ms'"))
        await session.execute(text("SELECT pg_sleep(5)"))

    @app.get("/killed")
    async def killed(session: SessionDep) -> None:
        # The server ends this very connection, as a restart or failover would.
        await session.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))


@pytest.fixture(scope="module")
async def client(scratch_url: str, engine: AsyncEngine) -> AsyncIterator[AsyncClient]:
    """A client of an app on the scratch database with the test routes."""
    app = build(scratch_url, retry_attempts=3)
    add_routes(app)
    async with serve(app) as client:
        yield client


def assert_database_unavailable(response: Response, *, instance: str) -> None:
    """Check the 503 problem that database trouble answers, with its `Retry-After`."""
    assert_problem(
        response,
        status=503,
        code="service-unavailable",
        instance=instance,
        detail="The database is unavailable.",
    )
    assert response.headers["retry-after"] == "5"


@pytest.fixture(autouse=True)
def reset_attempts() -> None:
    """Each test counts its own attempts."""
    Attempts.seen.clear()


async def test_successful_request_commits(client: AsyncClient, engine: AsyncEngine) -> None:
    response = await client.post("/notes", json={"id": 1, "parent_id": 1})
    assert response.status_code == 201
    assert response.json() == {"id": 1}
    assert await note_ids(engine) == [1]


async def test_failed_commit_reaches_client_as_error(
    client: AsyncClient, engine: AsyncEngine
) -> None:
    """The deferred foreign key fails only at COMMIT; the client must not be told 201."""
    response = await client.post("/notes", json={"id": 2, "parent_id": 999})
    body = assert_problem(response, status=500, code="internal-error", instance="/notes")
    assert "db_note" not in response.text
    assert "ForeignKeyViolation" not in response.text
    assert body["detail"] == "An unexpected error occurred."
    assert await note_ids(engine) == []


async def test_domain_error_rolls_back(client: AsyncClient, engine: AsyncEngine) -> None:
    response = await client.post("/notes/then-missing", json={"id": 3, "parent_id": 1})
    assert_problem(
        response,
        status=404,
        code="not-found",
        instance="/notes/then-missing",
        detail="No such room.",
    )
    assert await note_ids(engine) == []


@pytest.mark.parametrize("state", ["40001", "40P01"])
async def test_conflict_is_retried_with_the_same_body(
    client: AsyncClient, engine: AsyncEngine, state: str
) -> None:
    response = await client.post(f"/notes/conflicting/{state}", json={"id": 4, "parent_id": 1})
    assert response.status_code == 201
    assert response.json() == {"id": 4, "attempts": 3}
    assert Attempts.seen == [4, 4, 4]
    # The failed attempts were rolled back: one row, not three (or a duplicate-key error).
    assert await note_ids(engine) == [4]


async def test_persistent_conflict_ends_in_503(client: AsyncClient, engine: AsyncEngine) -> None:
    response = await client.post("/notes/always-conflicting")
    assert_problem(
        response,
        status=503,
        code="service-unavailable",
        instance="/notes/always-conflicting",
        detail="The request kept conflicting with concurrent changes.",
    )
    assert response.headers["retry-after"] == "5"
    assert len(Attempts.seen) == 3
    assert await note_ids(engine) == []


async def test_a_request_that_committed_early_is_not_run_again(
    client: AsyncClient, engine: AsyncEngine
) -> None:
    """A re-run would apply the early commit twice; the conflict answers 503 at once."""
    path = "/notes/committed-early-then-conflicting"
    response = await client.post(path, json={"id": 7, "parent_id": 1})
    assert_problem(response, status=503, code="service-unavailable", instance=path)
    assert Attempts.seen == [7]
    assert await note_ids(engine) == [7]


async def test_other_database_errors_are_500_and_not_retried(client: AsyncClient) -> None:
    response = await client.get("/broken-sql")
    assert_problem(response, status=500, code="internal-error", instance="/broken-sql")
    assert "no_such_table" not in response.text
    assert Attempts.seen == [0]


@pytest.mark.parametrize("kind", sorted(UNSTORABLE))
async def test_data_exception_is_422_not_500(
    client: AsyncClient, engine: AsyncEngine, kind: str
) -> None:
    """SQLSTATE class 22 means the input was unusable: a 422, not retried, nothing kept."""
    response = await client.post(f"/notes/unstorable/{kind}")
    body = assert_problem(
        response, status=422, code="validation-failed", instance=f"/notes/unstorable/{kind}"
    )
    assert body["errors"] == []
    assert "timestamptz" not in response.text
    assert Attempts.seen == [0]
    assert await note_ids(engine) == []


async def test_timeout_settings_apply_to_connections(client: AsyncClient) -> None:
    response = await client.get("/timeouts")
    assert response.json() == {
        "statement_timeout": "4s",  # DATABASE__STATEMENT_TIMEOUT_MS=4000
        "lock_timeout": "200ms",  # DATABASE__LOCK_TIMEOUT_MS=200
        "idle_in_transaction_session_timeout": "15s",  # the default
    }


async def test_lock_timeout_is_503_with_retry_after(
    client: AsyncClient, engine: AsyncEngine
) -> None:
    async with engine.connect() as holder:
        await holder.execute(text("SELECT id FROM db_parent WHERE id = 1 FOR UPDATE"))
        # The request waits 200 ms for the row (SQLSTATE 55P03) instead of queueing forever.
        response = await client.get("/locked")
        await holder.rollback()
    assert_database_unavailable(response, instance="/locked")


async def test_statement_timeout_is_503_with_retry_after(client: AsyncClient) -> None:
    response = await client.get("/slow")
    assert_database_unavailable(response, instance="/slow")


async def test_killed_connection_is_503(client: AsyncClient) -> None:
    response = await client.get("/killed")
    again = await client.get("/health/ready")
    assert_problem(response, status=503, code="service-unavailable", instance="/killed")
    assert response.headers["retry-after"] == "5"
    # The pool threw the dead connection away; the next request gets a working one.
    assert again.status_code == 200
    assert again.json() == {"status": "ok"}


async def test_requests_reconnect_after_the_server_kills_every_connection(
    scratch_url: str, engine: AsyncEngine
) -> None:
    app = build(scratch_url, pool_size=3, max_overflow=0)
    add_routes(app)

    async with serve(app) as client:
        pooled: AsyncEngine = app.state.engine
        # Fill the pool with three idle connections, as a busy process would have.
        held = [await pooled.connect() for _ in range(3)]
        pids = [(await c.execute(text("SELECT pg_backend_pid()"))).scalar_one() for c in held]
        for connection in held:
            await connection.close()
        async with engine.connect() as killer:
            for pid in pids:
                await killer.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        statuses = [(await client.get("/timeouts")).status_code for _ in range(4)]
    # Without a pre-ping the first request may meet a dead connection (503); that failure
    # invalidates the pool, so every request after it gets a fresh connection.
    assert statuses.count(503) <= 1, statuses
    assert statuses[1:] == [200, 200, 200], statuses


async def test_pool_exhaustion_is_503(scratch_url: str) -> None:
    app = build(scratch_url, pool_size=1, max_overflow=0, pool_timeout_s=0.2)
    add_routes(app)

    async with serve(app) as client:
        engine: AsyncEngine = app.state.engine
        async with engine.connect() as held:
            await held.execute(text("SELECT 1"))
            response = await client.get("/timeouts")
        freed = await client.get("/timeouts")
    assert_database_unavailable(response, instance="/timeouts")
    assert freed.status_code == 200
    assert freed.json()["statement_timeout"] == "4s"


def closed_port() -> int:
    """A local TCP port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_unreachable_server_is_503(scratch_url: str) -> None:
    url = f"postgresql+asyncpg://postgres@127.0.0.1:{closed_port()}/roombook"
    app = build(url, connect_timeout_s=2)

    @app.get("/needs-db")
    async def needs_db(session: SessionDep) -> None:
        await session.execute(text("SELECT 1"))

    @app.get("/no-db")
    async def no_db() -> dict[str, str]:
        return {"status": "fine"}

    async with serve(app) as client:
        route = await client.get("/needs-db")
        ready = await client.get("/health/ready")
        live = await client.get("/health/live")
        unrelated = await client.get("/no-db")
    assert_database_unavailable(route, instance="/needs-db")
    assert route.headers["x-frame-options"] == "DENY"
    assert_problem(ready, status=503, code="service-unavailable", instance="/health/ready")
    assert ready.headers["retry-after"] == "5"
    assert live.json() == {"status": "ok"}
    assert unrelated.json() == {"status": "fine"}


async def test_no_database_url_refuses_to_start(database_url: str) -> None:
    app = create_app(make_settings(database_url, database=DatabaseSettings()))
    with pytest.raises(RuntimeError, match="DATABASE__URL is not set"):
        async with serve(app):
            pass


class FakeDriverError(Exception):
    """Stands in for a driver exception carrying a SQLSTATE."""

    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


class PsycopgStyleError(Exception):
    """A driver exception that names its SQLSTATE `pgcode`."""

    pgcode = "40P01"


def dbapi_error(orig: BaseException, *, invalidated: bool = False) -> DBAPIError:
    """Wrap a driver exception the way SQLAlchemy does."""
    return DBAPIError("SELECT 1", {}, orig, connection_invalidated=invalidated)


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (dbapi_error(FakeDriverError("40001")), DbFailure.RETRY),
        (dbapi_error(PsycopgStyleError()), DbFailure.RETRY),
        (dbapi_error(FakeDriverError("57014")), DbFailure.UNAVAILABLE),
        (dbapi_error(FakeDriverError("53300")), DbFailure.UNAVAILABLE),
        (dbapi_error(FakeDriverError("08006")), DbFailure.UNAVAILABLE),
        (dbapi_error(Exception("gone"), invalidated=True), DbFailure.UNAVAILABLE),
        (dbapi_error(FakeDriverError("22021")), DbFailure.INVALID_DATA),
        (dbapi_error(FakeDriverError("22P02")), DbFailure.INVALID_DATA),
        (dbapi_error(FakeDriverError("23505")), DbFailure.OTHER),
        (dbapi_error(Exception("no code")), DbFailure.OTHER),
        (ConnectionRefusedError(111, "Connection refused"), DbFailure.UNAVAILABLE),
        (OSError("Network is unreachable"), DbFailure.UNAVAILABLE),
        (TimeoutError(), DbFailure.UNAVAILABLE),
        (PoolTimeoutError("QueuePool limit reached"), DbFailure.UNAVAILABLE),
        (ValueError("not the database"), DbFailure.OTHER),
    ],
)
def test_classify(exc: BaseException, expected: DbFailure) -> None:
    assert classify(exc) is expected


def test_sqlstate_found_on_the_cause_of_the_adapted_error() -> None:
    adapted = Exception("adapted")
    adapted.__cause__ = FakeDriverError("40P01")
    assert sqlstate_of(dbapi_error(adapted)) == "40P01"
    assert sqlstate_of(ValueError()) is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("postgres://u:p@h:5433/db", "postgresql+asyncpg://u:p@h:5433/db"),
        ("postgresql://u@/db?host=/tmp", "postgresql+asyncpg://u@/db?host=%2Ftmp"),
        ("postgresql+psycopg://u:p@h/db", "postgresql+asyncpg://u:p@h/db"),
        ("postgresql+asyncpg://u:p@h/db", "postgresql+asyncpg://u:p@h/db"),
    ],
)
def test_async_url(raw: str, expected: str) -> None:
    assert async_url(raw) == expected
