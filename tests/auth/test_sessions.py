"""Sessions: list, end one, logout, and password changes that end the others."""

import uuid

from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.models import AuditEvent
from app.auth.models import AuthSession
from tests.auth.conftest import (
    LOGOUT,
    ME,
    PASSWORD,
    REFRESH,
    SESSIONS,
    audit_actions,
    bearer,
    login,
)
from tests.conftest import DEFAULT_PASSWORD, AuthHeaders, CreateUser

EMAIL = "sessions.user@example.com"
NEW_PASSWORD = "an entirely fresh passphrase"


async def _login(client: AsyncClient, agent: str) -> dict[str, str]:
    response = await login(client, EMAIL, headers={"User-Agent": agent})
    assert response.status_code == 200
    tokens: dict[str, str] = response.json()
    return tokens


async def test_sessions_lists_live_sessions_and_marks_the_current_one(
    client: AsyncClient, create_user: CreateUser
) -> None:
    await create_user(email=EMAIL)
    laptop = await _login(client, "Laptop")
    phone = await _login(client, "Phone")
    response = await client.get(SESSIONS, headers=bearer(phone["access_token"]))
    assert response.status_code == 200
    listed = response.json()
    assert [s["user_agent"] for s in listed] == ["Phone", "Laptop"]
    assert [s["current"] for s in listed] == [True, False]
    assert set(listed[0]) == {
        "id",
        "created_at",
        "last_used_at",
        "expires_at",
        "user_agent",
        "client_ip",
        "current",
    }
    assert listed[0]["client_ip"] == "127.0.0.1"
    assert laptop["refresh_token"] not in response.text


async def test_ending_another_session_kills_its_tokens_at_once(
    client: AsyncClient, create_user: CreateUser, db_session: AsyncSession
) -> None:
    await create_user(email=EMAIL)
    laptop = await _login(client, "Laptop")
    phone = await _login(client, "Phone")
    listed = (await client.get(SESSIONS, headers=bearer(phone["access_token"]))).json()
    laptop_id = next(s["id"] for s in listed if s["user_agent"] == "Laptop")
    ended = await client.delete(f"{SESSIONS}/{laptop_id}", headers=bearer(phone["access_token"]))
    assert ended.status_code == 204
    assert ended.content == b""
    assert (await client.get(ME, headers=bearer(laptop["access_token"]))).status_code == 401
    refreshed = await client.post(REFRESH, json={"refresh_token": laptop["refresh_token"]})
    assert refreshed.status_code == 401
    assert (await client.get(ME, headers=bearer(phone["access_token"]))).status_code == 200
    assert await audit_actions(db_session, entity_id=laptop_id) == ["auth.session_revoked"]
    again = await client.delete(f"{SESSIONS}/{laptop_id}", headers=bearer(phone["access_token"]))
    assert again.status_code == 404
    assert again.json()["code"] == "session-not-found"


async def test_someone_elses_session_is_not_found(
    client: AsyncClient, create_user: CreateUser, auth_headers: AuthHeaders
) -> None:
    await create_user(email=EMAIL)
    mine = await _login(client, "Laptop")
    other_headers = await auth_headers(await create_user())
    other_sessions = (await client.get(SESSIONS, headers=other_headers)).json()
    response = await client.delete(
        f"{SESSIONS}/{other_sessions[0]['id']}", headers=bearer(mine["access_token"])
    )
    assert response.status_code == 404
    assert response.json()["code"] == "session-not-found"
    assert (await client.get(ME, headers=other_headers)).status_code == 200
    unknown = await client.delete(
        f"{SESSIONS}/{uuid.uuid4()}", headers=bearer(mine["access_token"])
    )
    assert unknown.status_code == 404
    assert unknown.json()["code"] == "session-not-found"


