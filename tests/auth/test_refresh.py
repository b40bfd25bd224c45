"""Refresh rotation: one live token per session, reuse ends the family, grace for twin tabs."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.auth.models import AuthSession, RefreshToken
from app.auth.repository import AuthRepository
from app.auth.service import hash_refresh_token
from app.core.config import AuthSettings, HttpSettings
from app.factory import create_app
from app.users.models import User
from tests.auth.conftest import (
    COOKIE,
    ME,
    REFRESH,
    BuildApp,
    audit_actions,
    bearer,
    committed_user,
    login,
)
from tests.conftest import CreateUser, make_settings

EMAIL = "refresh.user@example.com"


async def _tokens(client: AsyncClient) -> dict[str, str]:
    response = await login(client, EMAIL)
    assert response.status_code == 200
    tokens: dict[str, str] = response.json()
    return tokens


async def _refresh(client: AsyncClient, token: str) -> dict[str, str]:
    response = await client.post(REFRESH, json={"refresh_token": token})
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    tokens: dict[str, str] = response.json()
    return tokens


async def _session_of(session: AsyncSession, token: str) -> AuthSession:
    statement = (
        select(AuthSession)
        .join(RefreshToken, RefreshToken.session_id == AuthSession.id)
        .where(RefreshToken.token_hash == hash_refresh_token(token))
        .execution_options(populate_existing=True)
    )
    found = await session.scalar(statement)
    assert found is not None
    return found


async def test_refresh_rotates_and_keeps_only_a_hash(
    client: AsyncClient, create_user: CreateUser, db_session: AsyncSession
) -> None:
    await create_user(email=EMAIL)
    first = await _tokens(client)
    second = await _refresh(client, first["refresh_token"])
    assert second["refresh_token"] not in (None, first["refresh_token"])
    assert second["access_token"] != first["access_token"]
    assert (await client.get(ME, headers=bearer(second["access_token"]))).status_code == 200
    stored = (await db_session.scalars(select(RefreshToken.token_hash))).all()
    assert first["refresh_token"].encode() not in stored
    assert hash_refresh_token(second["refresh_token"]) in stored
    auth_session = await _session_of(db_session, second["refresh_token"])
    assert auth_session.generation == 1
    assert "auth.token_refreshed" in await audit_actions(db_session, entity_id=auth_session.id)


async def test_reusing_a_rotated_token_revokes_the_whole_family(
    client: AsyncClient, create_user: CreateUser, db_session: AsyncSession
) -> None:
    await create_user(email=EMAIL)
    first = await _tokens(client)
    second = await _refresh(client, first["refresh_token"])
    third = await _refresh(client, second["refresh_token"])

    reused = await client.post(REFRESH, json={"refresh_token": first["refresh_token"]})
    assert reused.status_code == 401
    assert reused.headers["www-authenticate"] == "Bearer"
    assert reused.json()["code"] == "invalid-refresh-token"
    auth_session = await _session_of(db_session, first["refresh_token"])
    assert auth_session.revoked_reason == "refresh_reused"
    assert "auth.refresh_reused" in await audit_actions(db_session, entity_id=auth_session.id)
    dead = await client.post(REFRESH, json={"refresh_token": third["refresh_token"]})
    assert dead.status_code == 401
    assert (await client.get(ME, headers=bearer(third["access_token"]))).status_code == 401


async def test_the_just_replaced_token_within_the_grace_window_gets_only_an_access_token(
    client: AsyncClient, create_user: CreateUser, db_session: AsyncSession
) -> None:
    await create_user(email=EMAIL)
    first = await _tokens(client)
    second = await _refresh(client, first["refresh_token"])
    twin = await _refresh(client, first["refresh_token"])
    assert twin["refresh_token"] is None
    assert (await client.get(ME, headers=bearer(twin["access_token"]))).status_code == 200
    # No second branch: the successor is still the one live token.
    third = await _refresh(client, second["refresh_token"])
    assert third["refresh_token"]
    auth_session = await _session_of(db_session, third["refresh_token"])
    live = await db_session.scalar(
        select(func.count())
        .select_from(RefreshToken)
        .where(RefreshToken.session_id == auth_session.id, RefreshToken.rotated_at.is_(None))
    )
    assert live == 1


async def test_the_just_replaced_token_after_the_grace_window_is_reuse(
    client: AsyncClient, create_user: CreateUser, db_session: AsyncSession
) -> None:
    await create_user(email=EMAIL)
    first = await _tokens(client)
    second = await _refresh(client, first["refresh_token"])
    await db_session.execute(
        update(RefreshToken)
        .where(RefreshToken.token_hash == hash_refresh_token(first["refresh_token"]))
        .values(rotated_at=datetime.now(UTC) - timedelta(seconds=6))
    )
    late = await client.post(REFRESH, json={"refresh_token": first["refresh_token"]})
    assert late.status_code == 401
    assert late.json()["code"] == "invalid-refresh-token"
    auth_session = await _session_of(db_session, first["refresh_token"])
    assert auth_session.revoked_reason == "refresh_reused"
    successor = await client.post(REFRESH, json={"refresh_token": second["refresh_token"]})
    assert successor.status_code == 401
    assert successor.json()["code"] == "invalid-refresh-token"


async def test_unknown_missing_and_idle_or_expired_sessions_are_refused(
    client: AsyncClient,
    https_client: AsyncClient,
    create_user: CreateUser,
    db_session: AsyncSession,
) -> None:
    await create_user(email=EMAIL)
    unknown = await client.post(REFRESH, json={"refresh_token": "made-up"})
    assert unknown.status_code == 401
    assert unknown.json()["code"] == "invalid-refresh-token"
    missing = await https_client.post(REFRESH)
    assert missing.status_code == 401
    assert missing.json()["code"] == "invalid-refresh-token"
    empty = await client.post(REFRESH, json={"refresh_token": ""})
    assert empty.status_code == 422
    assert [e["field"] for e in empty.json()["errors"]] == ["refresh_token"]

    idle = await _tokens(client)
    idle_session = await _session_of(db_session, idle["refresh_token"])
    await db_session.execute(
        update(AuthSession)
        .where(AuthSession.id == idle_session.id)
        .values(last_used_at=datetime.now(UTC) - timedelta(days=1, seconds=1))
    )
    await assert_session_over(client, idle)

    old = await _tokens(client)
    old_session = await _session_of(db_session, old["refresh_token"])
    await db_session.execute(
        update(AuthSession)
        .where(AuthSession.id == old_session.id)
        .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
    )
    await assert_session_over(client, old)


async def test_refreshing_keeps_a_session_alive_but_never_past_its_absolute_end(
    client: AsyncClient, create_user: CreateUser, db_session: AsyncSession
) -> None:
    await create_user(email=EMAIL)
    tokens = await _tokens(client)
    auth_session = await _session_of(db_session, tokens["refresh_token"])
    absolute_end = auth_session.expires_at
    # Nearly idle: a refresh restarts the idle clock.
    await db_session.execute(
        update(AuthSession)
        .where(AuthSession.id == auth_session.id)
        .values(last_used_at=datetime.now(UTC) - timedelta(hours=23, minutes=59))
    )
    tokens = await _refresh(client, tokens["refresh_token"])
    refreshed = await _session_of(db_session, tokens["refresh_token"])
    assert datetime.now(UTC) - refreshed.last_used_at < timedelta(minutes=1)
    assert refreshed.expires_at == absolute_end
    # However busy, the session ends at its absolute end.
    await db_session.execute(
        update(AuthSession)
        .where(AuthSession.id == auth_session.id)
        .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
    )
    await assert_session_over(client, tokens)


async def assert_session_over(client: AsyncClient, tokens: dict[str, str]) -> None:
    refreshed = await client.post(REFRESH, json={"refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 401
    assert refreshed.json()["code"] == "invalid-refresh-token"
    me = await client.get(ME, headers=bearer(tokens["access_token"]))
    assert me.status_code == 401
    assert me.json()["code"] == "not-authenticated"


async def test_refresh_of_a_deactivated_user_is_refused(
    client: AsyncClient, create_user: CreateUser, db_session: AsyncSession
) -> None:
    user_id = await create_user(email=EMAIL)
    tokens = await _tokens(client)
    await db_session.execute(update(User).where(User.id == user_id).values(is_active=False))
    response = await client.post(REFRESH, json={"refresh_token": tokens["refresh_token"]})
    assert response.status_code == 401
    assert response.json()["code"] == "invalid-refresh-token"


async def test_cookie_calls_from_foreign_origins_are_refused(
    build_app: BuildApp, create_user: CreateUser
) -> None:
    _, client = await build_app(http=HttpSettings(cors_origins=["https://spa.example.com"]))
    await create_user(email=EMAIL)
    await login(client, EMAIL, delivery="cookie")
    foreign = await client.post(REFRESH, headers={"Origin": "https://evil.example.net"})
    assert foreign.status_code == 403
    assert foreign.json()["code"] == "cross-site-request"
    null_origin = await client.post(REFRESH, headers={"Origin": "null"})
    assert null_origin.status_code == 403
    assert null_origin.json()["code"] == "cross-site-request"
    sibling = await client.post(REFRESH, headers={"Origin": "http://testserver"})
    assert sibling.status_code == 403
    allowed = await client.post(REFRESH, headers={"Origin": "https://spa.example.com"})
    assert allowed.status_code == 200
    assert allowed.json()["access_token"]
    same = await client.post(REFRESH, headers={"Origin": "https://testserver"})
    assert same.status_code == 200
    assert same.json()["access_token"]
    assert client.cookies[COOKIE]


async def test_parallel_refreshes_leave_one_live_branch(
    app: FastAPI, committed_client: AsyncClient
) -> None:
    await committed_user(app, email=EMAIL)
    tokens = await _tokens(committed_client)
    answers = await asyncio.gather(
        *(
            committed_client.post(REFRESH, json={"refresh_token": tokens["refresh_token"]})
            for _ in range(4)
        )
    )
    assert [a.status_code for a in answers] == [200] * 4
    rotated = [a.json()["refresh_token"] for a in answers if a.json()["refresh_token"]]
    assert len(rotated) == 1
    assert await _live_tokens(app, tokens["refresh_token"]) == 1


async def test_parallel_refreshes_without_grace_window_one_wins_and_the_family_dies(
    committed_client: AsyncClient, database_url: str, app: FastAPI
) -> None:
    strict = create_app(make_settings(database_url, auth=AuthSettings(refresh_reuse_grace_s=0)))
    async with (
        LifespanManager(strict),
        AsyncClient(transport=ASGITransport(app=strict), base_url="http://testserver") as client,
    ):
        await committed_user(strict, email=EMAIL)
        tokens = await _tokens(client)
        answers = await asyncio.gather(
            *(
                client.post(REFRESH, json={"refresh_token": tokens["refresh_token"]})
                for _ in range(3)
            )
        )
        statuses = sorted(a.status_code for a in answers)
        assert statuses == [200, 401, 401]
        losers = [a.json()["code"] for a in answers if a.status_code == 401]
        assert losers == ["invalid-refresh-token"] * 2
        assert await _live_tokens(strict, tokens["refresh_token"]) == 1
        winner = next(a for a in answers if a.status_code == 200).json()
        dead = await client.post(REFRESH, json={"refresh_token": winner["refresh_token"]})
        assert dead.status_code == 401
        assert dead.json()["code"] == "invalid-refresh-token"


@pytest.mark.parametrize("grace_s", [5, 0])
async def test_the_row_lock_serialises_refreshes_that_read_the_token_at_once(
    database_url: str,
    committed_client: AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
    grace_s: int,
) -> None:
    """Both refreshes read the unrotated token before either locks: only the lock saves them.

    Without it (or without reading the token again under it) both would rotate, leaving
    two live branches of one session.
    """
    app = create_app(make_settings(database_url, auth=AuthSettings(refresh_reuse_grace_s=grace_s)))
    both_read = asyncio.Barrier(2)
    lock_session = AuthRepository.lock_session

    async def lock_after_both_read(
        self: AuthRepository, *, session_id: uuid.UUID
    ) -> AuthSession | None:
        await both_read.wait()
        return await lock_session(self, session_id=session_id)

    async with (
        LifespanManager(app),
        AsyncClient(transport=ASGITransport(app=app), base_url="http://testserver") as client,
    ):
        await committed_user(app, email=EMAIL)
        tokens = await _tokens(client)
        monkeypatch.setattr(AuthRepository, "lock_session", lock_after_both_read)
        answers = await asyncio.gather(
            *(client.post(REFRESH, json={"refresh_token": tokens["refresh_token"]}) for _ in "ab")
        )
        monkeypatch.undo()
        bodies = sorted((a.status_code, a.json().get("refresh_token") is None) for a in answers)
        if grace_s:
            # The second sees the token the first rotated: an access token, no new branch.
            assert bodies == [(200, False), (200, True)]
            assert await _live_tokens(app, tokens["refresh_token"]) == 1
        else:
            # Without a grace window the second is reuse: the family dies.
            assert bodies == [(200, False), (401, True)]
            assert await _live_tokens(app, tokens["refresh_token"]) == 1
            winner = next(a for a in answers if a.status_code == 200).json()
            dead = await client.post(REFRESH, json={"refresh_token": winner["refresh_token"]})
            assert dead.json()["code"] == "invalid-refresh-token"


async def _live_tokens(app: FastAPI, token: str) -> int:
    factory: async_sessionmaker[AsyncSession] = app.state.session_factory
    async with factory() as session:
        session_id: uuid.UUID | None = await session.scalar(
            select(RefreshToken.session_id).where(
                RefreshToken.token_hash == hash_refresh_token(token)
            )
        )
        count = await session.scalar(
            select(func.count())
            .select_from(RefreshToken)
            .where(RefreshToken.session_id == session_id, RefreshToken.rotated_at.is_(None))
        )
    return count or 0
