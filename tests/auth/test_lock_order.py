"""Lock order with real commits: users, then sessions, then the audit head, in every writer.

A refresh holds its session's row lock and then appends to the audit chain. A writer that
appended to the chain first and then waited for that session would deadlock with it
(PostgreSQL would abort one after a second and the request would be retried).
"""

import asyncio
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient, Response
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.auth.models import AuthSession
from app.auth.repository import AuthRepository
from app.users.schemas import Role
from tests.auth.conftest import ME, PASSWORD, REFRESH, bearer, committed_user, login, raw_logs
from tests.conftest import DEFAULT_PASSWORD

USERS = "/api/v1/users"
EMAIL = "locks@example.com"
NEW_PASSWORD = "a completely different passphrase"
WAITING_ON_A_LOCK = text(
    "SELECT count(*) FROM pg_stat_activity "
    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
)


async def _until_a_transaction_waits_for_a_lock(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        for _ in range(500):
            if await connection.scalar(WAITING_ON_A_LOCK):
                return
            await connection.rollback()  # activity is snapshotted per transaction
            await asyncio.sleep(0.01)
    raise AssertionError("the concurrent writer never waited for the session lock")


async def _tokens(client: AsyncClient, email: str) -> dict[str, str]:
    response = await login(client, email)
    assert response.status_code == 200, response.text
    tokens: dict[str, str] = response.json()
    return tokens


async def _race_with_a_paused_refresh(
    app: FastAPI,
    client: AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
    *,
    refresh_token: str,
    writer: Callable[[], Coroutine[Any, Any, Response]],
) -> tuple[Response, Response, str]:
    """Refresh until it holds the session lock, run `writer` until it waits, then let go."""
    locked, release = asyncio.Event(), asyncio.Event()
    lock_session = AuthRepository.lock_session

    async def lock_then_pause(self: AuthRepository, *, session_id: uuid.UUID) -> AuthSession | None:
        found = await lock_session(self, session_id=session_id)
        locked.set()
        await release.wait()
        return found

    monkeypatch.setattr(AuthRepository, "lock_session", lock_then_pause)
    with raw_logs() as logs:
        refresh = asyncio.create_task(client.post(REFRESH, json={"refresh_token": refresh_token}))
        await locked.wait()
        write = asyncio.create_task(writer())
        await _until_a_transaction_waits_for_a_lock(app.state.engine)
        release.set()
        refreshed, written = await refresh, await write
    monkeypatch.undo()
    return refreshed, written, logs.text


async def test_deactivation_racing_a_refresh_neither_deadlocks_nor_leaves_the_session_alive(
    app: FastAPI, committed_client: AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    await committed_user(app, email="root@example.com", role=Role.ADMIN)
    admin = bearer((await _tokens(committed_client, "root@example.com"))["access_token"])
    user_id = await committed_user(app, email=EMAIL)
    tokens = await _tokens(committed_client, EMAIL)
    etag = (await committed_client.get(f"{USERS}/{user_id}", headers=admin)).headers["etag"]

    refreshed, deactivated, logs = await _race_with_a_paused_refresh(
        app,
        committed_client,
        monkeypatch,
        refresh_token=tokens["refresh_token"],
        writer=lambda: committed_client.delete(
            f"{USERS}/{user_id}", headers={**admin, "If-Match": etag}
        ),
    )
    assert refreshed.status_code == 200, refreshed.text
    assert deactivated.status_code == 200, deactivated.text
    assert deactivated.json()["is_active"] is False
    assert "retrying" not in logs
    # The refresh committed first; the deactivation then ended the session it refreshed.
    late = await committed_client.get(ME, headers=bearer(refreshed.json()["access_token"]))
    assert late.json()["code"] == "not-authenticated"


async def test_password_change_racing_a_refresh_elsewhere_neither_deadlocks_nor_spares_it(
    app: FastAPI, committed_client: AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    await committed_user(app, email=EMAIL)
    here = await _tokens(committed_client, EMAIL)
    elsewhere = await _tokens(committed_client, EMAIL)

    refreshed, changed, logs = await _race_with_a_paused_refresh(
        app,
        committed_client,
        monkeypatch,
        refresh_token=elsewhere["refresh_token"],
        writer=lambda: committed_client.post(
            PASSWORD,
            json={"current_password": DEFAULT_PASSWORD, "new_password": NEW_PASSWORD},
            headers=bearer(here["access_token"]),
        ),
    )
    assert refreshed.status_code == 200, refreshed.text
    assert changed.status_code == 204, changed.text
    assert "retrying" not in logs
    late = await committed_client.get(ME, headers=bearer(refreshed.json()["access_token"]))
    assert late.json()["code"] == "not-authenticated"
    still = await committed_client.get(ME, headers=bearer(here["access_token"]))
    assert still.json()["email"] == EMAIL
