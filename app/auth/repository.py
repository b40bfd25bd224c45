"""Every query on the auth tables, and the guard's one-query principal lookup."""

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import Boolean, Row, String, Uuid, column, select, table, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.models import AuthSession, LoginThrottle, RefreshToken, SessionEndReason

USERS = table(
    "users",
    column("id", Uuid),
    column("role", String),
    column("is_active", Boolean),
)
"""The three columns of users' table the guard reads.

The guard must check user and session in one round trip, so it joins the table (which
the sessions' foreign key names already) instead of asking UserService; declaring the
columns here keeps auth off users' models. Every write to users goes through UserService.
"""


class AuthRepository:
    """Reads and writes sessions, refresh tokens and throttles in the caller's session."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def principal(
        self, *, user_id: uuid.UUID, session_id: uuid.UUID, now: datetime, idle: timedelta
    ) -> Row[uuid.UUID, str] | None:
        """The user's id and role if the user is active and the session live."""
        statement = (
            select(USERS.c.id, USERS.c.role)
            .join(AuthSession, AuthSession.user_id == USERS.c.id)
            .where(
                AuthSession.id == session_id,
                USERS.c.id == user_id,
                USERS.c.is_active.is_(True),
                AuthSession.revoked_at.is_(None),
                AuthSession.expires_at > now,
                AuthSession.last_used_at > now - idle,
            )
        )
        return (await self.session.execute(statement)).one_or_none()

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
    ) -> Sequence[AuthSession]:
        """A user's live sessions, newest first."""
        statement = (
            select(AuthSession)
            .where(
                AuthSession.user_id == user_id,
                AuthSession.revoked_at.is_(None),
                AuthSession.expires_at > now,
                AuthSession.last_used_at > now - idle,
            )
            .order_by(AuthSession.created_at.desc(), AuthSession.id.desc())
            .execution_options(populate_existing=True)
        )
        return (await self.session.scalars(statement)).all()

    async def lock_throttle(self, *, user_id: uuid.UUID) -> LoginThrottle:
        """An account's slow-down state, created if missing and locked until the transaction ends.

        Creating the row first means even the very first burst of guesses on an account
        queues on the lock, instead of all being checked before the first failure counts.
        """
        await self.session.execute(
            insert(LoginThrottle).values(user_id=user_id).on_conflict_do_nothing()
        )
        statement = (
            select(LoginThrottle)
            .where(LoginThrottle.user_id == user_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        return (await self.session.scalars(statement)).one()

    async def count_failure(self, *, user_id: uuid.UUID) -> int:
        """Add one failed login to the account's count, atomically; return the new count."""
        statement = (
            insert(LoginThrottle)
            .values(user_id=user_id, failures=1)
            .on_conflict_do_update(
                index_elements=[LoginThrottle.user_id],
                set_={"failures": LoginThrottle.failures + 1},
            )
            .returning(LoginThrottle.failures)
        )
        failures: int = (await self.session.scalars(statement)).one()
        return failures

    async def block(self, *, user_id: uuid.UUID, until: datetime) -> None:
        """Refuse logins of the account until `until`."""
        await self.session.execute(
            update(LoginThrottle)
            .where(LoginThrottle.user_id == user_id)
            .values(blocked_until=until)
            .execution_options(synchronize_session=False)
        )

    async def clear_throttle(self, *, user_id: uuid.UUID) -> None:
        """Forget failed logins after a success."""
        await self.session.execute(
            update(LoginThrottle)
            .where(LoginThrottle.user_id == user_id)
            .values(failures=0, blocked_until=None)
            .execution_options(synchronize_session=False)
        )
