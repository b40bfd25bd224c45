"""`/users/me`: read with an ETag, change name and email under `If-Match`."""

import uuid

import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from app.users.repository import UserRepository
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
    # If-Match compares strongly (RFC 9110): a weak tag never matches, even the current one.
    weak = await client.patch(
        ME, json={"full_name": "Mia W."}, headers={**headers, "If-Match": 'W/"2"'}
    )
    assert weak.status_code == 412
    assert weak.json()["code"] == "precondition-failed"
    listed = await client.patch(
        ME, json={"full_name": "Mia L."}, headers={**headers, "If-Match": '"7", W/"9", "2"'}
    )
    assert listed.status_code == 200
    assert listed.json()["version"] == 3
    changes = await audit_changes(db_session, action="user.updated")
    assert changes[0] == {"before": {"full_name": "Mia"}, "after": {"full_name": "Mia M."}}
    assert await audit_actions(db_session, entity_id=user_id) == ["user.updated"] * 2


@pytest.mark.parametrize(
    ("value", "status", "code"),
    [
        pytest.param("*", 428, "precondition-required", id="star-protects-nothing"),
        pytest.param(" * ", 428, "precondition-required", id="star-spaced"),
        pytest.param("1", 412, "precondition-failed", id="unquoted"),
        pytest.param('"abc"', 412, "precondition-failed", id="not-a-version"),
        pytest.param('W/"1"', 412, "precondition-failed", id="weak-current"),
        pytest.param('"1" "2"', 412, "precondition-failed", id="list-without-comma"),
        pytest.param("", 412, "precondition-failed", id="empty"),
        pytest.param('"7", "8"', 412, "stale-version", id="list-of-stale"),
        pytest.param('"2"', 412, "stale-version", id="future"),
    ],
)
async def test_unusable_if_match_values(
    client: AsyncClient,
    me: tuple[uuid.UUID, dict[str, str]],
    value: str,
    status: int,
    code: str,
) -> None:
    _, headers = me
    response = await client.patch(
        ME, json={"full_name": "Mia Changed"}, headers={**headers, "If-Match": value}
    )
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == status
    assert response.json()["code"] == code
    current = await client.get(ME, headers=headers)
    assert (current.json()["full_name"], current.headers["etag"]) == ("Mia", '"1"')


@pytest.mark.parametrize("value", ['"1"', ' "1" ', '"1",', '"5", "1"', 'W/"1", "1"'], ids=repr)
async def test_if_match_lists_match_any_strong_tag(
    client: AsyncClient, me: tuple[uuid.UUID, dict[str, str]], value: str
) -> None:
    _, headers = me
    response = await client.patch(
        ME, json={"full_name": "Mia Listed"}, headers={**headers, "If-Match": value}
    )
    assert response.status_code == 200, response.text
    assert response.json()["full_name"] == "Mia Listed"
    assert response.headers["etag"] == '"2"'


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


async def test_an_email_taken_between_check_and_write_conflicts_instead_of_failing(
    client: AsyncClient,
    me: tuple[uuid.UUID, dict[str, str]],
    create_user: CreateUser,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, headers = me
    await create_user(email="taken@example.com")

    async def looks_free(self: UserRepository, *, email: str) -> bool:
        return False  # as if the other account had not committed yet when checked

    monkeypatch.setattr(UserRepository, "email_taken", looks_free)
    response = await client.patch(
        ME,
        json={"email": "taken@example.com", "current_password": DEFAULT_PASSWORD},
        headers={**headers, "If-Match": '"1"'},
    )
    assert response.status_code == 409, response.text
    assert response.json()["code"] == "email-taken"
    unchanged = await client.get(ME, headers=headers)
    assert (unchanged.json()["email"], unchanged.json()["version"]) == ("mia@example.com", 1)


async def test_members_cannot_change_their_own_role(
    client: AsyncClient, me: tuple[uuid.UUID, dict[str, str]]
) -> None:
    _, headers = me
    response = await client.patch(
        ME, json={"role": "admin"}, headers={**headers, "If-Match": '"1"'}
    )
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["role"]
