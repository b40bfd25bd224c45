"""Login and password checks count first, then hash with no lock and no connection held.

Requests really commit here: the counts must outlive the rolled-back requests that
answer 401, and other connections must see (and be able to lock) the rows meanwhile.
"""

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.pool import QueuePool

from app.audit.actions import AuditAction
from app.audit.service import AuditService
from app.auth.passwords import PasswordService
from app.core.config import AuthSettings
from app.factory import create_app
from app.users.service import Credentials, UserService
from tests.auth.conftest import PASSWORD, audit_actions, bearer, committed_user, login
from tests.conftest import DEFAULT_PASSWORD, make_settings

EMAIL = "locks.login@example.com"
WRONG = "definitely not the right passphrase"
NEW_PASSWORD = "a completely different passphrase"
CONTENDERS = 8
FREE_FAILURES = 5
HANG_GUARD_S = 30
"""Only keeps a broken build from hanging the suite; no assertion depends on time."""
THROTTLE_ROW = text(
    "SELECT failures FROM auth_login_throttles "
    "WHERE user_id = :user_id AND scope = :scope FOR UPDATE NOWAIT"
)
USER_ROW = text("SELECT id FROM users WHERE id = :user_id FOR UPDATE NOWAIT")
AUDIT_HEAD = text("SELECT last_seq FROM audit_chain_head FOR UPDATE NOWAIT")


async def _lock_now(engine: AsyncEngine, statement: Any, **params: Any) -> Any:
    """Take a row lock from another connection without waiting; fails if anyone holds it."""
    async with engine.connect() as connection:
        value = (await connection.execute(statement, params)).scalar_one_or_none()
        await connection.rollback()
    return value


def _connections_held(engine: AsyncEngine) -> int:
    """Pooled connections checked out right now (nothing else runs in this test)."""
    pool = engine.pool
    assert isinstance(pool, QueuePool)
    return pool.checkedout()


async def _throttle_failures(app: FastAPI, user_id: uuid.UUID, scope: str = "login") -> int:
    return int(await _lock_now(app.state.engine, THROTTLE_ROW, user_id=user_id, scope=scope))


