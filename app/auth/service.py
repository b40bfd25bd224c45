"""Login, refresh-token rotation, sessions and password changes."""

import hashlib
import secrets
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import NoReturn

import structlog
from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.actions import AuditAction, AuditEntity
from app.audit.service import AuditService
from app.auth.models import AuthSession, RefreshToken, SessionEndReason
from app.auth.passwords import PasswordService
from app.auth.repository import AuthRepository
from app.core.config import AuthSettings, Settings
from app.core.context import bind_actor, current_context
from app.core.errors import Forbidden, NotFound, Unauthorized
from app.core.security import TokenCodec
from app.users.schemas import Role, UserCreate, UserRead, normalise_email
from app.users.service import Credentials, CurrentPasswordInvalid, UserService

REFRESH_TOKEN_BYTES = 32

log = structlog.get_logger("roombook.auth")


def utc_now() -> datetime:
    """The current time in UTC."""
    return datetime.now(UTC)


def hash_refresh_token(token: str) -> bytes:
    """SHA-256 of a refresh token: the token has 256 random bits, so no salt or slow hash."""
    return hashlib.sha256(token.encode()).digest()


class InvalidCredentials(Unauthorized):
    """Login failed; the same answer whatever the reason, so it reveals nothing."""

    code = "invalid-credentials"
    title = "Invalid credentials"

    def __init__(self) -> None:
        super().__init__(
            "The email or password is wrong, or the account is briefly slowed down after "
            "failed attempts."
        )


class InvalidRefreshToken(Unauthorized):
    """The refresh token is unknown, expired, revoked or already used."""

    code = "invalid-refresh-token"
    title = "Invalid refresh token"

    def __init__(self) -> None:
        super().__init__("The refresh token is invalid, expired or revoked; log in again.")


class RegistrationClosed(Forbidden):
    """Self-service registration is turned off."""

    code = "registration-closed"
    title = "Registration closed"


class SessionNotFound(NotFound):
    """The caller has no live session with this id."""

    code = "session-not-found"
    title = "Session not found"


@dataclass(frozen=True, slots=True)
class IssuedTokens:
    """What a login or refresh hands out; `refresh_token` is None inside the grace window."""

    access_token: str
    expires_in: int
    refresh_token: str | None
    refresh_expires_at: datetime


