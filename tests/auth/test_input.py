"""Auth input the database cannot store is refused with a 422 naming the field, never a 500."""

import json

import pytest
from httpx import AsyncClient

from tests.auth.conftest import LOGIN, PASSWORD, REFRESH, REGISTER
from tests.conftest import DEFAULT_PASSWORD
from tests.core.support import assert_invalid_fields

NAME = "Nora Null"
STRONG = "correct horse battery staple 42"


@pytest.mark.parametrize(
    ("form", "field"),
    [
        ({"username": "ab\x00c@example.org", "password": DEFAULT_PASSWORD}, "username"),
        ({"username": "ab\x07c@example.org", "password": DEFAULT_PASSWORD}, "username"),
        ({"username": "nora@example.org", "password": f"{DEFAULT_PASSWORD}\x00"}, "password"),
    ],
)
async def test_login_form_refuses_control_characters(
    client: AsyncClient, form: dict[str, str], field: str
) -> None:
    assert_invalid_fields(await client.post(LOGIN, data=form), field)


async def test_login_form_refuses_percent_encoded_nul(client: AsyncClient) -> None:
    body = f"username=ab%00c%40example.org&password={DEFAULT_PASSWORD.replace(' ', '+')}"
    response = await client.post(
        LOGIN, content=body, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert_invalid_fields(response, "username")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "nora@example.org", "password": STRONG, "full_name": "No\x00ra"}, "full_name"),
        ({"email": "nora@example.org", "password": STRONG, "full_name": "No\tra"}, "full_name"),
        ({"email": "no\x00ra@example.org", "password": STRONG, "full_name": NAME}, "email"),
        ({"email": "nora@example.org", "password": f"{STRONG}\x1b", "full_name": NAME}, "password"),
    ],
)
async def test_register_refuses_control_characters(
    client: AsyncClient, body: dict[str, str], field: str
) -> None:
    assert_invalid_fields(await client.post(REGISTER, json=body), field)


async def test_register_refuses_a_lone_surrogate(client: AsyncClient) -> None:
    # Valid JSON (an escaped lone surrogate) that asyncpg cannot encode as UTF-8.
    raw = f'{{"email": "nora@example.org", "password": "{STRONG}", "full_name": "No\\ud800ra"}}'
    response = await client.post(
        REGISTER, content=raw, headers={"Content-Type": "application/json"}
    )
    assert_invalid_fields(response, "full_name")


async def test_refresh_token_in_the_body_refuses_control_characters(client: AsyncClient) -> None:
    assert_invalid_fields(
        await client.post(REFRESH, json={"refresh_token": "abc\x00def"}), "refresh_token"
    )


async def test_password_change_refuses_control_characters(
    client: AsyncClient, member_headers: dict[str, str]
) -> None:
    response = await client.post(
        PASSWORD,
        json={"current_password": DEFAULT_PASSWORD, "new_password": f"{STRONG}\x00"},
        headers=member_headers,
    )
    assert_invalid_fields(response, "new_password")


async def test_a_megabyte_of_unknown_keys_gets_a_small_answer(client: AsyncClient) -> None:
    flood = json.dumps({f"{i:x}": 1 for i in range(110_000)}, separators=(",", ":"))
    assert 1_000_000 < len(flood) < 1_048_576
    response = await client.post(
        REGISTER, content=flood, headers={"Content-Type": "application/json"}
    )
    (error,) = assert_invalid_fields(response, "body")
    assert error["type"] == "too_many_fields"
    assert len(response.content) < 1024


async def test_login_sent_as_json_is_415(client: AsyncClient) -> None:
    response = await client.post(
        LOGIN, json={"username": "nora@example.org", "password": DEFAULT_PASSWORD}
    )
    assert response.status_code == 415, response.text
    assert response.json()["detail"] == "Send the body as application/x-www-form-urlencoded."


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
async def test_register_sent_as_anything_but_json_is_415(
    client: AsyncClient, content_type: str
) -> None:
    document = json.dumps({"email": "nora@example.org", "password": STRONG, "full_name": NAME})
    response = await client.post(REGISTER, content=document, headers={"Content-Type": content_type})
    assert response.status_code == 415, response.text
    assert response.json()["code"] == "unsupported-media-type"


async def test_refresh_from_the_cookie_needs_no_media_type(client: AsyncClient) -> None:
    # No body at all: nothing to check, and the missing cookie is what answers.
    response = await client.post(REFRESH)
    assert response.status_code == 401
