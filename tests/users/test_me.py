"""`/users/me`: read with an ETag, change name and email under `If-Match`."""

import uuid

import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from tests.auth.conftest import audit_actions, audit_changes, login
from tests.conftest import DEFAULT_PASSWORD, AuthHeaders, CreateUser

ME = "/api/v1/users/me"


@pytest.fixture
async def me(
    create_user: CreateUser, auth_headers: AuthHeaders
) -> tuple[uuid.UUID, dict[str, str]]:
    """A member named Mia and her headers."""
    user_id = await create_user(email="mia@example.com", full_name="Mia")
    return user_id, await auth_headers(user_id)


async def test_me_returns_the_account_with_its_etag(
    client: AsyncClient, me: tuple[uuid.UUID, dict[str, str]]
) -> None:
    user_id, headers = me
    response = await client.get(ME, headers=headers)
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == str(user_id)
    assert body["email"] == "mia@example.com"
    assert body["role"] == "member"
    assert response.headers["etag"] == '"1"'
    assert set(body) == {
        "id",
        "email",
        "full_name",
        "role",
        "is_active",
        "version",
        "created_at",
        "updated_at",
        "last_login_at",
    }


async def test_renaming_needs_if_match_and_bumps_the_version(
    client: AsyncClient, me: tuple[uuid.UUID, dict[str, str]], db_session: AsyncSession
) -> None:
    user_id, headers = me
    missing = await client.patch(ME, json={"full_name": "Mia M."}, headers=headers)
    assert missing.status_code == 428
    assert missing.json()["code"] == "precondition-required"
    renamed = await client.patch(
        ME, json={"full_name": "Mia M."}, headers={**headers, "If-Match": '"1"'}
    )
    assert renamed.status_code == 200
    assert renamed.json()["full_name"] == "Mia M."
    assert renamed.json()["version"] == 2
    assert renamed.headers["etag"] == '"2"'
    stale = await client.patch(
        ME, json={"full_name": "Mia X."}, headers={**headers, "If-Match": '"1"'}
    )
    assert stale.status_code == 412
    assert stale.json()["code"] == "stale-version"
    weak = await client.patch(
        ME, json={"full_name": "Mia W."}, headers={**headers, "If-Match": 'W/"2"'}
    )
    assert weak.status_code == 200
    assert weak.json()["version"] == 3
    changes = await audit_changes(db_session, action="user.updated")
    assert changes[0] == {"before": {"full_name": "Mia"}, "after": {"full_name": "Mia M."}}
    assert await audit_actions(db_session, entity_id=user_id) == ["user.updated"] * 2


@pytest.mark.parametrize("value", ["*", "1", '"abc"', '"1", "2"'])
async def test_unusable_if_match_values(
    client: AsyncClient, me: tuple[uuid.UUID, dict[str, str]], value: str
) -> None:
    _, headers = me
    response = await client.patch(
        ME, json={"full_name": "Mia"}, headers={**headers, "If-Match": value}
    )
    expected = 428 if value == "*" else 412
    assert response.status_code == expected
    assert response.json()["status"] == expected


async def test_an_unchanged_patch_keeps_the_version(
    client: AsyncClient, me: tuple[uuid.UUID, dict[str, str]]
) -> None:
    _, headers = me
    response = await client.patch(
        ME,
        json={"full_name": "Mia", "email": "MIA@example.com"},
        headers={**headers, "If-Match": '"1"'},
    )
    assert response.status_code == 200
    assert response.json()["version"] == 1


async def test_email_change_needs_the_current_password(
    client: AsyncClient, me: tuple[uuid.UUID, dict[str, str]], db_session: AsyncSession
) -> None:
    user_id, headers = me
    headers = {**headers, "If-Match": '"1"'}
    without = await client.patch(ME, json={"email": "mia.new@example.com"}, headers=headers)
    assert without.status_code == 422
    assert [e["field"] for e in without.json()["errors"]] == ["current_password"]
    wrong = await client.patch(
        ME,
        json={"email": "mia.new@example.com", "current_password": "not the password at all"},
        headers=headers,
    )
    assert wrong.status_code == 403
    assert wrong.json()["code"] == "current-password-invalid"
    right = await client.patch(
        ME,
        json={"email": "Mia.New@Example.com", "current_password": DEFAULT_PASSWORD},
        headers=headers,
    )
    assert right.status_code == 200
    assert right.json()["email"] == "mia.new@example.com"
    assert (await login(client, "mia.new@example.com")).status_code == 200
    assert (await login(client, "mia@example.com")).status_code == 401
    assert "user.email_changed" in await audit_actions(db_session, entity_id=user_id)


async def test_email_change_to_a_taken_address_conflicts(
    client: AsyncClient, me: tuple[uuid.UUID, dict[str, str]], create_user: CreateUser
) -> None:
    _, headers = me
    await create_user(email="taken@example.com")
    response = await client.patch(
        ME,
        json={"email": "taken@example.com", "current_password": DEFAULT_PASSWORD},
        headers={**headers, "If-Match": '"1"'},
    )
    assert response.status_code == 409
    assert response.json()["code"] == "email-taken"


async def test_members_cannot_change_their_own_role(
    client: AsyncClient, me: tuple[uuid.UUID, dict[str, str]]
) -> None:
    _, headers = me
    response = await client.patch(
        ME, json={"role": "admin"}, headers={**headers, "If-Match": '"1"'}
    )
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["role"]