class SessionService:
    """Start, list and end sessions; other domains end sessions only through here."""

    def __init__(
        self,
        *,
        session: AsyncSession,
        audit: AuditService,
        settings: AuthSettings,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.repository = AuthRepository(session)
        self.audit = audit
        self.settings = settings
        self.clock = clock

    @property
    def idle_timeout(self) -> timedelta:
        """How long a session may go without a refresh."""
        return timedelta(seconds=self.settings.session_idle_timeout_s)

    async def caller(
        self, *, user_id: uuid.UUID, session_id: uuid.UUID
    ) -> Row[uuid.UUID, str] | None:
        """Id and role of an active user whose session is live (not ended, idle, expired)."""
        return await self.repository.principal(
            user_id=user_id, session_id=session_id, now=self.clock(), idle=self.idle_timeout
        )

    async def start(self, *, user_id: uuid.UUID) -> tuple[AuthSession, str]:
        """Open a session for a user; return it with its first refresh token."""
        now = self.clock()
        context = current_context()
        auth_session = await self.repository.add_session(
            auth_session=AuthSession(
                id=uuid.uuid4(),
                user_id=user_id,
                # The application clock, not the transaction's: sessions order by login time.
                created_at=now,
                last_used_at=now,
                expires_at=now + timedelta(seconds=self.settings.session_absolute_lifetime_s),
                user_agent=context.user_agent,
                client_ip=context.client_ip,
                generation=0,
            )
        )
        token = secrets.token_urlsafe(REFRESH_TOKEN_BYTES)
        await self.repository.add_token(
            session_id=auth_session.id, token_hash=hash_refresh_token(token), generation=0
        )
        return auth_session, token

    async def list_live(self, *, user_id: uuid.UUID) -> Sequence[AuthSession]:
        """A user's live sessions, newest first."""
        return await self.repository.live_sessions(
            user_id=user_id, now=self.clock(), idle=self.idle_timeout
        )

    async def end_one(self, *, user_id: uuid.UUID, session_id: uuid.UUID) -> None:
        """End one of the user's live sessions (say, a lost device), or raise `SessionNotFound`."""
        await self._end_one(
            user_id=user_id, session_id=session_id, action=AuditAction.AUTH_SESSION_REVOKED
        )

    async def end_current(self, *, user_id: uuid.UUID, session_id: uuid.UUID) -> None:
        """End the session the caller is using (logout)."""
        await self._end_one(user_id=user_id, session_id=session_id, action=AuditAction.AUTH_LOGOUT)

    async def _end_one(
        self, *, user_id: uuid.UUID, session_id: uuid.UUID, action: AuditAction
    ) -> None:
        logout = action is AuditAction.AUTH_LOGOUT
        reason = SessionEndReason.LOGOUT if logout else SessionEndReason.REVOKED
        ended = await self.repository.revoke(
            user_id=user_id, session_id=session_id, reason=reason, now=self.clock()
        )
        if not ended:
            raise SessionNotFound(f"You have no live session with id {session_id}.")
        await self.audit.record(
            action=action,
            entity_type=AuditEntity.AUTH_SESSION,
            entity_id=session_id,
            after={"reason": reason.value},
        )

    async def end_deactivated(self, *, user_id: uuid.UUID) -> int:
        """End every live session of a user just deactivated; return how many there were."""
        return await self._end(user_id=user_id, reason=SessionEndReason.USER_DEACTIVATED, keep=None)

    async def end_others(
        self, *, user_id: uuid.UUID, keep: uuid.UUID, reason: SessionEndReason
    ) -> int:
        """End every live session of a user but `keep`."""
        return await self._end(user_id=user_id, reason=reason, keep=keep)

    async def _end(
        self, *, user_id: uuid.UUID, reason: SessionEndReason, keep: uuid.UUID | None
    ) -> int:
        ended = await self.repository.revoke(
            user_id=user_id, reason=reason, now=self.clock(), keep=keep
        )
        # One entry per session, filed under the session like every other session event,
        # so filtering the trail by a session id shows its whole life.
        for session_id in ended:
            await self.audit.record(
                action=AuditAction.AUTH_SESSION_REVOKED,
                entity_type=AuditEntity.AUTH_SESSION,
                entity_id=session_id,
                after={"reason": reason.value},
            )
        return len(ended)


class AuthService:
    """Credential checks and token issuance on top of users and sessions."""

    def __init__(
        self,
        *,
        session: AsyncSession,
        audit: AuditService,
        users: UserService,
        sessions: SessionService,
        passwords: PasswordService,
        codec: TokenCodec,
        settings: AuthSettings,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.session = session
        self.repository = AuthRepository(session)
        self.audit = audit
        self.users = users
        self.sessions = sessions
        self.passwords = passwords
        self.codec = codec
        self.settings = settings
        self.clock = clock

    async def register(self, *, email: str, password: str, full_name: str) -> UserRead:
        """Create a member account for a self-service sign-up."""
        if not self.settings.registration_enabled:
            raise RegistrationClosed("Self-service registration is turned off.")
        data = UserCreate(email=email, full_name=full_name, password=password, role=Role.MEMBER)
        return UserRead.model_validate(await self.users.create(data=data, registered=True))

    async def login(self, *, email: str, password: str) -> IssuedTokens:
        """Check credentials and open a session, or fail the same way whatever went wrong.

        Unknown email, wrong password, inactive account and a throttled account each do
        exactly one password verification and end in the same `InvalidCredentials`.
        """
        account = await self.users.credentials_for(email=normalise_email(email))
        if account is None:
            await self.passwords.verify_against_nothing(password=password)
            await self.audit.record(
                action=AuditAction.AUTH_LOGIN_FAILED,
                entity_type=AuditEntity.USER,
                entity_id=None,
                after={"reason": "unknown_account"},
            )
            await self._reject_keeping_bookkeeping()
        # Locking the account's throttle row makes parallel guesses wait for each other,
        # so a burst cannot slip many guesses in before the first failure is counted.
        throttle = await self.repository.lock_throttle(user_id=account.id)
        now = self.clock()
        if throttle.blocked_until and throttle.blocked_until > now:
            await self.passwords.verify_against_nothing(password=password)
            await self.audit.record(
                action=AuditAction.AUTH_LOGIN_THROTTLED,
                entity_type=AuditEntity.USER,
                entity_id=account.id,
                after={"blocked_until": throttle.blocked_until.isoformat()},
            )
            await self._reject_keeping_bookkeeping()
        valid = await self.passwords.verify(password_hash=account.password_hash, password=password)
        if not valid or not account.is_active:
            await self._count_failure(account=account, now=now, wrong_password=not valid)
        if throttle.failures:
            await self.repository.clear_throttle(user_id=account.id)
        return await self._open_session(account=account, password=password)

    async def refresh(self, *, token: str) -> IssuedTokens:
        """Exchange a refresh token for a new one and a new access token.

        A token already exchanged means a copy leaked: the whole session is ended, except
        when it is the one just replaced and comes back within the grace window (two tabs
        refreshing at once); then only an access token is issued, never a second branch.
        """
        token_hash = hash_refresh_token(token)
        found = await self.repository.find_token(token_hash=token_hash)
        if found is None:
            raise InvalidRefreshToken
        # The session row lock serialises refreshes of one family: the second of two
        # parallel calls sees the token the first one rotated, so only one branch survives.
        auth_session = await self.repository.lock_session(session_id=found.session_id)
        current = await self.repository.find_token(token_hash=token_hash)
        if auth_session is None or current is None or auth_session.revoked_at is not None:
            raise InvalidRefreshToken
        row = await self.sessions.caller(user_id=auth_session.user_id, session_id=auth_session.id)
        now = self.clock()
        if row is None:
            raise InvalidRefreshToken
        role = Role(row.role)
        if current.rotated_at is not None:
            return await self._reused(auth_session=auth_session, token=current, role=role, now=now)
        generation = auth_session.generation + 1
        await self.repository.mark_rotated(token_id=current.id, now=now)
        new_token = secrets.token_urlsafe(REFRESH_TOKEN_BYTES)
        await self.repository.add_token(
            session_id=auth_session.id,
            token_hash=hash_refresh_token(new_token),
            generation=generation,
        )
        await self.repository.advance_session(
            session_id=auth_session.id, now=now, generation=generation
        )
        bind_actor(actor_id=auth_session.user_id, actor_role=role.value)
        await self.audit.record(
            action=AuditAction.AUTH_TOKEN_REFRESHED,
            entity_type=AuditEntity.AUTH_SESSION,
            entity_id=auth_session.id,
            after={"generation": generation},
        )
        return self._tokens(
            user_id=auth_session.user_id,
            role=role,
            auth_session=auth_session,
            refresh_token=new_token,
        )

    async def logout(self, *, user_id: uuid.UUID, session_id: uuid.UUID) -> None:
        """End the caller's current session: its refresh and access tokens die at once."""
        await self.sessions.end_current(user_id=user_id, session_id=session_id)

    async def change_password(
        self,
        *,
        user_id: uuid.UUID,
        session_id: uuid.UUID,
        current_password: str,
        new_password: str,
    ) -> None:
        """Replace the password after checking the current one; end every other session."""
        # The user row is locked first and the sessions before any audit entry: the same
        # order as deactivation and refresh (users, sessions, audit head), so no deadlock.
        account = await self.users.lock_credentials(user_id=user_id)
        if not await self.passwords.verify(
            password_hash=account.password_hash, password=current_password
        ):
            raise CurrentPasswordInvalid("The current password is wrong.")
        self.passwords.check(password=new_password, email=account.email, field="new_password")
        # Whoever else holds a session may be the reason for the change: end them all.
        await self.sessions.end_others(
            user_id=user_id, keep=session_id, reason=SessionEndReason.PASSWORD_CHANGED
        )
        await self.users.set_password(user_id=user_id, password=new_password, field="new_password")

    def access_token(self, *, user_id: uuid.UUID, role: Role, session_id: uuid.UUID) -> str:
        """Sign an access token naming the user, their role and the session."""
        return self.codec.encode_access(
            subject=str(user_id), claims={"role": role.value, "sid": str(session_id)}
        )

    async def _open_session(self, *, account: Credentials, password: str) -> IssuedTokens:
        # The password checked out: from here on the audit trail names this user as actor.
        bind_actor(actor_id=account.id, actor_role=account.role.value)
        rehashed = await self.passwords.rehash_if_needed(
            password_hash=account.password_hash, password=password
        )
        if rehashed is not None:
            await self.users.store_rehash(user_id=account.id, password_hash=rehashed)
        await self.users.record_login(user_id=account.id)
        auth_session, refresh_token = await self.sessions.start(user_id=account.id)
        await self.audit.record(
            action=AuditAction.AUTH_LOGIN_SUCCEEDED,
            entity_type=AuditEntity.USER,
            entity_id=account.id,
            after={"session_id": str(auth_session.id)},
        )
        return self._tokens(
            user_id=account.id,
            role=account.role,
            auth_session=auth_session,
            refresh_token=refresh_token,
        )

    async def _count_failure(
        self, *, account: Credentials, now: datetime, wrong_password: bool
    ) -> NoReturn:
        failures = await self.repository.count_failure(user_id=account.id)
        over = failures - self.settings.login_failures_before_delay
        blocked_until = None
        if over >= 0:
            # A growing delay window, capped: it slows guessing down but never locks forever.
            delay = min(self.settings.login_delay_base_s * 2**over, self.settings.login_delay_max_s)
            blocked_until = now + timedelta(seconds=delay)
            await self.repository.block(user_id=account.id, until=blocked_until)
        await self.audit.record(
            action=AuditAction.AUTH_LOGIN_FAILED,
            entity_type=AuditEntity.USER,
            entity_id=account.id,
            after={
                "reason": "wrong_password" if wrong_password else "inactive",
                "failures": failures,
                "blocked_until": blocked_until.isoformat() if blocked_until else None,
            },
        )
        await self._reject_keeping_bookkeeping()

    async def _reject_keeping_bookkeeping(self) -> NoReturn:
        # The 401 raised below rolls the request's unit of work back; commit first so the
        # failure count and its audit entry survive, or guessing would never slow down
        # and never show in the audit trail.
        await self.session.commit()
        raise InvalidCredentials

    async def _reused(
        self, *, auth_session: AuthSession, token: RefreshToken, role: Role, now: datetime
    ) -> IssuedTokens:
        grace = timedelta(seconds=self.settings.refresh_reuse_grace_s)
        just_replaced = token.generation == auth_session.generation - 1
        if just_replaced and token.rotated_at is not None and now - token.rotated_at <= grace:
            log.info("refresh token reused within grace window", session_id=str(auth_session.id))
            return self._tokens(
                user_id=auth_session.user_id,
                role=role,
                auth_session=auth_session,
                refresh_token=None,
            )
        await self.repository.revoke(
            user_id=auth_session.user_id,
            session_id=auth_session.id,
            reason=SessionEndReason.REFRESH_REUSED,
            now=now,
        )
        await self.audit.record(
            action=AuditAction.AUTH_REFRESH_REUSED,
            entity_type=AuditEntity.AUTH_SESSION,
            entity_id=auth_session.id,
            after={"generation": token.generation},
        )
        log.warning("refresh token reused; session revoked", session_id=str(auth_session.id))
        # As with failed logins: the revocation must outlive the 401 that follows.
        await self.session.commit()
        raise InvalidRefreshToken

    def _tokens(
        self,
        *,
        user_id: uuid.UUID,
        role: Role,
        auth_session: AuthSession,
        refresh_token: str | None,
    ) -> IssuedTokens:
        return IssuedTokens(
            access_token=self.access_token(user_id=user_id, role=role, session_id=auth_session.id),
            expires_in=int(self.codec.access_ttl.total_seconds()),
            refresh_token=refresh_token,
            refresh_expires_at=auth_session.expires_at,
        )


def build_session_service(
    session: AsyncSession, *, audit: AuditService, settings: Settings
) -> SessionService:
    """The session service on a session, sharing the unit of work's audit service."""
    return SessionService(session=session, audit=audit, settings=settings.auth)


def build_auth_service(
    session: AsyncSession,
    *,
    audit: AuditService,
    sessions: SessionService,
    users: UserService,
    passwords: PasswordService,
    codec: TokenCodec,
    settings: Settings,
) -> AuthService:
    """The auth service on a session, on top of the unit of work's other services."""
    return AuthService(
        session=session,
        audit=audit,
        users=users,
        sessions=sessions,
        passwords=passwords,
        codec=codec,
        settings=settings.auth,
    )
