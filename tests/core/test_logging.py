"""Logging: JSON or console lines, one access line per request, and no secret in any line."""

import contextvars
import json
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import structlog
from fastapi import FastAPI, Request
from httpx import AsyncClient
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr
from sqlalchemy import text

from app.core.config import DatabaseSettings, LogSettings
from app.core.context import RequestContext, bind_actor, current_context, start_context
from app.core.db import create_engine
from app.core.logging import (
    REDACTED,
    SENSITIVE_TEXT,
    configure_logging,
    redact_text,
    redact_value,
)
from app.factory import create_app
from tests.conftest import make_settings
from tests.core.support import captured_logs, serve

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyLTEifQ.c2lnbmF0dXJlLXZhbHVl"
ARGON2_HASH = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo"
SECRETS = ("hunter2-pass", JWT, ARGON2_HASH, "db-pass-99", "opaque-refresh-7")


def lines(buffer: str) -> list[dict[str, Any]]:
    """Parse JSON log lines."""
    return [json.loads(line) for line in buffer.splitlines() if line.strip()]


@pytest.fixture
def json_logs() -> Iterator[Any]:
    """JSON logging into a buffer, restored to console logging afterwards."""
    configure_logging(LogSettings(level="INFO"), production=True)
    with captured_logs() as buffer:
        yield buffer
    configure_logging(LogSettings(), production=False)


def test_production_writes_json_lines(json_logs: Any) -> None:
    structlog.get_logger("roombook.test").info("room booked", room="A1", seats=4)
    [line] = lines(json_logs.getvalue())
    assert line["event"] == "room booked"
    assert line["room"] == "A1"
    assert line["seats"] == 4
    assert line["level"] == "info"
    assert line["logger"] == "roombook.test"
    assert line["timestamp"].endswith("Z")


def test_development_writes_console_lines() -> None:
    configure_logging(LogSettings(), production=False)
    with captured_logs() as buffer:
        structlog.get_logger("roombook.test").warning("room closed", room="B2")
    output = buffer.getvalue()
    assert "room closed" in output
    assert "room=B2" in output
    assert "[roombook.test]" in output
    with pytest.raises(json.JSONDecodeError):
        json.loads(output)


def test_json_format_setting_overrides_the_environment() -> None:
    configure_logging(LogSettings(json_format=True), production=False)
    with captured_logs() as buffer:
        structlog.get_logger("roombook.test").info("forced json")
    configure_logging(LogSettings(), production=False)
    assert lines(buffer.getvalue())[0]["event"] == "forced json"


def test_level_setting_filters(json_logs: Any) -> None:
    configure_logging(LogSettings(level="warning"), production=True)
    with captured_logs() as buffer:
        structlog.get_logger("roombook.test").info("quiet")
        structlog.get_logger("roombook.test").warning("loud")
    assert [line["event"] for line in lines(buffer.getvalue())] == ["loud"]


def test_stdlib_loggers_share_the_pipeline(json_logs: Any) -> None:
    logging.getLogger("uvicorn.error").info(
        "Started server", extra={"color_message": "\x1b[32mStarted\x1b[0m"}
    )
    logging.getLogger("sqlalchemy.engine.Engine").warning(
        "connect to postgresql://app:db-pass-99@db/roombook"
    )
    logging.getLogger("alembic.runtime").warning("token=opaque-refresh-7")
    logging.getLogger("uvicorn.access").info("GET / 200")
    uvicorn, sqlalchemy, alembic = lines(json_logs.getvalue())
    assert uvicorn["logger"] == "uvicorn.error"
    assert uvicorn["event"] == "Started server"
    assert "color_message" not in uvicorn
    assert sqlalchemy["logger"] == "sqlalchemy.engine.Engine"
    assert sqlalchemy["event"] == f"connect to postgresql://app:{REDACTED}@db/roombook"
    assert alembic["event"] == f"token={REDACTED}"
    for name in ("uvicorn", "uvicorn.error", "sqlalchemy", "alembic"):
        assert logging.getLogger(name).handlers == []
        assert logging.getLogger(name).propagate is True


async def test_sql_echo_goes_through_the_pipeline(json_logs: Any, database_url: str) -> None:
    engine = create_engine(DatabaseSettings(echo=True), url=database_url)
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 'password=hunter2-pass' AS probe"))
    finally:
        await engine.dispose()
        create_engine(DatabaseSettings(), url=database_url)  # back to quiet SQL logging
    output = json_logs.getvalue()
    # One JSON line per record: SQLAlchemy's own plain stdout handler was not installed.
    assert logging.getLogger("sqlalchemy.engine.Engine").handlers == []
    records = lines(output)
    probes = [r for r in records if "probe" in r["event"]]
    assert len(probes) == 1
    assert probes[0]["logger"] == "sqlalchemy.engine.Engine"
    assert "hunter2-pass" not in output
    assert logging.getLogger("sqlalchemy.engine").level == logging.WARNING


