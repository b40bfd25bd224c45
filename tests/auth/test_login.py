"""Login: cookie and body delivery, same failure for every reason, slow-down, rehash."""

import uuid
from datetime import UTC, datetime, timedelta
from http.cookies import SimpleCookie

import jwt
import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from pydantic import SecretStr
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.models import AuthSession, LoginThrottle
from app.core.config import AuthSettings, HttpSettings, SecuritySettings
from app.core.security import PasswordHasher
from app.users.models import User
from app.users.schemas import Role
from tests.auth.conftest import (
    COOKIE,
    ME,
    REFRESH,
    BuildApp,
    audit_actions,
    audit_changes,
    bearer,
    login,
    without_request_id,
)
from tests.conftest import DEFAULT_PASSWORD, TEST_SECRET, CreateUser

EMAIL = "login.user@example.com"
WRONG = "definitely not the right passphrase"


async def _throttle(session: AsyncSession, user_id: uuid.UUID) -> LoginThrottle | None:
    statement = select(LoginThrottle).where(
        LoginThrottle.user_id == user_id, LoginThrottle.scope == "login"
    )
    return await session.scalar(statement.execution_options(populate_existing=True))


async def test_login_sets_an_http_only_strict_secure_cookie_scoped_to_auth(
    https_client: AsyncClient, create_user: CreateUser, db_session: AsyncSession
) -> None:
    user_id = await create_user(email=EMAIL)
    response = await login(https_client, EMAIL, delivery="cookie")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token"}
    assert body["refresh_token"] is None
    assert body["expires_in"] == 600
    assert response.headers["cache-control"] == "no-store"
    headers = response.headers.get_list("set-cookie")
    assert all(body["access_token"] not in header for header in headers)
    jar = SimpleCookie()
    for header in headers:
        jar.load(header)
    cookie = jar[COOKIE]
    assert len(cookie.value) >= 43  # 256 random bits, URL-safe base64
    assert cookie["httponly"] is True
    assert cookie["secure"] is True
    assert cookie["samesite"].lower() == "strict"
    assert cookie["path"] == "/api/v1/auth"
    assert cookie["domain"] == ""  # host-only: never shared with sibling subdomains
    assert int(cookie["max-age"]) == pytest.approx(14 * 86_400, abs=5)
    user = await db_session.get(User, user_id, populate_existing=True)
    assert user is not None
    assert user.last_login_at is not None
    assert await audit_actions(db_session, entity_id=user_id) == ["auth.login_succeeded"]


async def test_body_delivery_returns_the_refresh_token_and_sets_no_refresh_cookie(
    client: AsyncClient, create_user: CreateUser
) -> None:
    await create_user(email=EMAIL)
    response = await login(client, "  Login.User@EXAMPLE.com ", delivery="body")
    assert response.status_code == 200
    # Only the device cookie: the refresh token travels in the body alone.
    assert [h.split("=", 1)[0] for h in response.headers.get_list("set-cookie")] == [
        "roombook_device"
    ]
    assert len(response.json()["refresh_token"]) >= 43
    me = await client.get(ME, headers=bearer(response.json()["access_token"]))
    assert me.json()["email"] == EMAIL


async def test_login_records_session_device_details(
    client: AsyncClient, create_user: CreateUser, db_session: AsyncSession
) -> None:
    user_id = await create_user(email=EMAIL)
    response = await login(client, EMAIL, headers={"User-Agent": "RoombookTest/1.0"})
    assert response.status_code == 200
    stored = await db_session.scalar(select(AuthSession).where(AuthSession.user_id == user_id))
    assert stored is not None
    assert stored.user_agent == "RoombookTest/1.0"
    assert stored.client_ip == "127.0.0.1"
    assert stored.expires_at - stored.last_used_at == timedelta(days=14)


