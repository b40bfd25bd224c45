"""Every query on the auth tables, and the guard's one-query principal lookup."""

import uuid
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    DateTime,
    Integer,
    Interval,
    Row,
    String,
    Uuid,
    bindparam,
    case,
    column,
    delete,
    func,
    literal,
    or_,
    select,
    table,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import ReturningDelete

from app.auth.models import (
    AuthSession,
    LoginThrottle,
    RefreshToken,
    SessionEndReason,
    StreamTicket,
)
from app.auth.policy import MAX_DOUBLINGS, DelayPolicy
from app.auth.schemas import SessionRead

USERS = table(
    "users",
    column("id", Uuid),
    column("email", String),
    column("full_name", String),
    column("role", String),
    column("is_active", Boolean),
    column("version", Integer),
    column("created_at", DateTime(timezone=True)),
    column("updated_at", DateTime(timezone=True)),
    column("last_login_at", DateTime(timezone=True)),
)
"""The columns of users' table the guard reads: the caller's whole public representation.

The guard must check user and session in one round trip, so it joins the table (which
the sessions' foreign key names already) instead of asking UserService; declaring the
columns here keeps auth off users' models. It reads every column of `UserRead`, so a
route about the caller (`GET /users/me`) needs no second query. Every write to users
goes through UserService.
"""

SESSIONS = AuthSession.__table__
SESSION_READ_COLUMNS = tuple(
    SESSIONS.c[name] for name in SessionRead.model_fields if name in SESSIONS.c
)
"""The session columns `SessionRead` shows (`current` is the caller's, not stored)."""
PRINCIPAL = (
    select(*USERS.c)
    .join(SESSIONS, SESSIONS.c.user_id == USERS.c.id)
    .where(
        SESSIONS.c.id == bindparam("session_id"),
        USERS.c.id == bindparam("user_id"),
        USERS.c.is_active.is_(True),
        SESSIONS.c.revoked_at.is_(None),
        SESSIONS.c.expires_at > bindparam("now"),
        SESSIONS.c.last_used_at > bindparam("idle_since"),
    )
)
"""The guard's query, built once: every request runs it, so it is a Core statement with
parameters instead of an ORM expression assembled per call."""


LIVE_SESSIONS = (
    select(*SESSION_READ_COLUMNS)
    .where(
        AuthSession.user_id == bindparam("user_id"),
        AuthSession.revoked_at.is_(None),
        AuthSession.expires_at > bindparam("now", type_=AuthSession.expires_at.type),
        AuthSession.last_used_at > bindparam("idle_since", type_=AuthSession.last_used_at.type),
    )
    .order_by(AuthSession.created_at.desc(), AuthSession.id.desc())
)
"""A user's live sessions, newest first; built once like the guard's query."""


