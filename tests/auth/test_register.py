"""Self-service registration: members only, a setting to close it, the password policy."""

from typing import Any

from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import AuthSettings
from app.users.models import User
from tests.auth.conftest import REGISTER, BuildApp, audit_actions, without_request_id
from tests.conftest import CreateUser
from tests.factories import RegisterRequestFactory

GOOD = "a long enough new passphrase"


def _payload(**overrides: Any) -> dict[str, Any]:
    return {"email": "New.Member@Example.com", "password": GOOD, "full_name": " New Member "} | (
        overrides
    )


async def test_register_creates_a_member_with_normalised_email(
    client: AsyncClient, db_session: AsyncSession
) -> None:
    response = await client.post(REGISTER, json=_payload())
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["email"] == "new.member@example.com"
    assert body["full_name"] == "New Member"
    assert body["role"] == "member"
    assert body["is_active"] is True
    assert body["version"] == 1
    assert body["last_login_at"] is None
    assert "password_hash" not in body
    assert "password" not in response.text
    stored = await db_session.scalar(select(User).where(User.email == body["email"]))
    assert stored is not None
    assert stored.password_hash.startswith("$argon2id$")
    assert await audit_actions(db_session, entity_id=body["id"]) == ["user.registered"]


async def test_register_cannot_choose_a_role(client: AsyncClient) -> None:
    response = await client.post(REGISTER, json=_payload(role="admin"))
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["role"]


async def test_a_taken_email_answers_the_same_409_in_any_spelling(
    client: AsyncClient, create_user: CreateUser
) -> None:
    await create_user(email="taken@example.com")
    await create_user(email="gone@example.com", active=False)
    answers = [
        await client.post(REGISTER, json=_payload(email=email))
        for email in ("taken@example.com", "TAKEN@Example.COM", "gone@example.com")
    ]
    assert {a.status_code for a in answers} == {409}
    bodies = [without_request_id(a.json()) for a in answers]
    assert bodies[0] == bodies[1] == bodies[2]
    assert bodies[0]["code"] == "email-taken"
    # Nothing about the existing account leaks: no id, name, role or state.
    assert set(bodies[0]) == {"type", "title", "status", "detail", "instance", "code"}


async def test_policy_is_checked_before_the_email_so_a_weak_password_reveals_nothing(
    client: AsyncClient, create_user: CreateUser
) -> None:
    await create_user(email="taken@example.com")
    taken = await client.post(REGISTER, json=_payload(email="taken@example.com", password="short"))
    free = await client.post(REGISTER, json=_payload(email="free@example.com", password="short"))
    assert taken.status_code == free.status_code == 422
    assert without_request_id(taken.json()) == without_request_id(free.json())
    assert taken.json()["errors"] == [
        {"field": "password", "message": "Use at least 15 characters.", "type": "password_policy"}
    ]


async def test_invalid_fields_are_named(client: AsyncClient) -> None:
    response = await client.post(
        REGISTER, json={"email": "not-an-email", "password": GOOD, "full_name": "  "}
    )
    assert response.status_code == 422
    assert sorted(e["field"] for e in response.json()["errors"]) == ["email", "full_name"]
    assert "not-an-email" not in response.text


async def test_registration_can_be_turned_off(build_app: BuildApp) -> None:
    _, client = await build_app(auth=AuthSettings(registration_enabled=False))
    response = await client.post(REGISTER, json=_payload())
    assert response.status_code == 403
    assert response.json()["code"] == "registration-closed"


async def test_factory_built_sign_ups_become_members(client: AsyncClient) -> None:
    for data in RegisterRequestFactory.batch(3):
        response = await client.post(REGISTER, json=data.model_dump(mode="json"))
        assert response.status_code == 201, response.text
        assert response.json()["email"] == data.email
        assert response.json()["role"] == "member"
