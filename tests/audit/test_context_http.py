"""Who and where over real HTTP: middleware and auth bind them in contextvars, record reads them."""

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import HttpSettings
from app.factory import create_app
from tests.conftest import CreateUser, make_settings

EVENTS = "/api/v1/audit/events"
# The test client's peer is 127.0.0.1; the proxied app trusts it and a private proxy tier.
TRUSTED = ["127.0.0.1", "10.0.0.0/8"]


@pytest.fixture
async def proxied_client(
    app: FastAPI, database_url: str, db_session: AsyncSession
) -> AsyncIterator[AsyncClient]:
    """A client of an app behind trusted proxies, sharing the test's transaction (`db_session`)."""
    proxied = create_app(make_settings(database_url, http=HttpSettings(trusted_proxies=TRUSTED)))
    async with LifespanManager(proxied):
        # With db_session active, `app` runs on the test's savepoint factory: share it.
        proxied.state.session_factory = app.state.session_factory
        transport = ASGITransport(app=proxied)
        async with AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


async def _only_event(
    client: AsyncClient, headers: dict[str, str], **filters: str
) -> dict[str, Any]:
    response = await client.get(EVENTS, params=filters, headers=headers)
    assert response.status_code == 200, response.text
    (event,) = response.json()["items"]
    return dict(event)


async def _create_user(client: AsyncClient, headers: dict[str, str]) -> str:
    response = await client.post(
        "/api/v1/users",
        json={
            "email": f"ctx-{uuid.uuid4().hex[:8]}@example.com",
            "full_name": "Context Person",
            "password": "a-Strong-passphrase-42",
        },
        headers=headers,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def test_behind_trusted_proxies_the_forwarded_client_is_recorded(
    client: AsyncClient, proxied_client: AsyncClient, admin_headers: dict[str, str]
) -> None:
    headers = {
        **admin_headers,
        "X-Forwarded-For": "198.51.100.23, 10.1.2.3",
        "X-Request-ID": "ctx-proxied-1",
        "User-Agent": "ctx-tests/2",
    }
    user_id = await _create_user(proxied_client, headers)

    event = await _only_event(client, admin_headers, entity_type="user", entity_id=user_id)

    me = (await client.get("/api/v1/users/me", headers=admin_headers)).json()
    assert event["action"] == "user.created"
    assert (event["actor_id"], event["actor_role"]) == (me["id"], "admin")
    assert event["request_id"] == "ctx-proxied-1"
    assert event["user_agent"] == "ctx-tests/2"
    # The rightmost hop not added by a trusted proxy is the client.
    assert event["client_ip"] == "198.51.100.23"


async def test_a_forwarded_header_from_an_untrusted_peer_is_ignored(
    client: AsyncClient, admin_headers: dict[str, str]
) -> None:
    headers = {**admin_headers, "X-Forwarded-For": "198.51.100.23", "X-Request-ID": "ctx-2"}
    user_id = await _create_user(client, headers)

    event = await _only_event(client, admin_headers, entity_type="user", entity_id=user_id)

    assert (event["request_id"], event["client_ip"]) == ("ctx-2", "127.0.0.1")


async def test_an_anonymous_request_is_recorded_without_an_actor(
    client: AsyncClient,
    proxied_client: AsyncClient,
    admin_headers: dict[str, str],
    create_user: CreateUser,
) -> None:
    await create_user(email="someone-ctx@example.com")
    response = await proxied_client.post(
        "/api/v1/auth/login",
        data={"username": "someone-ctx@example.com", "password": "not the password at all"},
        headers={
            "X-Forwarded-For": "203.0.113.5",
            "X-Request-ID": "ctx-anon-1",
            "User-Agent": "ctx-tests/3",
        },
    )
    assert response.status_code == 401

    events = await client.get(EVENTS, params={"action": "auth.login_failed"}, headers=admin_headers)
    (event,) = [e for e in events.json()["items"] if e["request_id"] == "ctx-anon-1"]
    assert (event["actor_id"], event["actor_role"]) == (None, "anonymous")
    assert (event["client_ip"], event["user_agent"]) == ("203.0.113.5", "ctx-tests/3")
    assert event["changes"]["after"]["reason"] == "wrong_password"
    assert "not the password at all" not in events.text
