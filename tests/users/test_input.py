"""User input the database cannot store is refused with a 422 naming the field, never a 500."""

import pytest
from httpx import AsyncClient

from tests.conftest import CreateUser
from tests.core.support import assert_invalid_fields

USERS = "/api/v1/users"
ME = f"{USERS}/me"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"full_name": "Mi\x00a"}, "full_name"),
        ({"full_name": "Mia\r\nX-Injected: 1"}, "full_name"),
        ({"email": "mia\x00@example.com", "current_password": "whatever it is 123"}, "email"),
        ({"email": "mia2@example.com", "current_password": "pass\x00word"}, "current_password"),
    ],
)
async def test_update_me_refuses_control_characters(
    client: AsyncClient, member_headers: dict[str, str], body: dict[str, str], field: str
) -> None:
    response = await client.patch(ME, json=body, headers={**member_headers, "If-Match": '"1"'})
    assert_invalid_fields(response, field)


async def test_admin_create_and_update_refuse_control_characters(
    client: AsyncClient, admin_headers: dict[str, str], member_headers: dict[str, str]
) -> None:
    created = await client.post(
        USERS,
        json={
            "email": "x@example.com",
            "full_name": "\x00",
            "password": "a long enough password 123",
        },
        headers=admin_headers,
    )
    assert_invalid_fields(created, "full_name")
    me = (await client.get(ME, headers=member_headers)).json()
    updated = await client.patch(
        f"{USERS}/{me['id']}",
        json={"full_name": "a\x1fb"},
        headers={**admin_headers, "If-Match": f'"{me["version"]}"'},
    )
    assert_invalid_fields(updated, "full_name")


@pytest.mark.parametrize("query", ["q=a%00b", "q=a%0Ab", "cursor=abc%00"])
async def test_list_filters_refuse_control_characters(
    client: AsyncClient, admin_headers: dict[str, str], query: str
) -> None:
    response = await client.get(f"{USERS}?{query}", headers=admin_headers)
    assert_invalid_fields(response, query.split("=", maxsplit=1)[0])


@pytest.mark.parametrize("value", ["yes", "1", "on", "True", ""])
async def test_active_flag_accepts_only_true_and_false(
    client: AsyncClient, admin_headers: dict[str, str], value: str
) -> None:
    response = await client.get(USERS, params={"active": value}, headers=admin_headers)
    assert_invalid_fields(response, "active")


async def test_active_flag_filters_with_true_and_false(
    client: AsyncClient, admin_headers: dict[str, str], create_user: CreateUser
) -> None:
    inactive = await create_user(active=False)
    listed = {
        value: {
            u["id"]
            for u in (
                await client.get(
                    USERS, params={"active": value, "limit": 100}, headers=admin_headers
                )
            ).json()["items"]
        }
        for value in ("true", "false")
    }
    assert str(inactive) in listed["false"]
    assert str(inactive) not in listed["true"]


@pytest.mark.parametrize("value", ["false", "true", 0, 1, None])
async def test_admin_update_takes_only_json_booleans(
    client: AsyncClient, admin_headers: dict[str, str], create_user: CreateUser, value: object
) -> None:
    user_id = await create_user()
    response = await client.patch(
        f"{USERS}/{user_id}",
        json={"is_active": value} if value is not None else {"full_name": 5},
        headers={**admin_headers, "If-Match": '"1"'},
    )
    assert_invalid_fields(response, "is_active" if value is not None else "full_name")


async def test_admin_update_takes_the_role_as_its_json_string(
    client: AsyncClient, admin_headers: dict[str, str], create_user: CreateUser
) -> None:
    user_id = await create_user()
    response = await client.patch(
        f"{USERS}/{user_id}",
        json={"role": "manager", "is_active": False},
        headers={**admin_headers, "If-Match": '"1"'},
    )
    assert response.status_code == 200, response.text
    assert response.json()["role"] == "manager"
    assert response.json()["is_active"] is False


@pytest.mark.parametrize("if_match", [None, '"999"', "*"])
async def test_an_invalid_body_is_422_whatever_if_match_says(
    client: AsyncClient, member_headers: dict[str, str], if_match: str | None
) -> None:
    # Preconditions come after the normal request checks (RFC 9110 section 13.2.1).
    headers = member_headers if if_match is None else {**member_headers, "If-Match": if_match}
    response = await client.patch(ME, json={"full_name": 5}, headers=headers)
    assert_invalid_fields(response, "full_name")


async def test_a_valid_body_still_needs_a_current_if_match(
    client: AsyncClient, member_headers: dict[str, str]
) -> None:
    missing = await client.patch(ME, json={"full_name": "Mia"}, headers=member_headers)
    assert missing.status_code == 428
    stale = await client.patch(
        ME, json={"full_name": "Mia"}, headers={**member_headers, "If-Match": '"999"'}
    )
    assert stale.status_code == 412