async def test_logout_ends_the_session_and_clears_the_cookie(
    https_client: AsyncClient, create_user: CreateUser, db_session: AsyncSession
) -> None:
    await create_user(email=EMAIL)
    response = await login(https_client, EMAIL, delivery="cookie")
    access = response.json()["access_token"]
    logged_out = await https_client.post(LOGOUT, headers=bearer(access))
    assert logged_out.status_code == 204
    cookie = logged_out.headers["set-cookie"]
    assert 'roombook_refresh=""' in cookie
    assert "Max-Age=0" in cookie
    assert "Path=/api/v1/auth" in cookie
    assert (await https_client.get(ME, headers=bearer(access))).status_code == 401
    assert "auth.logout" in await audit_actions(db_session)
    twice = await https_client.post(LOGOUT, headers=bearer(access))
    assert twice.status_code == 401
    assert twice.json()["code"] == "not-authenticated"


async def test_logout_of_body_clients_kills_the_refresh_token(
    client: AsyncClient, create_user: CreateUser
) -> None:
    await create_user(email=EMAIL)
    tokens = await _login(client, "CLI")
    assert (await client.post(LOGOUT, headers=bearer(tokens["access_token"]))).status_code == 204
    refreshed = await client.post(REFRESH, json={"refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 401
    assert refreshed.json()["code"] == "invalid-refresh-token"


async def test_password_change_ends_every_other_session(
    client: AsyncClient, create_user: CreateUser, db_session: AsyncSession
) -> None:
    user_id = await create_user(email=EMAIL)
    laptop = await _login(client, "Laptop")
    phone = await _login(client, "Phone")
    changed = await client.post(
        PASSWORD,
        json={"current_password": DEFAULT_PASSWORD, "new_password": NEW_PASSWORD},
        headers=bearer(phone["access_token"]),
    )
    assert changed.status_code == 204
    assert changed.content == b""
    ended = await client.get(ME, headers=bearer(laptop["access_token"]))
    assert ended.json()["code"] == "not-authenticated"
    laptop_refresh = await client.post(REFRESH, json={"refresh_token": laptop["refresh_token"]})
    assert laptop_refresh.json()["code"] == "invalid-refresh-token"
    kept = await client.get(ME, headers=bearer(phone["access_token"]))
    assert kept.json()["id"] == str(user_id)
    assert (await login(client, EMAIL)).json()["code"] == "invalid-credentials"
    assert (await login(client, EMAIL, NEW_PASSWORD)).status_code == 200
    assert "user.password_changed" in await audit_actions(db_session, entity_id=user_id)
    laptop_session = await db_session.scalar(
        select(AuthSession.id).where(AuthSession.user_agent == "Laptop")
    )
    revoked = await db_session.execute(
        select(AuditEvent.entity_type, AuditEvent.entity_id, AuditEvent.changes).where(
            AuditEvent.action == "auth.session_revoked"
        )
    )
    # Filed under the session it ended, like every other session event.
    assert [tuple(row) for row in revoked] == [
        ("auth_session", str(laptop_session), {"after": {"reason": "password_changed"}})
    ]


async def test_password_change_needs_the_current_password_and_a_good_new_one(
    client: AsyncClient, create_user: CreateUser
) -> None:
    await create_user(email=EMAIL)
    tokens = await _login(client, "Laptop")
    headers = bearer(tokens["access_token"])
    wrong = await client.post(
        PASSWORD,
        json={"current_password": "not my password at all", "new_password": NEW_PASSWORD},
        headers=headers,
    )
    assert wrong.status_code == 403
    assert wrong.json()["code"] == "current-password-invalid"
    weak = await client.post(
        PASSWORD,
        json={
            "current_password": DEFAULT_PASSWORD,
            "new_password": "sessions.user-2024-passphrase",
        },
        headers=headers,
    )
    assert weak.status_code == 422
    assert weak.json()["errors"] == [
        {
            "field": "new_password",
            "message": "Do not use your email address in your password.",
            "type": "password_policy",
        }
    ]
    assert (await client.get(ME, headers=headers)).status_code == 200