async def test_a_burst_gets_no_more_password_checks_than_the_policy_allows(
    database_url: str, committed_client: AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Eight parallel guesses on a fresh account: five are checked, three refused unchecked.

    Every contender is held at a barrier after looking the account up, and every password
    check is held until each contender has either reached its check or been refused, so
    the guesses really overlap. Without the reservation counted before the check, all
    eight would reach the check.
    """
    app = create_app(make_settings(database_url, auth=AuthSettings(login_delay_base_s=60)))
    looked_up = asyncio.Barrier(CONTENDERS)
    checking: list[str] = []
    refused: list[str] = []
    everyone_arrived, open_checks = asyncio.Event(), asyncio.Event()
    credentials_for = UserService.credentials_for
    verify = PasswordService.verify
    verify_against_nothing = PasswordService.verify_against_nothing

    def arrived(outcomes: list[str]) -> None:
        outcomes.append("arrived")
        if len(checking) + len(refused) == CONTENDERS:
            everyone_arrived.set()

    async def look_up_together(self: UserService, *, email: str) -> Credentials | None:
        found = await credentials_for(self, email=email)
        await looked_up.wait()
        return found

    async def held_check(self: PasswordService, *, password_hash: str, password: str) -> bool:
        arrived(checking)
        await open_checks.wait()
        return await verify(self, password_hash=password_hash, password=password)

    async def counted_refusal(self: PasswordService, *, password: str) -> None:
        arrived(refused)
        await verify_against_nothing(self, password=password)

    async with (
        LifespanManager(app),
        AsyncClient(transport=ASGITransport(app=app), base_url="http://testserver") as client,
    ):
        user_id = await committed_user(app, email=EMAIL)
        monkeypatch.setattr(UserService, "credentials_for", look_up_together)
        monkeypatch.setattr(PasswordService, "verify", held_check)
        monkeypatch.setattr(PasswordService, "verify_against_nothing", counted_refusal)
        burst = asyncio.gather(*(login(client, EMAIL, WRONG) for _ in range(CONTENDERS)))
        await asyncio.wait_for(everyone_arrived.wait(), HANG_GUARD_S)
        in_parallel = len(checking)
        open_checks.set()
        answers = await burst
        monkeypatch.undo()
        failures = await _throttle_failures(app, user_id)
        factory: async_sessionmaker[AsyncSession] = app.state.session_factory
        async with factory() as session:
            actions = await audit_actions(session, entity_id=user_id)
    assert (in_parallel, len(refused)) == (FREE_FAILURES, CONTENDERS - FREE_FAILURES)
    assert {a.status_code for a in answers} == {401}
    assert {a.json()["code"] for a in answers} == {"invalid-credentials"}
    assert failures == FREE_FAILURES
    assert actions.count(AuditAction.AUTH_LOGIN_FAILED) == FREE_FAILURES


def _pause(
    monkeypatch: pytest.MonkeyPatch, owner: type, name: str
) -> tuple[asyncio.Event, asyncio.Event]:
    """Make `owner.name` signal when it starts and wait for a release before running."""
    started, release = asyncio.Event(), asyncio.Event()
    original: Callable[..., Awaitable[Any]] = getattr(owner, name)

    async def paused(self: Any, **kwargs: Any) -> Any:
        started.set()
        await release.wait()
        return await original(self, **kwargs)

    monkeypatch.setattr(owner, name, paused)
    return started, release


async def test_a_login_being_verified_holds_no_row_lock_and_no_connection(
    app: FastAPI, committed_client: AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    user_id = await committed_user(app, email=EMAIL)
    in_verify, release = _pause(monkeypatch, PasswordService, "verify")
    attempt = asyncio.create_task(login(committed_client, EMAIL, WRONG))
    try:
        await asyncio.wait_for(in_verify.wait(), HANG_GUARD_S)
        connections_held = _connections_held(app.state.engine)
        # Another connection locks the throttle row at once: nobody holds it during the
        # verify, and the guess in progress is already counted.
        counted = await _throttle_failures(app, user_id)
    finally:
        release.set()
        response = await attempt
    assert connections_held == 0
    assert counted == 1
    assert response.status_code == 401


@pytest.mark.parametrize("slow_step", ["verify", "hash_new"])
async def test_a_password_change_hashes_with_no_row_lock_and_no_connection(
    app: FastAPI,
    committed_client: AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
    slow_step: str,
) -> None:
    user_id = await committed_user(app, email=EMAIL)
    here = (await login(committed_client, EMAIL)).json()
    await login(committed_client, EMAIL)  # a second session, so the change ends one
    started, release = _pause(monkeypatch, PasswordService, slow_step)
    change = asyncio.create_task(
        committed_client.post(
            PASSWORD,
            json={"current_password": DEFAULT_PASSWORD, "new_password": NEW_PASSWORD},
            headers=bearer(here["access_token"]),
        )
    )
    engine: AsyncEngine = app.state.engine
    try:
        await asyncio.wait_for(started.wait(), HANG_GUARD_S)
        connections_held = _connections_held(engine)
        # Neither the user row, nor the audit head, nor the throttle row is held meanwhile.
        locked_user = await _lock_now(engine, USER_ROW, user_id=user_id)
        await _lock_now(engine, AUDIT_HEAD)
        await _lock_now(engine, THROTTLE_ROW, user_id=user_id, scope="password_check")
    finally:
        release.set()
        response = await change
    assert locked_user == user_id
    assert connections_held == 0
    assert response.status_code == 204, response.text


async def test_a_login_that_conflicts_after_counting_is_not_run_again(
    app: FastAPI, committed_client: AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A serialization failure after the count committed answers 503 instead of a re-run.

    A re-run would count the same guess again (three attempts: three failures).
    """
    user_id = await committed_user(app, email=EMAIL)
    record = AuditService.record
    runs: list[AuditAction] = []

    async def conflict_on_failure(self: AuditService, **kwargs: Any) -> None:
        if kwargs["action"] is AuditAction.AUTH_LOGIN_FAILED:
            runs.append(kwargs["action"])
            await self.repository.session.execute(
                text("DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = '40001'; END $$")
            )
        await record(self, **kwargs)

    monkeypatch.setattr(AuditService, "record", conflict_on_failure)
    response = await login(committed_client, EMAIL, WRONG)
    monkeypatch.undo()
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert runs == [AuditAction.AUTH_LOGIN_FAILED]
    assert await _throttle_failures(app, user_id) == 1
