"""`make prune` (`python -m app.cli prune`): expired auth rows go, in batches; live ones stay."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi import FastAPI
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.auth.models import AuthSession, LoginThrottle, RefreshToken, StreamTicket
from app.auth.service import hash_refresh_token
from app.cli import main
from tests.auth.conftest import committed_user
from tests.conftest import truncate_all

MONTH = timedelta(days=30)
HOUR = timedelta(hours=1)


@pytest.fixture
def now() -> datetime:
    """The test's start: rows are dated from it, not from when the module was imported."""
    return datetime.now(UTC)


@pytest.fixture
async def factory(app: FastAPI) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions that really commit; every table is emptied afterwards."""
    yield app.state.session_factory
    await truncate_all(app.state.engine)


async def _add_session(
    session: AsyncSession, user_id: uuid.UUID, name: str, *, now: datetime, **times: datetime | None
) -> None:
    values: dict[str, datetime | None] = {
        "last_used_at": now,
        "expires_at": now + timedelta(days=1),
        **times,
    }
    auth_session = AuthSession(
        id=uuid.uuid4(), user_id=user_id, created_at=now, user_agent=name, generation=1, **values
    )
    session.add(auth_session)
    await session.flush()
    for generation in (0, 1):
        session.add(
            RefreshToken(
                session_id=auth_session.id,
                token_hash=hash_refresh_token(f"{name}-{generation}"),
                generation=generation,
            )
        )
    for ticket, expires_at in ((f"{name}-used-up", now), (f"{name}-fresh", now + HOUR)):
        session.add(
            StreamTicket(
                token_hash=hash_refresh_token(ticket),
                user_id=user_id,
                session_id=auth_session.id,
                expires_at=expires_at,
            )
        )


async def _prune(batch_size: int) -> None:
    await asyncio.to_thread(main, ["prune", "--batch-size", str(batch_size)])


@pytest.mark.usefixtures("cli_database")
async def test_prune_removes_dead_sessions_their_tokens_and_stale_counts_in_batches(
    app: FastAPI,
    factory: async_sessionmaker[AsyncSession],
    capsys: pytest.CaptureFixture[str],
    now: datetime,
) -> None:
    user_id = await committed_user(app, email="prune@example.com")
    idle = timedelta(seconds=app.state.settings.auth.session_idle_timeout_s)
    async with factory() as session, session.begin():
        await _add_session(session, user_id, "live", now=now)
        await _add_session(session, user_id, "revoked", now=now, revoked_at=now)
        await _add_session(
            session, user_id, "expired", now=now, expires_at=now - timedelta(seconds=1)
        )
        await _add_session(
            session, user_id, "idle", now=now, last_used_at=now - idle - timedelta(seconds=1)
        )
        for scope, counted_at, blocked_until in (
            ("login", now - MONTH, None),
            ("password_check", now, None),
            ("device:still-blocked", now - MONTH, now + HOUR),
        ):
            session.add(
                LoginThrottle(
                    user_id=user_id,
                    scope=scope,
                    failures=3,
                    counted_at=counted_at,
                    blocked_until=blocked_until,
                )
            )

    # Batches of two: six tokens take three full batches and an empty one.
    await _prune(batch_size=2)

    assert capsys.readouterr().out.splitlines() == [
        "auth_refresh_tokens: 6 removed",
        "auth_sessions: 3 removed",
        "auth_login_throttles: 1 removed",
        "auth_stream_tickets: 1 removed",
        "idempotency_keys: 0 removed",
    ]
    async with factory() as session:
        sessions = (await session.scalars(select(AuthSession.user_agent))).all()
        tokens = (await session.scalars(select(RefreshToken.token_hash))).all()
        scopes = (await session.scalars(select(LoginThrottle.scope))).all()
        tickets = (await session.scalars(select(StreamTicket.token_hash))).all()
    assert sessions == ["live"]
    assert sorted(tokens) == sorted(hash_refresh_token(f"live-{g}") for g in (0, 1))
    assert sorted(scopes) == ["device:still-blocked", "password_check"]
    # The dead sessions' tickets went with them; the live session's expired one was pruned.
    assert tickets == [hash_refresh_token("live-fresh")]

    await _prune(batch_size=2)
    assert capsys.readouterr().out.splitlines() == [
        "auth_refresh_tokens: 0 removed",
        "auth_sessions: 0 removed",
        "auth_login_throttles: 0 removed",
        "auth_stream_tickets: 0 removed",
        "idempotency_keys: 0 removed",
    ]


@pytest.mark.usefixtures("cli_database")
async def test_prune_skips_a_row_a_request_holds_instead_of_waiting(
    app: FastAPI,
    factory: async_sessionmaker[AsyncSession],
    capsys: pytest.CaptureFixture[str],
    now: datetime,
) -> None:
    user_id = await committed_user(app, email="held@example.com")
    async with factory() as session, session.begin():
        await _add_session(session, user_id, "revoked", now=now, revoked_at=now)

    async with factory() as holder, holder.begin():
        # A request (say, a refresh) holds the session row lock across the whole run.
        await holder.execute(text("SELECT id FROM auth_sessions FOR UPDATE"))
        await _prune(batch_size=10)

    assert capsys.readouterr().out.splitlines()[1] == "auth_sessions: 0 removed"
    await _prune(batch_size=10)
    assert capsys.readouterr().out.splitlines()[1] == "auth_sessions: 1 removed"
