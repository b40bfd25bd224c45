"""Current-password checks: slowed down per account like login, and every failure audited."""

from httpx import AsyncClient, Response
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import AuthSettings
from tests.auth.conftest import ME, PASSWORD, BuildApp, audit_actions, audit_changes, bearer, login
from tests.conftest import DEFAULT_PASSWORD, CreateUser

EMAIL = "checks.user@example.com"
WRONG = "not my password at all, surely"
NEW_PASSWORD = "a completely different passphrase"
SLOW = AuthSettings(login_delay_base_s=60)
"""A first window of a minute: no test here can outrun it."""


async def _logged_in(client: AsyncClient) -> dict[str, str]:
    response = await login(client, EMAIL)
    assert response.status_code == 200, response.text
    return bearer(response.json()["access_token"])


async def _change(client: AsyncClient, headers: dict[str, str], current: str) -> Response:
    return await client.post(
        PASSWORD,
        json={"current_password": current, "new_password": NEW_PASSWORD},
        headers=headers,
    )


async def test_wrong_current_passwords_slow_the_password_change_down(
    build_app: BuildApp, create_user: CreateUser, db_session: AsyncSession
) -> None:
    _, client = await build_app(auth=SLOW)
    user_id = await create_user(email=EMAIL)
    headers = await _logged_in(client)
    guesses = [(await _change(client, headers, WRONG)).status_code for _ in range(25)]
    right = await _change(client, headers, DEFAULT_PASSWORD)

    assert guesses == [403] * 5 + [429] * 20
    assert right.status_code == 429
    assert right.json()["code"] == "current-password-throttled"
    assert 0 < int(right.headers["retry-after"]) <= 60
    changes = await audit_changes(db_session, action="auth.password_check_failed")
    assert [c["after"]["purpose"] for c in changes] == ["password_change"] * 5
    assert [c["after"]["failures"] for c in changes] == [1, 2, 3, 4, 5]
    assert changes[-1]["after"]["blocked_until"] is not None
    actions = await audit_actions(db_session, entity_id=user_id)
    assert actions.count("auth.password_check_failed") == 5


async def test_wrong_current_passwords_slow_the_email_change_down(
    build_app: BuildApp, create_user: CreateUser, db_session: AsyncSession
) -> None:
    _, client = await build_app(auth=SLOW)
    await create_user(email=EMAIL)
    headers = await _logged_in(client)
    statuses = []
    for password in [WRONG] * 6 + [DEFAULT_PASSWORD]:
        etag = (await client.get(ME, headers=headers)).headers["etag"]
        response = await client.patch(
            ME,
            json={"email": "checks.new@example.com", "current_password": password},
            headers={**headers, "If-Match": etag},
        )
        statuses.append(response.status_code)
    assert statuses == [403] * 5 + [429, 429]
    changes = await audit_changes(db_session, action="auth.password_check_failed")
    assert [c["after"]["purpose"] for c in changes] == ["email_change"] * 5


async def test_a_right_current_password_clears_the_count(
    build_app: BuildApp, create_user: CreateUser
) -> None:
    _, client = await build_app(auth=SLOW)
    await create_user(email=EMAIL)
    headers = await _logged_in(client)
    for _ in range(4):
        assert (await _change(client, headers, WRONG)).status_code == 403
    assert (await _change(client, headers, DEFAULT_PASSWORD)).status_code == 204
    # Five more wrong ones are all checked (403): the count started over at the success.
    statuses = [(await _change(client, headers, WRONG)).status_code for _ in range(5)]
    assert statuses == [403] * 5


async def test_a_login_slow_down_does_not_stop_the_owner_changing_the_password(
    build_app: BuildApp, create_user: CreateUser
) -> None:
    _, client = await build_app(auth=SLOW)
    await create_user(email=EMAIL)
    headers = await _logged_in(client)
    for _ in range(6):
        assert (await login(client, EMAIL, WRONG)).status_code == 401
    assert (await _change(client, headers, DEFAULT_PASSWORD)).status_code == 204
