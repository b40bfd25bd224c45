"""UserService rules that HTTP cannot reach deterministically."""

import uuid

import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.bootstrap import build_account_services
from app.core.preconditions import StaleVersion
from app.users.schemas import AdminUpdate
from app.users.service import UserNotFound
from tests.conftest import CreateUser


async def test_a_change_committed_between_read_and_write_is_refused(
    app: FastAPI, db_session: AsyncSession, create_user: CreateUser
) -> None:
    _, users = build_account_services(
        db_session, hasher=app.state.password_hasher, settings=app.state.settings
    )
    user_id = await create_user(full_name="Before")
    held = await users.get(user_id=user_id)  # the identity map keeps it while referenced
    assert held.version == 1
    # Another writer moves the row on; this session still holds version 1 in memory.
    await db_session.execute(text("UPDATE users SET version = 2 WHERE id = :id"), {"id": user_id})
    with pytest.raises(StaleVersion, match="changed concurrently"):
        await users.update_by_admin(
            user_id=user_id, expected_versions=frozenset({1}), data=AdminUpdate(full_name="After")
        )


async def test_locking_the_credentials_of_an_unknown_user_is_a_404(
    app: FastAPI, db_session: AsyncSession
) -> None:
    _, users = build_account_services(
        db_session, hasher=app.state.password_hasher, settings=app.state.settings
    )
    with pytest.raises(UserNotFound) as missing:
        await users.lock_credentials(user_id=uuid.uuid4())
    assert missing.value.code == "user-not-found"
