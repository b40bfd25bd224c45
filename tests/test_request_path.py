"""Round trips of the hot read routes: each runs only the statements it needs."""

import pytest
from fastapi import FastAPI
from httpx import AsyncClient

from tests.core.support import captured_statements

API = "/api/v1"


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
