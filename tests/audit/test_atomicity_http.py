"""Through a real endpoint: the change and its audit entry commit together or not at all."""

from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.service import AuditService

NEW_USER = {
    "email": "atomic@example.com",
    "full_name": "Atomic Person",
    "password": "a-Strong-passphrase-42",
}


async def _traces(session: AsyncSession) -> tuple[int, int]:
    users = await session.scalar(
        text("SELECT count(*) FROM users WHERE email = :email"), {"email": NEW_USER["email"]}
    )
    events = await session.scalar(
        text("SELECT count(*) FROM audit_events WHERE changes -> 'after' ->> 'email' = :email"),
        {"email": NEW_USER["email"]},
    )
    return users or 0, events or 0


async def test_a_successful_change_commits_its_audit_entry(
    client: AsyncClient, admin_headers: dict[str, str], db_session: AsyncSession
) -> None:
    response = await client.post("/api/v1/users", json=NEW_USER, headers=admin_headers)

    assert response.status_code == 201
    assert response.json()["email"] == NEW_USER["email"]
    assert await _traces(db_session) == (1, 1)


async def test_a_request_failing_after_recording_leaves_no_audit_entry(
    client: AsyncClient,
    admin_headers: dict[str, str],
    db_session: AsyncSession,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    original = AuditService.record

    async def record_then_fail(self: AuditService, **kwargs: Any) -> None:
        await original(self, **kwargs)
        raise RuntimeError("the change fails after it was recorded")

    monkeypatch.setattr(AuditService, "record", record_then_fail)

    response = await client.post("/api/v1/users", json=NEW_USER, headers=admin_headers)

    assert response.status_code == 500
    assert response.json()["code"] == "internal-error"
    assert await _traces(db_session) == (0, 0)


async def test_a_failing_audit_insert_fails_the_change(
    client: AsyncClient, admin_headers: dict[str, str], db_session: AsyncSession
) -> None:
    # Every new audit row now violates a constraint, so the audit INSERT itself fails.
    await db_session.execute(
        text("ALTER TABLE audit_events ADD CONSTRAINT test_refuse CHECK (false) NOT VALID")
    )

    response = await client.post("/api/v1/users", json=NEW_USER, headers=admin_headers)

    assert response.status_code == 500
    assert response.json()["code"] == "internal-error"
    assert await _traces(db_session) == (0, 0)
