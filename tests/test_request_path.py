"""Round trips of the hot read routes: each runs only the statements it needs, and a read
sends no BEGIN/COMMIT pair."""

from typing import Any

import asyncpg
import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.audit.models import AuditEvent
from app.auth.models import AuthSession
from app.users.models import User
from app.users.schemas import Role
from tests.auth.conftest import bearer, committed_user, login
from tests.core.support import captured_statements
from tests.factories import unique_email

API = "/api/v1"
PASSWORD = "quiet harbour lanterns drift past seven bridges"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/users/me", 1),
        ("/users", 2),
        ("/auth/sessions", 2),
        ("/audit/events", 2),
    ],
)
async def test_hot_routes_send_only_the_guard_query_and_their_own(
    app: FastAPI, client: AsyncClient, admin_headers: dict[str, str], path: str, expected: int
) -> None:
    warm = await client.get(f"{API}{path}", headers=admin_headers)
    assert warm.status_code == 200, warm.text
    with captured_statements(app.state.engine) as captured:
        response = await client.get(f"{API}{path}", headers=admin_headers)
    assert response.status_code == 200, response.text
    # The test's transaction wraps each request in a savepoint; the app sends the rest.
    seen = [statement for statement, _ in captured if "SAVEPOINT" not in statement]
    assert len(seen) == expected, seen
    # The first statement is always the guard's: user and session checked together.
    assert seen[0].startswith("SELECT users.id, users.email"), seen[0]
    assert "JOIN auth_sessions" in seen[0]


@pytest.fixture
def transaction_statements(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every BEGIN, COMMIT and ROLLBACK the driver sends, recorded in order."""
    sent: list[str] = []
    execute = asyncpg.Connection.execute

    async def recording(self: asyncpg.Connection, query: str, *args: Any, **kwargs: Any) -> str:
        if query.split(" ", 1)[0].rstrip(";") in ("BEGIN", "COMMIT", "ROLLBACK"):
            sent.append(query.split(" ", 1)[0].rstrip(";"))
        result: str = await execute(self, query, *args, **kwargs)
        return result

    monkeypatch.setattr(asyncpg.Connection, "execute", recording)
    return sent


@pytest.mark.parametrize("path", ["/users/me", "/users", "/auth/sessions", "/audit/events"])
async def test_a_read_sends_no_begin_or_commit(
    app: FastAPI, committed_client: AsyncClient, transaction_statements: list[str], path: str
) -> None:
    headers = await committed_admin(app, committed_client)
    transaction_statements.clear()
    response = await committed_client.get(f"{API}{path}", headers=headers)
    assert response.status_code == 200, response.text
    assert transaction_statements == []


async def test_a_write_still_runs_in_one_transaction(
    app: FastAPI, committed_client: AsyncClient, transaction_statements: list[str]
) -> None:
    headers = await committed_admin(app, committed_client)
    me = await committed_client.get(f"{API}/users/me", headers=headers)
    transaction_statements.clear()
    with captured_statements(app.state.engine) as captured:
        response = await committed_client.patch(
            f"{API}/users/me",
            json={"full_name": "Renamed Admin"},
            headers={**headers, "If-Match": me.headers["etag"]},
        )
    assert response.status_code == 200, response.text
    # The guard's read runs alone; the update and its audit entry commit together.
    assert transaction_statements == ["BEGIN", "COMMIT"]
    assert captured[0][0].startswith("SELECT users.id, users.email")
    assert any(statement.startswith("UPDATE users") for statement, _ in captured)
    assert any("INSERT INTO audit_events" in statement for statement, _ in captured)


async def test_a_locking_read_opens_the_transaction_first(
    app: FastAPI, transaction_statements: list[str]
) -> None:
    factory: async_sessionmaker[AsyncSession] = app.state.session_factory
    async with factory() as session:
        await session.execute(select(User.id).limit(1))
        assert transaction_statements == []
        await session.execute(select(User.id).limit(1).with_for_update())
        assert transaction_statements == ["BEGIN"]
        await session.commit()
    assert transaction_statements == ["BEGIN", "COMMIT"]


async def test_a_streamed_read_runs_inside_a_transaction(
    app: FastAPI, transaction_statements: list[str]
) -> None:
    factory: async_sessionmaker[AsyncSession] = app.state.session_factory
    async with factory() as session:
        rows = await session.stream(select(func.count()).select_from(User))
        assert len([row async for row in rows]) == 1
        await session.commit()
    # asyncpg cursors exist only inside a transaction.
    assert transaction_statements == ["BEGIN", "COMMIT"]


async def committed_admin(app: FastAPI, client: AsyncClient) -> dict[str, str]:
    """Commit an admin, log in for real, and return the access token's headers."""
    email = unique_email()
    await committed_user(app, email=email, role=Role.ADMIN)
    response = await login(client, email)
    assert response.status_code == 200, response.text
    return bearer(response.json()["access_token"])


@pytest.mark.parametrize(
    ("path", "model", "at_least"),
    [("/users", User, 3), ("/audit/events", AuditEvent, 2), ("/auth/sessions", AuthSession, 1)],
    ids=["users", "audit", "sessions"],
)
async def test_lists_read_rows_not_orm_objects(
    client: AsyncClient,
    admin_headers: dict[str, str],
    path: str,
    model: type[User | AuditEvent | AuthSession],
    at_least: int,
) -> None:
    for _ in range(2):
        account = {"email": unique_email(), "full_name": "Listed", "password": PASSWORD}
        created = await client.post(f"{API}/users", json=account, headers=admin_headers)
        assert created.status_code == 201, created.text
    loaded: list[object] = []

    def record(target: object, _context: Any) -> None:
        loaded.append(target)

    event.listen(model, "load", record)
    try:
        response = await client.get(f"{API}{path}", headers=admin_headers)
    finally:
        event.remove(model, "load", record)
    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body["items"] if isinstance(body, dict) else body) >= at_least
    # A page is only shown, never changed: no object enters an identity map for it.
    assert loaded == []