async def test_unknown_email_wrong_password_and_inactive_account_answer_alike(
    client: AsyncClient, create_user: CreateUser
) -> None:
    await create_user(email=EMAIL)
    await create_user(email="inactive@example.com", active=False)
    answers = [
        await login(client, "nobody@example.com"),
        await login(client, EMAIL, WRONG),
        await login(client, "inactive@example.com"),
        await login(client, "not even an email"),
    ]
    assert {a.status_code for a in answers} == {401}
    bodies = [without_request_id(a.json()) for a in answers]
    assert all(body == bodies[0] for body in bodies)
    assert bodies[0]["code"] == "invalid-credentials"
    assert all(a.headers["www-authenticate"] == "Bearer" for a in answers)


async def test_failed_logins_are_counted_and_audited_despite_the_401(
    client: AsyncClient, create_user: CreateUser, db_session: AsyncSession
) -> None:
    user_id = await create_user(email=EMAIL)
    assert (await login(client, EMAIL, WRONG)).status_code == 401
    assert (await login(client, "ghost@example.com", WRONG)).status_code == 401
    throttle = await _throttle(db_session, user_id)
    assert throttle is not None
    assert throttle.failures == 1
    assert throttle.blocked_until is None
    changes = await audit_changes(db_session, action="auth.login_failed")
    # An unknown email changes nothing, so it leaves no audit entry (only a security event).
    assert [c["after"]["reason"] for c in changes] == ["wrong_password"]


async def test_consecutive_failures_open_a_growing_delay_window_then_login_works_again(
    client: AsyncClient, create_user: CreateUser, db_session: AsyncSession
) -> None:
    user_id = await create_user(email=EMAIL)
    for _ in range(4):
        assert (await login(client, EMAIL, WRONG)).status_code == 401
    throttle = await _throttle(db_session, user_id)
    assert throttle is not None
    assert throttle.blocked_until is None
    assert (await login(client, EMAIL, WRONG)).status_code == 401
    throttle = await _throttle(db_session, user_id)
    assert throttle is not None
    assert throttle.blocked_until is not None
    first_window = throttle.blocked_until - datetime.now(UTC)
    assert timedelta(0) < first_window <= timedelta(seconds=2)

    # Inside the window even the right password is refused, with the same answer.
    throttled = await login(client, EMAIL)
    wrong = await login(client, "ghost@example.com")
    assert throttled.status_code == 401
    assert without_request_id(throttled.json()) == without_request_id(wrong.json())
    assert "auth.login_throttled" not in await audit_actions(db_session, entity_id=user_id)
    still = await _throttle(db_session, user_id)
    assert still is not None
    assert still.failures == 5

    await _expire_window(db_session, user_id)
    assert (await login(client, EMAIL, WRONG)).status_code == 401
    grown = await _throttle(db_session, user_id)
    assert grown is not None
    assert grown.blocked_until is not None
    assert grown.blocked_until - datetime.now(UTC) > timedelta(seconds=2)

    await _expire_window(db_session, user_id)
    assert (await login(client, EMAIL)).status_code == 200
    assert await _throttle(db_session, user_id) is None


async def test_the_delay_window_is_capped_never_a_permanent_lock(
    client: AsyncClient, create_user: CreateUser, db_session: AsyncSession
) -> None:
    user_id = await create_user(email=EMAIL)
    db_session.add(LoginThrottle(user_id=user_id, scope="login", failures=60))
    await db_session.flush()
    assert (await login(client, EMAIL, WRONG)).status_code == 401
    throttle = await _throttle(db_session, user_id)
    assert throttle is not None
    assert throttle.blocked_until is not None
    assert throttle.blocked_until - datetime.now(UTC) <= timedelta(seconds=900)


async def _expire_window(session: AsyncSession, user_id: uuid.UUID) -> None:
    await session.execute(
        update(LoginThrottle)
        .where(LoginThrottle.user_id == user_id)
        .values(blocked_until=datetime.now(UTC) - timedelta(seconds=1))
    )