class AuthRepository:
    """Reads and writes sessions, refresh tokens and throttles in the caller's session."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def principal(
        self, *, user_id: uuid.UUID, session_id: uuid.UUID, now: datetime, idle: timedelta
    ) -> Row[Any] | None:
        """The user's public columns if the user is active and the session live."""
        parameters = {
            "user_id": user_id,
            "session_id": session_id,
            "now": now,
            "idle_since": now - idle,
        }
        return (await self.session.execute(PRINCIPAL, parameters)).one_or_none()

    async def add_session(self, *, auth_session: AuthSession) -> AuthSession:
        """Insert a session."""
        self.session.add(auth_session)
        await self.session.flush()
        return auth_session

    async def add_token(self, *, session_id: uuid.UUID, token_hash: bytes, generation: int) -> None:
        """Store the hash of a session's new refresh token."""
        self.session.add(
            RefreshToken(session_id=session_id, token_hash=token_hash, generation=generation)
        )
        await self.session.flush()

    async def find_token(self, *, token_hash: bytes) -> RefreshToken | None:
        """The refresh token with this hash, or None."""
        statement = select(RefreshToken).where(RefreshToken.token_hash == token_hash)
        return await self.session.scalar(statement.execution_options(populate_existing=True))

    async def lock_session(self, *, session_id: uuid.UUID) -> AuthSession | None:
        """Load a session and lock it until the transaction ends."""
        statement = (
            select(AuthSession)
            .where(AuthSession.id == session_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        return await self.session.scalar(statement)

    async def mark_rotated(self, *, token_id: uuid.UUID, now: datetime) -> None:
        """Record that a refresh token was exchanged for its successor."""
        await self.session.execute(
            update(RefreshToken)
            .where(RefreshToken.id == token_id)
            .values(rotated_at=now)
            .execution_options(synchronize_session=False)
        )

    async def advance_session(
        self, *, session_id: uuid.UUID, now: datetime, generation: int
    ) -> None:
        """Record a refresh: the new token generation and a restarted idle timeout."""
        await self.session.execute(
            update(AuthSession)
            .where(AuthSession.id == session_id)
            .values(last_used_at=now, generation=generation)
            .execution_options(synchronize_session=False)
        )

    async def revoke(
        self,
        *,
        user_id: uuid.UUID,
        reason: SessionEndReason,
        now: datetime,
        session_id: uuid.UUID | None = None,
        keep: uuid.UUID | None = None,
    ) -> list[uuid.UUID]:
        """End live sessions of a user (one, or all but `keep`); return the ids ended."""
        statement = update(AuthSession).where(
            AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None)
        )
        if session_id is not None:
            statement = statement.where(AuthSession.id == session_id)
        if keep is not None:
            statement = statement.where(AuthSession.id != keep)
        statement = (
            statement.values(revoked_at=now, revoked_reason=reason.value)
            .returning(AuthSession.id)
            .execution_options(synchronize_session=False)
        )
        return list((await self.session.scalars(statement)).all())

    async def live_sessions(
        self, *, user_id: uuid.UUID, now: datetime, idle: timedelta
    ) -> Sequence[Row[Any]]:
        """A user's live sessions as plain rows of the columns `SessionRead` shows, newest first.

        Rows, not ORM objects: the list is only shown, so the identity map would only add work.
        """
        parameters = {"user_id": user_id, "now": now, "idle_since": now - idle}
        return (await self.session.execute(LIVE_SESSIONS, parameters)).all()

    async def reserve_attempt(
        self, *, user_id: uuid.UUID, scope: str, now: datetime, policy: DelayPolicy
    ) -> tuple[int, datetime | None] | None:
        """Count one failed check in advance, unless a delay window is open; None if one is.

        One statement increments the count and opens the window the new count earns, so
        parallel checks each see the ones before them counted. Returns the new count and
        the window's end (None below the threshold).
        """
        first_over = 1 - policy.free_failures
        statement = (
            insert(LoginThrottle)
            .values(
                user_id=user_id,
                scope=scope,
                failures=1,
                blocked_until=now + policy.delay(first_over) if first_over >= 0 else None,
            )
            .on_conflict_do_update(
                index_elements=[LoginThrottle.user_id, LoginThrottle.scope],
                set_={
                    "failures": LoginThrottle.failures + 1,
                    "counted_at": func.now(),
                    "blocked_until": _window(
                        policy, over=LoginThrottle.failures + 1 - policy.free_failures, now=now
                    ),
                },
                where=or_(
                    LoginThrottle.blocked_until.is_(None), LoginThrottle.blocked_until <= now
                ),
            )
            .returning(LoginThrottle.failures, LoginThrottle.blocked_until)
        )
        row = (await self.session.execute(statement)).one_or_none()
        return None if row is None else (row.failures, row.blocked_until)

    async def reserve_budget(self, *, user_id: uuid.UUID, scope: str, budget: int) -> int | None:
        """Count one failed check in advance while fewer than `budget` are counted, else None."""
        statement = (
            insert(LoginThrottle)
            .values(user_id=user_id, scope=scope, failures=1)
            .on_conflict_do_update(
                index_elements=[LoginThrottle.user_id, LoginThrottle.scope],
                set_={"failures": LoginThrottle.failures + 1, "counted_at": func.now()},
                where=LoginThrottle.failures < budget,
            )
            .returning(LoginThrottle.failures)
        )
        failures: int | None = (await self.session.scalars(statement)).one_or_none()
        return failures

    async def blocked_until(self, *, user_id: uuid.UUID, scope: str) -> datetime | None:
        """When the open delay window of this account and scope ends."""
        statement = select(LoginThrottle.blocked_until).where(
            LoginThrottle.user_id == user_id, LoginThrottle.scope == scope
        )
        until: datetime | None = await self.session.scalar(statement)
        return until

    async def prune_tokens(self, *, now: datetime, idle: timedelta, limit: int) -> int:
        """Delete up to `limit` refresh tokens of dead sessions; return how many went."""
        batch = (
            select(RefreshToken.id)
            .join(AuthSession, AuthSession.id == RefreshToken.session_id)
            .where(_dead_session(now=now, idle=idle))
            .limit(limit)
            # Rows a request holds are left for the next run instead of waited for.
            .with_for_update(of=RefreshToken, skip_locked=True)
        )
        return await self._count(
            delete(RefreshToken).where(RefreshToken.id.in_(batch)).returning(RefreshToken.id)
        )

    async def prune_sessions(self, *, now: datetime, idle: timedelta, limit: int) -> int:
        """Delete up to `limit` dead sessions (and any token left with them)."""
        batch = (
            select(AuthSession.id)
            .where(_dead_session(now=now, idle=idle))
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return await self._count(
            delete(AuthSession).where(AuthSession.id.in_(batch)).returning(AuthSession.id)
        )

    async def prune_throttles(self, *, counted_before: datetime, now: datetime, limit: int) -> int:
        """Delete up to `limit` failure counts untouched since `counted_before`.

        A row whose delay window is still open stays, however old its count.
        """
        batch = (
            select(LoginThrottle.user_id, LoginThrottle.scope)
            .where(
                LoginThrottle.counted_at < counted_before,
                or_(LoginThrottle.blocked_until.is_(None), LoginThrottle.blocked_until <= now),
            )
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        key = tuple_(LoginThrottle.user_id, LoginThrottle.scope)
        return await self._count(
            delete(LoginThrottle).where(key.in_(batch)).returning(LoginThrottle.user_id)
        )

    async def prune_stream_tickets(self, *, now: datetime, limit: int) -> int:
        """Delete up to `limit` expired stream tickets; return how many went."""
        # No row lock (it would need UPDATE): an expired ticket is never redeemed, so no
        # request holds one.
        batch = select(StreamTicket.token_hash).where(StreamTicket.expires_at <= now).limit(limit)
        return await self._count(
            delete(StreamTicket)
            .where(StreamTicket.token_hash.in_(batch))
            .returning(StreamTicket.token_hash)
        )

    async def add_stream_ticket(self, *, ticket: StreamTicket) -> None:
        """Store a stream ticket's hash."""
        self.session.add(ticket)
        await self.session.flush()

    async def take_stream_ticket(
        self, *, token_hash: bytes, now: datetime
    ) -> Row[uuid.UUID, uuid.UUID] | None:
        """Delete an unexpired ticket and return its `user_id` and `session_id`, if it was there.

        The DELETE is the redemption: of two requests presenting one ticket, only the one
        whose DELETE removed the row gets it back.
        """
        statement = (
            delete(StreamTicket)
            .where(StreamTicket.token_hash == token_hash, StreamTicket.expires_at > now)
            .returning(StreamTicket.user_id, StreamTicket.session_id)
        )
        result = await self.session.execute(statement.execution_options(synchronize_session=False))
        return result.one_or_none()

    async def live_session_ids(
        self, *, session_ids: Collection[uuid.UUID], now: datetime, idle: timedelta
    ) -> set[uuid.UUID]:
        """Those of `session_ids` that are live and belong to an active user, in one query."""
        statement = (
            select(SESSIONS.c.id)
            .join(USERS, USERS.c.id == SESSIONS.c.user_id)
            .where(
                SESSIONS.c.id.in_(list(session_ids)),
                USERS.c.is_active.is_(True),
                SESSIONS.c.revoked_at.is_(None),
                SESSIONS.c.expires_at > now,
                SESSIONS.c.last_used_at > now - idle,
            )
        )
        return set((await self.session.execute(statement)).scalars())

    async def _count(self, statement: ReturningDelete[tuple[Any]]) -> int:
        rows = await self.session.execute(statement.execution_options(synchronize_session=False))
        return len(rows.all())

    async def clear_attempts(self, *, user_id: uuid.UUID, scope: str) -> None:
        """Forget the counted failures of a scope after a successful check."""
        await self.session.execute(
            delete(LoginThrottle)
            .where(LoginThrottle.user_id == user_id, LoginThrottle.scope == scope)
            .execution_options(synchronize_session=False)
        )


def _dead_session(*, now: datetime, idle: timedelta) -> ColumnElement[bool]:
    """SQL: the session has ended, expired or gone idle, and can never be used again."""
    return or_(
        AuthSession.revoked_at.is_not(None),
        AuthSession.expires_at <= now,
        AuthSession.last_used_at <= now - idle,
    )


def _window(policy: DelayPolicy, *, over: ColumnElement[int], now: datetime) -> ColumnElement[Any]:
    """SQL for the end of the window that `over` earns, as `DelayPolicy.delay` computes it."""
    doublings = func.least(over, MAX_DOUBLINGS)
    seconds = func.least(policy.base_s * func.power(2, doublings), policy.max_s)
    interval = func.make_interval(0, 0, 0, 0, 0, 0, seconds, type_=Interval())
    return case((over >= 0, literal(now, DateTime(timezone=True)) + interval), else_=None)
