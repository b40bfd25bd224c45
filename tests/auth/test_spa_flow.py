"""The SPA flow end to end, through the public API only (the issue's "done means")."""

from httpx import AsyncClient

from tests.auth.conftest import COOKIE, LOGIN, LOGOUT, ME, PASSWORD, REFRESH, REGISTER, bearer

EMAIL = "Spa.User@Example.com"
PASSWORD_1 = "tram lines under the autumn moon"
PASSWORD_2 = "seven quiet herons over the lake"


async def _login(client: AsyncClient, password: str) -> str:
    response = await client.post(LOGIN, data={"username": EMAIL, "password": password})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["refresh_token"] is None
    assert response.headers["cache-control"] == "no-store"
    token: str = body["access_token"]
    return token


async def test_register_login_refresh_reuse_relogin_password_logout(
    https_client: AsyncClient,
) -> None:
    client = https_client
    registered = await client.post(
        REGISTER, json={"email": EMAIL, "password": PASSWORD_1, "full_name": "Spa User"}
    )
    assert registered.status_code == 201, registered.text
    assert registered.json()["role"] == "member"
    assert registered.json()["email"] == "spa.user@example.com"

    access = await _login(client, PASSWORD_1)
    first_refresh = client.cookies[COOKIE]
    me = await client.get(ME, headers=bearer(access))
    assert me.status_code == 200
    assert me.json()["email"] == "spa.user@example.com"

    for _ in range(2):
        refreshed = await client.post(REFRESH)
        assert refreshed.status_code == 200, refreshed.text
        assert refreshed.headers["cache-control"] == "no-store"
        access = refreshed.json()["access_token"]
    latest_refresh = client.cookies[COOKIE]
    assert latest_refresh != first_refresh
    assert (await client.get(ME, headers=bearer(access))).status_code == 200

    client.cookies.clear()
    reused = await client.post(REFRESH, headers={"Cookie": f"{COOKIE}={first_refresh}"})
    assert reused.status_code == 401
    assert reused.json()["code"] == "invalid-refresh-token"
    gone = await client.get(ME, headers=bearer(access))
    assert gone.status_code == 401
    assert gone.json()["code"] == "not-authenticated"
    latest = await client.post(REFRESH, headers={"Cookie": f"{COOKIE}={latest_refresh}"})
    assert latest.status_code == 401
    assert latest.json()["code"] == "invalid-refresh-token"

    first_tab = await _login(client, PASSWORD_1)
    second_tab = await _login(client, PASSWORD_1)
    changed = await client.post(
        PASSWORD,
        json={"current_password": PASSWORD_1, "new_password": PASSWORD_2},
        headers=bearer(second_tab),
    )
    assert changed.status_code == 204, changed.text
    assert (await client.get(ME, headers=bearer(first_tab))).status_code == 401
    assert (await client.get(ME, headers=bearer(second_tab))).status_code == 200

    logged_out = await client.post(LOGOUT, headers=bearer(second_tab))
    assert logged_out.status_code == 204
    assert COOKIE not in client.cookies
    after = await client.get(ME, headers=bearer(second_tab))
    assert after.status_code == 401
    assert after.json()["code"] == "not-authenticated"