def add_logging_routes(app: FastAPI) -> None:
    """Routes that log secrets every way a careless handler could."""
    log = structlog.get_logger("roombook.careless")

    @app.post("/login")
    async def login(request: Request) -> dict[str, str]:
        body = await request.json()
        log.info(
            "login attempt",
            headers=dict(request.headers),
            body=body,
            password=body["password"],
            stored_hash=ARGON2_HASH,
            note=f"got Authorization: Bearer {JWT} and password={body['password']}",
            database="postgresql+asyncpg://roombook:db-pass-99@db/roombook",
            sessions=[{"refresh_token": "opaque-refresh-7"}],
        )
        return {"status": "ok"}

    @app.get("/whoami")
    async def whoami() -> dict[str, str]:
        bind_actor(actor_id=uuid.UUID(int=7), actor_role="admin")
        return {"status": "ok"}

    @app.get("/fail")
    async def fail() -> None:
        details = {"password": "hunter2-pass", "refresh_token": "opaque-refresh-7"}
        raise RuntimeError(f"could not store {details} for {JWT}")


@pytest.fixture(scope="module")
async def client(database_url: str) -> AsyncIterator[AsyncClient]:
    """A client of an app logging JSON lines, with the careless routes."""
    app = create_app(make_settings(database_url, log=LogSettings(json_format=True)))
    add_logging_routes(app)
    async with serve(app) as client:
        yield client


async def test_no_secret_reaches_any_log_line(client: AsyncClient) -> None:
    configure_logging(LogSettings(json_format=True), production=False)
    with captured_logs() as buffer:
        login = await client.post(
            "/login",
            json={"email": "a@roombook.dev", "password": "hunter2-pass"},
            headers={
                "Authorization": f"Bearer {JWT}",
                "Cookie": "roombook_refresh=opaque-refresh-7",
                "X-Request-ID": "req-login",
            },
        )
        failed = await client.get("/fail", headers={"Authorization": "Basic c2lnLXNlY3JldC0x"})
    assert login.json() == {"status": "ok"}
    assert failed.status_code == 500
    output = buffer.getvalue()
    for secret in (*SECRETS, "c2lnLXNlY3JldC0x"):
        assert secret not in output, secret
    records = lines(output)
    [attempt] = [r for r in records if r["event"] == "login attempt"]
    assert attempt["request_id"] == "req-login"
    assert attempt["password"] == REDACTED
    assert attempt["headers"]["authorization"] == REDACTED
    assert attempt["headers"]["cookie"] == REDACTED
    assert attempt["body"] == {"email": "a@roombook.dev", "password": REDACTED}
    assert attempt["sessions"] == [{"refresh_token": REDACTED}]
    assert attempt["database"] == f"postgresql+asyncpg://roombook:{REDACTED}@db/roombook"
    [crash] = [r for r in records if r["event"] == "unhandled exception"]
    assert "RuntimeError" in crash["exception"]
    assert "Traceback" in crash["exception"]


