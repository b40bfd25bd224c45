"""Passwords, hashes, tokens and `Authorization` never show in responses, logs or the audit."""

from fastapi import FastAPI
from httpx import AsyncClient, Response
from sqlalchemy import cast, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.types import Text

from app.audit.models import AuditEvent
from app.users.models import User
from app.users.schemas import Role
from tests.auth.conftest import (
    COOKIE,
    LOGIN,
    LOGOUT,
    ME,
    PASSWORD,
    REFRESH,
    REGISTER,
    SESSIONS,
    bearer,
    login,
    raw_logs,
)
from tests.conftest import AuthHeaders, CreateUser

EMAIL = "secretive@example.com"
FIRST = "my first very secret passphrase"
SECOND = "my second very secret passphrase"
WRONG = "a wrong but secret passphrase"


async def test_no_secret_leaks_anywhere_during_a_full_session(
    app: FastAPI,
    https_client: AsyncClient,
    db_session: AsyncSession,
    create_user: CreateUser,
    auth_headers: AuthHeaders,
) -> None:
    client = https_client
    admin = await auth_headers(await create_user(role=Role.ADMIN))
    responses: list[Response] = []
    token_responses: list[Response] = []
    with raw_logs() as logs:
        responses.append(
            await client.post(
                REGISTER, json={"email": EMAIL, "password": FIRST, "full_name": "Secretive"}
            )
        )
        responses.append(await login(client, EMAIL, WRONG))
        cookie_login = await login(client, EMAIL, FIRST, delivery="cookie")
        body_login = await login(client, EMAIL, FIRST, delivery="body")
        token_responses += [cookie_login, body_login]
        access = body_login.json()["access_token"]
        refresh_token = body_login.json()["refresh_token"]
        cookie_token = client.cookies[COOKIE]
        refreshed = await client.post(REFRESH)
        token_responses.append(refreshed)
        responses.append(await client.get(ME, headers=bearer(access)))
        responses.append(await client.get(SESSIONS, headers=bearer(access)))
        responses.append(await client.get("/api/v1/users", headers=admin))
        responses.append(
            await client.post(
                PASSWORD,
                json={"current_password": FIRST, "new_password": SECOND},
                headers=bearer(access),
            )
        )
        responses.append(await client.post(REFRESH, json={"refresh_token": refresh_token}))
        responses.append(await client.post(LOGOUT, headers=bearer(access)))
        responses.append(await client.get(ME, headers=bearer(access)))

    user = await db_session.scalar(
        select(User).where(User.email == EMAIL).execution_options(populate_existing=True)
    )
    assert user is not None
    tokens = [access, refresh_token, cookie_token, refreshed.json()["access_token"]]
    secrets = [FIRST, SECOND, WRONG, user.password_hash, *tokens]

    for response in responses:
        exposed = response.text + repr(response.headers.raw)
        assert all(secret not in exposed for secret in secrets), response.request.url
        assert "argon2" not in exposed
    for response in token_responses:
        assert response.request.url.path in (LOGIN, REFRESH)
        assert all(secret not in response.text for secret in (FIRST, user.password_hash))

    assert logs.lines, "the flow should have logged something"
    assert all(secret not in logs.text for secret in secrets)
    assert "Bearer" not in logs.text
    assert "argon2" not in logs.text

    audit_text = " ".join((await db_session.scalars(select(cast(AuditEvent.changes, Text)))).all())
    assert all(secret not in audit_text for secret in secrets)
    assert "argon2" not in audit_text
