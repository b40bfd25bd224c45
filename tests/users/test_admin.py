"""Account administration: list, create, read, change and deactivate users, with ETags."""

import uuid
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.models import AuthSession
from app.users.repository import UserRepository
from app.users.schemas import Role
from tests.auth.conftest import audit_actions, audit_changes, login
from tests.conftest import AuthHeaders, CreateUser
from tests.factories import UserCreateFactory

USERS = "/api/v1/users"
NEW = {
    "email": "Fresh.Face@Example.com",
    "full_name": "Fresh Face",
    "password": "a good long passphrase",
}


def _if_match(headers: dict[str, str], version: int) -> dict[str, str]:
    return {**headers, "If-Match": f'"{version}"'}


async def test_admin_creates_a_user_with_a_role(
    client: AsyncClient, admin_headers: dict[str, str], db_session: AsyncSession
) -> None:
    response = await client.post(USERS, json={**NEW, "role": "manager"}, headers=admin_headers)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["email"] == "fresh.face@example.com"
    assert body["role"] == "manager"
    assert response.headers["location"] == f"{USERS}/{body['id']}"
    assert response.headers["etag"] == '"1"'
    assert "password" not in response.text
    assert await audit_actions(db_session, entity_id=body["id"]) == ["user.created"]
    assert (await login(client, "fresh.face@example.com", NEW["password"])).status_code == 200


async def test_create_rejects_duplicates_weak_passwords_and_unknown_roles(
    client: AsyncClient, admin_headers: dict[str, str], create_user: CreateUser
) -> None:
    await create_user(email="fresh.face@example.com")
    duplicate = await client.post(USERS, json=NEW, headers=admin_headers)
    assert duplicate.status_code == 409
    assert duplicate.json()["code"] == "email-taken"
    weak = await client.post(
        USERS,
        json={**NEW, "email": "other@example.com", "password": "password"},
        headers=admin_headers,
    )
    assert weak.status_code == 422
    assert weak.json()["errors"] == [
        {
            "field": "password",
            "message": "Use at least 15 characters.",
            "type": "password_policy",
        }
    ]
    role = await client.post(
        USERS, json={**NEW, "email": "other@example.com", "role": "root"}, headers=admin_headers
    )
    assert role.status_code == 422
    assert [e["field"] for e in role.json()["errors"]] == ["role"]


async def test_get_returns_the_user_and_its_etag_or_404(
    client: AsyncClient, admin_headers: dict[str, str], create_user: CreateUser
) -> None:
    user_id = await create_user(full_name="Gina")
    response = await client.get(f"{USERS}/{user_id}", headers=admin_headers)
    assert response.status_code == 200
    assert response.json()["full_name"] == "Gina"
    assert response.headers["etag"] == '"1"'
    missing = await client.get(f"{USERS}/{uuid.uuid4()}", headers=admin_headers)
    assert missing.status_code == 404
    assert missing.json()["code"] == "user-not-found"
    malformed = await client.get(f"{USERS}/not-a-uuid", headers=admin_headers)
    assert malformed.status_code == 404
    assert malformed.json()["code"] == "not-found"


async def _names(client: AsyncClient, headers: dict[str, str], **params: Any) -> list[str]:
    response = await client.get(USERS, params=params, headers=headers)
    assert response.status_code == 200, response.text
    return [item["full_name"] for item in response.json()["items"]]


async def test_list_filters_by_role_active_and_text(
    client: AsyncClient, admin_headers: dict[str, str], create_user: CreateUser
) -> None:
    await create_user(full_name="Alice Manager", role=Role.MANAGER, email="alice@corp.example")
    await create_user(full_name="Bob Member", email="bob@home.example")
    await create_user(full_name="Carol Gone", email="carol@corp.example", active=False)
    assert await _names(client, admin_headers, role="manager") == ["Alice Manager"]
    assert await _names(client, admin_headers, active="false") == ["Carol Gone"]
    assert sorted(await _names(client, admin_headers, q="CORP.example")) == [
        "Alice Manager",
        "Carol Gone",
    ]
    assert await _names(client, admin_headers, q="bob m") == ["Bob Member"]
    assert await _names(client, admin_headers, q="100%") == []
    assert await _names(client, admin_headers, q="_") == []
    everyone = await client.get(USERS, headers=admin_headers)
    assert {i["version"] for i in everyone.json()["items"]} == {1}