async def test_login_rehashes_a_password_hashed_with_older_parameters(
    app: FastAPI, client: AsyncClient, create_user: CreateUser, db_session: AsyncSession
) -> None:
    user_id = await create_user(email=EMAIL)
    old = PasswordHasher(time_cost=2, memory_kib=32, parallelism=1, concurrency=1)
    old_hash = await old.hash(DEFAULT_PASSWORD)
    await db_session.execute(update(User).where(User.id == user_id).values(password_hash=old_hash))
    assert (await login(client, EMAIL)).status_code == 200
    user = await db_session.get(User, user_id, populate_existing=True)
    assert user is not None
    assert user.password_hash != old_hash
    assert not app.state.password_hasher.needs_rehash(user.password_hash)
    assert await audit_actions(db_session, entity_id=user_id) == [
        "user.password_rehashed",
        "auth.login_succeeded",
    ]


async def test_login_with_current_parameters_does_not_rehash(
    client: AsyncClient, create_user: CreateUser, db_session: AsyncSession
) -> None:
    user_id = await create_user(email=EMAIL, role=Role.MANAGER)
    before = await db_session.scalar(select(User.password_hash).where(User.id == user_id))
    response = await login(client, EMAIL)
    assert response.status_code == 200
    claims_role = (await client.get(ME, headers=bearer(response.json()["access_token"]))).json()
    assert claims_role["role"] == "manager"
    after = await db_session.scalar(
        select(User.password_hash)
        .where(User.id == user_id)
        .execution_options(populate_existing=True)
    )
    assert after == before


async def test_login_form_requires_its_fields(
    client: AsyncClient,
) -> None:
    missing = await client.post("/api/v1/auth/login", data={"username": EMAIL})
    assert missing.status_code == 422
    assert [e["field"] for e in missing.json()["errors"]] == ["password"]
    delivery = await client.post(
        "/api/v1/auth/login",
        data={"username": EMAIL, "password": "x", "refresh_token_delivery": "carrier-pigeon"},
    )
    assert delivery.status_code == 422
    assert [e["field"] for e in delivery.json()["errors"]] == ["refresh_token_delivery"]


async def test_cookie_refresh_of_a_cookie_login(
    https_client: AsyncClient, create_user: CreateUser
) -> None:
    await create_user(email=EMAIL)
    await login(https_client, EMAIL, delivery="cookie")
    first = https_client.cookies[COOKIE]
    response = await https_client.post(REFRESH)
    assert response.status_code == 200
    assert response.json()["refresh_token"] is None
    assert https_client.cookies[COOKIE] != first


async def test_the_access_token_names_user_role_and_session_and_lives_ten_minutes(
    app: FastAPI, client: AsyncClient, create_user: CreateUser, db_session: AsyncSession
) -> None:
    user_id = await create_user(email=EMAIL, role=Role.MANAGER)
    body = (await login(client, EMAIL)).json()
    token = body["access_token"]
    claims = app.state.token_codec.decode(token)
    stored = await db_session.scalar(select(AuthSession).where(AuthSession.user_id == user_id))
    assert stored is not None
    assert (claims["sub"], claims["role"], claims["sid"]) == (
        str(user_id),
        "manager",
        str(stored.id),
    )
    assert claims["exp"] - claims["iat"] == body["expires_in"] == 600
    assert jwt.get_unverified_header(token)["typ"] == "at+jwt"


async def test_production_always_sends_the_refresh_cookie_secure(
    build_app: BuildApp, create_user: CreateUser
) -> None:
    # Production refuses cheap hashing, so this app hashes with the OWASP minimum.
    _, client = await build_app(
        environment="production",
        security=SecuritySettings(jwt_secret=SecretStr(TEST_SECRET)),
        auth=AuthSettings(refresh_cookie_secure=False),
        http=HttpSettings(allowed_hosts=["testserver"]),
    )
    await create_user(email=EMAIL)
    response = await login(client, EMAIL, delivery="cookie")
    assert response.status_code == 200, response.text
    assert response.json()["refresh_token"] is None
    cookie = response.headers["set-cookie"]
    assert "; Secure" in cookie
    assert "HttpOnly" in cookie