async def test_one_access_line_per_request(client: AsyncClient) -> None:
    configure_logging(LogSettings(json_format=True), production=False)
    with captured_logs() as buffer:
        await client.get("/health/live?token=abc", headers={"X-Request-ID": "req-access-1"})
        await client.get("/whoami", headers={"X-Request-ID": "req-access-2"})
        await client.get("/missing", headers={"X-Request-ID": "req-access-3"})
    access = [r for r in lines(buffer.getvalue()) if r["logger"] == "roombook.access"]
    assert [(r["request_id"], r["path"], r["status"]) for r in access] == [
        ("req-access-1", "/health/live", 200),
        ("req-access-2", "/whoami", 200),
        ("req-access-3", "/missing", 404),
    ]
    first = access[0]
    assert first["event"] == "request"
    assert first["method"] == "GET"
    assert isinstance(first["duration_ms"], int | float)
    assert first["duration_ms"] >= 0
    assert first["client_ip"] == "127.0.0.1"
    assert first["user_id"] is None
    assert "abc" not in json.dumps(first)
    assert access[1]["user_id"] == str(uuid.UUID(int=7))


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("password", "hunter2", REDACTED),
        ("new_password", "hunter2", REDACTED),
        ("password_hash", ARGON2_HASH, REDACTED),
        ("Authorization", "Bearer abc", REDACTED),
        ("refresh_token", "opaque", REDACTED),
        ("jwt_secret", "x", REDACTED),
        ("set-cookie", "a=b", REDACTED),
        ("api_key", "k", REDACTED),
        ("email", "a@roombook.dev", "a@roombook.dev"),
        ("count", 3, 3),
        ("maybe", None, None),
        ("body", {"password": "x", "name": "n"}, {"password": REDACTED, "name": "n"}),
        ("items", [{"token": "t"}, "plain"], [{"token": REDACTED}, "plain"]),
        ("pair", ("a", f"Bearer {JWT}"), ["a", f"Bearer {REDACTED}"]),
        ("note", f"see {JWT} now", f"see {REDACTED} now"),
    ],
)
def test_redact_value(key: str, value: Any, expected: Any) -> None:
    assert redact_value(key, value) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Authorization: Bearer abc.def-ghi", f"Authorization: Bearer {REDACTED}"),
        ("authorization: basic dXNlcjpwYXNz", f"authorization: basic {REDACTED}"),
        (f"token {JWT} seen", f"token {REDACTED} seen"),
        (f"hash {ARGON2_HASH} stored", f"hash {REDACTED} stored"),
        ("password=hunter2&next=/", f"password={REDACTED}&next=/"),
        ("?access_token=abc123", f"?access_token={REDACTED}"),
        ("client_secret=s3cr3t x", f"client_secret={REDACTED} x"),
        (
            "{'password': 'correct horse battery', 'email': 'a@b.c'}",
            f"{{'password': {REDACTED}, 'email': 'a@b.c'}}",
        ),
        ('{"refresh_token": "opaque-1"}', f'{{"refresh_token": {REDACTED}}}'),
        (
            "postgresql+asyncpg://roombook:db-pass-99@db:5432/roombook",
            f"postgresql+asyncpg://roombook:{REDACTED}@db:5432/roombook",
        ),
        ("postgres://u:p@h/d", f"postgres://u:{REDACTED}@h/d"),
        ("redis://:redis-pass@cache:6379/0", f"redis://:{REDACTED}@cache:6379/0"),
        ("postgresql://roombook@db/roombook", "postgresql://roombook@db/roombook"),
        (
            "GET /api/v1/calendar/Zm9vYmFy-_x9.ics",
            f"GET /api/v1/calendar/{REDACTED}.ics",
        ),
        (
            "path=/api/v1/calendar/Zm9vYmFy-_x9/rooms/1c584e6d.ics",
            f"path=/api/v1/calendar/{REDACTED}/rooms/1c584e6d.ics",
        ),
        ("room A1 booked for 2 hours", "room A1 booked for 2 hours"),
        ("password changed", "password changed"),
    ],
)
def test_redact_text(raw: str, expected: str) -> None:
    assert redact_text(raw) == expected


def test_context_outside_a_request_is_empty() -> None:
    def outside() -> RequestContext:
        return current_context()

    assert contextvars.Context().run(outside) == RequestContext()


def test_bind_actor_without_a_request_context_creates_one() -> None:
    def bind() -> RequestContext:
        bind_actor(actor_id=uuid.UUID(int=1), actor_role="member")
        return current_context()

    context = contextvars.Context().run(bind)
    assert context.actor_id == uuid.UUID(int=1)
    assert context.actor_role == "member"
    assert context.request_id is None


def test_bind_actor_fills_in_the_running_request() -> None:
    def request() -> RequestContext:
        start_context(RequestContext(request_id="r1", client_ip="10.0.0.1"))
        bind_actor(actor_id=uuid.UUID(int=2), actor_role="admin")
        return current_context()

    context = contextvars.Context().run(request)
    assert context == RequestContext(
        request_id="r1", client_ip="10.0.0.1", actor_id=uuid.UUID(int=2), actor_role="admin"
    )


def test_secret_str_settings_are_redacted_by_type_too(json_logs: Any) -> None:
    structlog.get_logger("roombook.test").info("settings", url=SecretStr("db-pass-99"))
    [line] = lines(json_logs.getvalue())
    assert "db-pass-99" not in json.dumps(line)


FRAGMENTS = (
    "GET",
    "/api/v1/users/me",
    "Bearer abc.def",
    "BASIC dXNlcjpwdw==",
    JWT,
    ARGON2_HASH,
    "password=x",
    "'client_secret': 'a b'",
    "Token: t0k",
    "/calendar/feed-token-1",
    "postgresql://app:pw@db/roombook",
    "redis://:pw@cache:6379",
    " ",
    "=",
    "'",
)


@given(st.lists(st.sampled_from(FRAGMENTS), max_size=6).map("".join))
def test_the_quick_check_skips_only_text_no_pattern_would_change(text: str) -> None:
    """Skipping text without a hint gives what running every pattern gives, on any mix."""
    expected = text
    for pattern, replacement in SENSITIVE_TEXT:
        expected = pattern.sub(replacement, expected)
    assert redact_text(text) == expected