async def test_list_pages_with_a_keyset_cursor(
    client: AsyncClient, admin_headers: dict[str, str], create_user: CreateUser
) -> None:
    for index in range(5):
        await create_user(full_name=f"Paged {index}", role=Role.MANAGER)
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"role": "manager", "limit": 2}
        if cursor:
            params["cursor"] = cursor
        response = await client.get(USERS, params=params, headers=admin_headers)
        body = response.json()
        seen += [item["full_name"] for item in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert sorted(seen) == [f"Paged {i}" for i in range(5)]
    tampered = await client.get(USERS, params={"cursor": "abc"}, headers=admin_headers)
    assert tampered.status_code == 422


async def test_admin_changes_name_and_role_under_if_match(
    client: AsyncClient,
    admin_headers: dict[str, str],
    create_user: CreateUser,
    db_session: AsyncSession,
) -> None:
    user_id = await create_user(full_name="Dana")
    url = f"{USERS}/{user_id}"
    missing = await client.patch(url, json={"role": "manager"}, headers=admin_headers)
    assert missing.status_code == 428
    assert missing.json()["code"] == "precondition-required"
    changed = await client.patch(
        url, json={"role": "manager", "full_name": "Dana D."}, headers=_if_match(admin_headers, 1)
    )
    assert changed.status_code == 200
    assert changed.json()["role"] == "manager"
    assert changed.json()["full_name"] == "Dana D."
    assert changed.headers["etag"] == '"2"'
    stale = await client.patch(url, json={"role": "admin"}, headers=_if_match(admin_headers, 1))
    assert stale.status_code == 412
    assert stale.json()["code"] == "stale-version"
    assert await audit_actions(db_session, entity_id=user_id) == [
        "user.updated",
        "user.role_changed",
    ]
    role_change = await audit_changes(db_session, action="user.role_changed")
    assert role_change == [{"before": {"role": "member"}, "after": {"role": "manager"}}]
    missing_user = await client.patch(
        f"{USERS}/{uuid.uuid4()}", json={"role": "admin"}, headers=_if_match(admin_headers, 1)
    )
    assert missing_user.status_code == 404
    assert missing_user.json()["code"] == "user-not-found"


async def test_deactivation_ends_every_session_and_reactivation_allows_login(
    client: AsyncClient,
    admin_headers: dict[str, str],
    create_user: CreateUser,
    auth_headers: AuthHeaders,
    db_session: AsyncSession,
) -> None:
    user_id = await create_user(email="leaver@example.com")
    headers = await auth_headers(user_id)
    tokens = (await login(client, "leaver@example.com")).json()
    # A login changes last_login_at, so it moves the version (and ETag) on too.
    current = await client.get(f"{USERS}/{user_id}", headers=admin_headers)
    assert current.headers["etag"] == '"2"'
    assert current.json()["last_login_at"] is not None
    deactivated = await client.delete(
        f"{USERS}/{user_id}", headers={**admin_headers, "If-Match": current.headers["etag"]}
    )
    assert deactivated.status_code == 200
    assert deactivated.json()["is_active"] is False
    assert deactivated.headers["etag"] == '"3"'
    live = await db_session.scalars(
        select(AuthSession.revoked_reason)
        .where(AuthSession.user_id == user_id)
        .execution_options(populate_existing=True)
    )
    assert set(live) == {"user_deactivated"}
    assert (await client.get("/api/v1/users/me", headers=headers)).status_code == 401
    refreshed = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert refreshed.status_code == 401
    refused = await login(client, "leaver@example.com")
    assert refused.status_code == 401
    assert refused.json()["code"] == "invalid-credentials"
    # Accounts are never deleted: the admin can still read it.
    still = await client.get(f"{USERS}/{user_id}", headers=admin_headers)
    assert still.json()["is_active"] is False

    reactivated = await client.patch(
        f"{USERS}/{user_id}", json={"is_active": True}, headers=_if_match(admin_headers, 3)
    )
    assert reactivated.status_code == 200
    assert reactivated.json()["is_active"] is True
    assert (await login(client, "leaver@example.com")).status_code == 200
    actions = await audit_actions(db_session, entity_id=user_id)
    assert "user.deactivated" in actions
    assert "user.reactivated" in actions


async def test_deactivate_needs_if_match(
    client: AsyncClient, admin_headers: dict[str, str], create_user: CreateUser
) -> None:
    user_id = await create_user()
    missing = await client.delete(f"{USERS}/{user_id}", headers=admin_headers)
    assert missing.status_code == 428
    assert missing.json()["code"] == "precondition-required"
    stale = await client.delete(f"{USERS}/{user_id}", headers=_if_match(admin_headers, 7))
    assert stale.status_code == 412
    assert stale.json()["code"] == "stale-version"


async def test_the_last_active_admin_cannot_be_demoted_or_deactivated(
    client: AsyncClient, create_user: CreateUser, auth_headers: AuthHeaders
) -> None:
    admin_id = await create_user(role=Role.ADMIN)
    headers = await auth_headers(admin_id)
    url = f"{USERS}/{admin_id}"
    demoted = await client.patch(url, json={"role": "member"}, headers=_if_match(headers, 1))
    assert demoted.status_code == 409
    assert demoted.json()["code"] == "last-admin"
    deactivated = await client.delete(url, headers=_if_match(headers, 1))
    assert deactivated.status_code == 409
    assert deactivated.json()["code"] == "last-admin"
    renamed = await client.patch(url, json={"full_name": "Root"}, headers=_if_match(headers, 1))
    assert renamed.status_code == 200
    assert (renamed.json()["full_name"], renamed.json()["role"]) == ("Root", "admin")

    second = await create_user(role=Role.ADMIN)
    await create_user(role=Role.ADMIN, active=False)
    allowed = await client.patch(url, json={"role": "manager"}, headers=_if_match(headers, 2))
    assert allowed.status_code == 200
    assert allowed.json()["role"] == "manager"
    # The demoted admin has lost admin rights at once, token or not.
    refused = await client.get(USERS, headers=headers)
    assert refused.status_code == 403
    assert refused.json()["code"] == "role-forbidden"
    last = await client.delete(
        f"{USERS}/{second}", headers=_if_match(await auth_headers(second), 1)
    )
    assert last.status_code == 409
    assert last.json()["code"] == "last-admin"


async def test_a_sign_up_racing_for_the_same_email_gets_409_not_500(
    client: AsyncClient,
    admin_headers: dict[str, str],
    create_user: CreateUser,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await create_user(email="fresh.face@example.com")

    async def looks_free(self: UserRepository, *, email: str) -> bool:
        return False  # as if the other sign-up had not committed yet when checked

    monkeypatch.setattr(UserRepository, "email_taken", looks_free)
    response = await client.post(USERS, json=NEW, headers=admin_headers)
    assert response.status_code == 409
    assert response.json()["code"] == "email-taken"
    # The savepoint kept the request's transaction usable.
    assert (await client.get(USERS, headers=admin_headers)).status_code == 200


@pytest.mark.parametrize("role", list(Role))
async def test_admin_creates_factory_built_accounts_of_every_role(
    client: AsyncClient, admin_headers: dict[str, str], role: Role
) -> None:
    data = UserCreateFactory.build(role=role)
    response = await client.post(USERS, json=data.model_dump(mode="json"), headers=admin_headers)
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["email"], body["full_name"], body["role"]) == (data.email, data.full_name, role)
    assert data.password not in response.text
