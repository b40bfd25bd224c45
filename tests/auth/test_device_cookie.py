"""Trusted devices: a browser that logged in before keeps getting in during a slow-down.

The attack: one wrong guess every few minutes keeps an account slowed down, so without
an exemption the owner's right password is refused for good (targeted lockout).
"""

import base64
import hashlib
import hmac
import uuid
from datetime import UTC, datetime, timedelta
from http.cookies import SimpleCookie

import pytest
from fastapi import FastAPI
from httpx import AsyncClient, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.devices import DeviceCookies
from app.auth.models import LoginThrottle
from app.auth.service import utc_now
from app.core.config import AuthSettings
from tests.auth.conftest import BuildApp, login
from tests.conftest import DEFAULT_PASSWORD, CreateUser

EMAIL = "device.owner@example.com"
OTHER = "device.other@example.com"
WRONG = "definitely not the right passphrase"
DEVICE = "roombook_device"
SLOW = AuthSettings(login_delay_base_s=60)
"""A first window of a minute: no test here can outrun the slow-down."""


def _device_cookie(response: Response) -> SimpleCookie:
    jar = SimpleCookie()
    for header in response.headers.get_list("set-cookie"):
        jar.load(header)
    return jar


async def _device_of(client: AsyncClient, email: str) -> str:
    """Log in as `email` and return the device cookie the login set."""
    response = await login(client, email)
    assert response.status_code == 200, response.text
    return _device_cookie(response)[DEVICE].value


async def _login_from(
    client: AsyncClient, email: str, password: str, device: str | None
) -> Response:
    client.cookies.clear()  # only the cookie named here is presented
    headers = {"Cookie": f"{DEVICE}={device}"} if device else None
    return await login(client, email, password, headers=headers)


async def _slow_down(client: AsyncClient, email: str) -> None:
    """An attacker without the cookie guesses until the account is slowed down."""
    for _ in range(6):
        assert (await _login_from(client, email, WRONG, None)).status_code == 401


async def _login_failures(session: AsyncSession, user_id: uuid.UUID) -> int | None:
    statement = select(LoginThrottle.failures).where(
        LoginThrottle.user_id == user_id, LoginThrottle.scope == "login"
    )
    return await session.scalar(statement.execution_options(populate_existing=True))


async def test_login_sets_a_signed_http_only_strict_device_cookie_scoped_to_auth(
    https_client: AsyncClient, create_user: CreateUser
) -> None:
    user_id = await create_user(email=EMAIL)
    response = await login(https_client, EMAIL)
    cookie = _device_cookie(response)[DEVICE]
    assert cookie.value.startswith(user_id.hex + ".")
    assert cookie["httponly"] is True
    assert cookie["secure"] is True
    assert cookie["samesite"].lower() == "strict"
    assert cookie["path"] == "/api/v1/auth"
    assert int(cookie["max-age"]) == 180 * 86_400
    # Only a successful login marks a device.
    assert DEVICE not in _device_cookie(await login(https_client, EMAIL, WRONG))


async def test_the_owner_with_the_cookie_gets_in_while_the_attacker_stays_slowed_down(
    build_app: BuildApp, create_user: CreateUser, db_session: AsyncSession
) -> None:
    _, client = await build_app(auth=SLOW)
    user_id = await create_user(email=EMAIL)
    device = await _device_of(client, EMAIL)
    await _slow_down(client, EMAIL)
    slowed_down = await _login_failures(db_session, user_id)

    owner = await _login_from(client, EMAIL, DEFAULT_PASSWORD, device)
    attacker = await _login_from(client, EMAIL, DEFAULT_PASSWORD, None)

    assert owner.status_code == 200, owner.text
    assert attacker.status_code == 401
    # The owner's login leaves the attacker's slow-down in place.
    assert slowed_down == 5
    assert await _login_failures(db_session, user_id) == slowed_down


@pytest.mark.parametrize("forgery", ["tampered", "other_user", "expired", "garbage"])
async def test_a_forged_foreign_or_stale_cookie_gives_no_exemption(
    app: FastAPI, build_app: BuildApp, create_user: CreateUser, forgery: str
) -> None:
    _, client = await build_app(auth=SLOW)
    await create_user(email=EMAIL)
    other_id = await create_user(email=OTHER)
    own = await _device_of(client, EMAIL)
    cookies = DeviceCookies(
        secret=app.state.settings.security.jwt_secret,
        lifetime_s=180 * 86_400,
        clock=lambda: utc_now() - timedelta(days=181),
    )
    presented = {
        "tampered": own[:-2] + ("AA" if not own.endswith("AA") else "BB"),
        "other_user": await _device_of(client, OTHER),
        "expired": cookies.issue(user_id=uuid.UUID(own.split(".")[0])),
        "garbage": "not.a.device.cookie",
    }[forgery]
    assert other_id.hex not in own
    await _slow_down(client, EMAIL)
    assert (await _login_from(client, EMAIL, DEFAULT_PASSWORD, presented)).status_code == 401
    assert (await _login_from(client, EMAIL, DEFAULT_PASSWORD, own)).status_code == 200


async def test_a_trusted_device_spends_its_own_small_budget_then_counts_as_unknown(
    build_app: BuildApp, create_user: CreateUser, db_session: AsyncSession
) -> None:
    _, client = await build_app(auth=SLOW)
    user_id = await create_user(email=EMAIL)
    device = await _device_of(client, EMAIL)
    for _ in range(5):
        assert (await _login_from(client, EMAIL, WRONG, device)).status_code == 401
    # Its failures were its own: the account-wide count is untouched.
    assert await _login_failures(db_session, user_id) is None
    await _slow_down(client, EMAIL)
    assert (await _login_from(client, EMAIL, DEFAULT_PASSWORD, device)).status_code == 401


async def test_the_cookie_is_signed_with_a_key_of_its_own(app: FastAPI) -> None:
    """The key is derived from the signing secret, never the secret itself."""
    secret = app.state.settings.security.jwt_secret
    cookies = DeviceCookies(secret=secret, lifetime_s=60, clock=lambda: datetime.now(UTC))
    user_id = uuid.uuid4()
    payload, _, mac = cookies.issue(user_id=user_id).rpartition(".")
    with_the_bare_secret = hmac.new(
        secret.get_secret_value().encode(), payload.encode(), hashlib.sha256
    ).digest()
    assert base64.urlsafe_b64encode(with_the_bare_secret).rstrip(b"=").decode() != mac
    assert cookies.read(f"{payload}.{mac}", user_id=user_id) is not None
