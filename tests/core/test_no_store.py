"""Every API answer, personal data above all, tells caches not to keep it."""

import pytest
from httpx import AsyncClient

from app.users.schemas import Role
from tests.conftest import AuthHeaders, CreateUser


async def test_personal_data_is_never_cached(
    client: AsyncClient, create_user: CreateUser, auth_headers: AuthHeaders
) -> None:
    admin = await create_user(role=Role.ADMIN)
    headers = await auth_headers(admin)
    for path in (
        "/api/v1/users/me",
        "/api/v1/users",
        f"/api/v1/users/{admin}",
        "/api/v1/auth/sessions",
        "/api/v1/audit/events",
    ):
        response = await client.get(path, headers=headers)
        assert response.status_code == 200, (path, response.text)
        assert response.headers["cache-control"] == "no-store", path


@pytest.mark.parametrize("path", ["/api/v1/users/me", "/api/v1/no-such-route"])
async def test_api_errors_are_not_cached_either(client: AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code in (401, 404)
    assert response.headers["cache-control"] == "no-store"


async def test_probes_outside_the_api_carry_no_cache_rule(client: AsyncClient) -> None:
    response = await client.get("/health/live")
    assert "cache-control" not in response.headers


async def test_calendar_feed_errors_are_not_cached(client: AsyncClient) -> None:
    # Feeds set `private, no-cache` on their answers (test_feeds.py); their 404s set nothing.
    response = await client.get("/api/v1/calendar/unknown-token.ics")
    assert response.status_code == 404
    assert response.headers["cache-control"] == "no-store"
