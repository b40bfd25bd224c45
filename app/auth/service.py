"""Login, refresh-token rotation, sessions and password changes."""

import hashlib
import math
import secrets
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import NoReturn

from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.actions import AuditAction, AuditEntity
from app.audit.service import AuditService
from app.auth.devices import DeviceCookies
from app.auth.models import AuthSession, RefreshToken, SessionEndReason, StreamTicket
from app.auth.passwords import PasswordService
from app.auth.repository import AuthRepository
from app.auth.schemas import SessionRead
from app.auth.throttle import AttemptThrottle, Refused, Reservation, Scope
from app.core.config import AuthSettings, Settings
from app.core.context import bind_actor, current_context
from app.core.db import commit_early
from app.core.errors import Forbidden, NotFound, RateLimited, Unauthorized
from app.core.metrics import LoginOutcome, RefreshOutcome, record_login, record_refresh
from app.core.security import TokenCodec
from app.core.security_events import SecurityReason, security_event
from app.users.schemas import Role, UserCreate, UserRead, normalise_email
from app.users.service import Credentials, CurrentPasswordInvalid, UserService

REFRESH_TOKEN_BYTES = 32
STREAM_TICKET_BYTES = 32


def utc_now() -> datetime:
    """The current time in UTC."""
    return datetime.now(UTC)


def hash_refresh_token(token: str) -> bytes:
    """SHA-256 of a refresh token or stream ticket: 256 random bits need no salt or slow hash."""
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
class StreamHolder:
    """Who a redeemed stream ticket belongs to: the account and the session it came from."""

    account: UserRead
    session_id: uuid.UUID


class PrunedTable(StrEnum):
    """What `make prune` empties of expired rows, in this order (tokens before sessions)."""

    REFRESH_TOKENS = "auth_refresh_tokens"
    SESSIONS = "auth_sessions"
    THROTTLES = "auth_login_throttles"
    STREAM_TICKETS = "auth_stream_tickets"


@dataclass(frozen=True, slots=True)
class IssuedTokens:
    """What a login or refresh hands out; `refresh_token` is None inside the grace window."""

    access_token: str
    expires_in: int
    refresh_token: str | None
    refresh_expires_at: datetime
    device_cookie: str | None = None
    """A login's new trusted-device cookie value."""


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

    async def prune(self, *, table: PrunedTable, limit: int) -> int:
        """Delete up to `limit` rows of `table` that can never matter again; return how many."""
        now = self.clock()
        if table is PrunedTable.REFRESH_TOKENS:
            return await self.repository.prune_tokens(now=now, idle=self.idle_timeout, limit=limit)
        if table is PrunedTable.SESSIONS:
            return await self.repository.prune_sessions(
                now=now, idle=self.idle_timeout, limit=limit
            )
        if table is PrunedTable.STREAM_TICKETS:
            return await self.repository.prune_stream_tickets(now=now, limit=limit)
        retention = timedelta(seconds=self.settings.throttle_retention_s)
        return await self.repository.prune_throttles(
            counted_before=now - retention, now=now, limit=limit
        )

    async def caller(self, *, user_id: uuid.UUID, session_id: uuid.UUID) -> UserRead | None:
        """The account of an active user whose session is live (not ended, idle, expired)."""
        row = await self.repository.principal(
            user_id=user_id, session_id=session_id, now=self.clock(), idle=self.idle_timeout
        )
        return None if row is None else UserRead.model_validate(row)

    async def issue_stream_ticket(
        self, *, user_id: uuid.UUID, session_id: uuid.UUID, ttl_s: int
    ) -> str:
        """A new single-use ticket opening one event stream for this session, for `ttl_s`."""
        ticket = secrets.token_urlsafe(STREAM_TICKET_BYTES)
        await self.repository.add_stream_ticket(
            ticket=StreamTicket(
                token_hash=hash_refresh_token(ticket),
                user_id=user_id,
                session_id=session_id,
                expires_at=self.clock() + timedelta(seconds=ttl_s),
            )
        )
        return ticket

    async def redeem_stream_ticket(self, *, ticket: str) -> StreamHolder | None:
        """Use up a ticket; its holder if it was unused, unexpired and its session is live."""
        row = await self.repository.take_stream_ticket(
            token_hash=hash_refresh_token(ticket), now=self.clock()
        )
        if row is None:
            return None
        account = await self.caller(user_id=row.user_id, session_id=row.session_id)
        return None if account is None else StreamHolder(account=account, session_id=row.session_id)

    async def live_among(self, *, session_ids: Collection[uuid.UUID]) -> set[uuid.UUID]:
        """Those of the sessions that are live and whose user is active."""
        if not session_ids:
            return set()
        return await self.repository.live_session_ids(
            session_ids=session_ids, now=self.clock(), idle=self.idle_timeout
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

    async def list_live(
        self, *, user_id: uuid.UUID, current_session_id: uuid.UUID
    ) -> list[SessionRead]:
        """A user's live sessions, newest first; `current` marks `current_session_id`."""
        rows = await self.repository.live_sessions(
            user_id=user_id, now=self.clock(), idle=self.idle_timeout
        )
        return [
            SessionRead.model_validate({**row._mapping, "current": row.id == current_session_id})
            for row in rows
        ]

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


class CurrentPasswordThrottled(RateLimited):
    """Too many wrong current passwords on this account; `retry_after_s` says when to retry."""

    code = "current-password-throttled"
    title = "Too many wrong current passwords"


class PasswordCheckService:
    """Confirm a logged-in user's current password, slowed down per account like login.

    A stolen access token must not become a password-guessing oracle: each check is
    counted before it runs (its own `password_check` counter, so an attacker guessing at
    the login cannot also stop the owner from changing the password), and each wrong
    password is audited.
    """

    def __init__(
        self,
        *,
        session: AsyncSession,
        audit: AuditService,
        passwords: PasswordService,
        settings: AuthSettings,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.session = session
        self.audit = audit
        self.passwords = passwords
        self.throttle = AttemptThrottle(session=session, settings=settings, clock=clock)
        self.clock = clock

    async def confirm(
        self, *, user_id: uuid.UUID, password_hash: str, password: str, purpose: str
    ) -> None:
        """Return if `password` is the user's; raise `CurrentPasswordInvalid` if not.

        While the account's checks are slowed down, raise `CurrentPasswordThrottled`.
        """
        reservation = await self.check(
            user_id=user_id, password_hash=password_hash, password=password, purpose=purpose
        )
        await self.passed(user_id=user_id, reservation=reservation)

    async def check(
        self, *, user_id: uuid.UUID, password_hash: str, password: str, purpose: str
    ) -> Reservation:
        """Like `confirm`, but the counted failure stands until `passed` clears it.

        For callers with slow work of their own after the check: clearing takes the
        throttle row's lock until the request commits, so it should come after that work.
        """
        reservation = await self.throttle.reserve(user_id=user_id, scope=Scope.PASSWORD_CHECK)
        # Counted in a short transaction of its own before the slow verify, as in login.
        await commit_early(self.session)
        if isinstance(reservation, Refused):
            security_event(
                SecurityReason.CURRENT_PASSWORD_THROTTLED, user_id=str(user_id), purpose=purpose
            )
            wait_s = (reservation.until - self.clock()).total_seconds() if reservation.until else 1
            raise CurrentPasswordThrottled(
                "Too many wrong current passwords; try again later.",
                retry_after_s=max(math.ceil(wait_s), 1),
            )
        if not await self.passwords.verify(password_hash=password_hash, password=password):
            await self.audit.record(
                action=AuditAction.AUTH_PASSWORD_CHECK_FAILED,
                entity_type=AuditEntity.USER,
                entity_id=user_id,
                after={
                    "purpose": purpose,
                    "failures": reservation.failures,
                    "blocked_until": _iso(reservation.blocked_until),
                },
            )
            # The refusal rolls the request back; the count and its entry must outlive it.
            await commit_early(self.session)
            security_event(
                SecurityReason.WRONG_CURRENT_PASSWORD,
                user_id=str(user_id),
                purpose=purpose,
                failures=reservation.failures,
            )
            raise CurrentPasswordInvalid("The current password is wrong.")
        return reservation

    async def passed(self, *, user_id: uuid.UUID, reservation: Reservation) -> None:
        """The checked request goes ahead: forget the failures counted for the account."""
        await self.throttle.clear(user_id=user_id, reservation=reservation)


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
        password_checks: PasswordCheckService,
        devices: DeviceCookies,
        codec: TokenCodec,
        settings: AuthSettings,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.session = session
        self.repository = AuthRepository(session)
        self.throttle = AttemptThrottle(session=session, settings=settings, clock=clock)
        self.devices = devices
        self.audit = audit
        self.users = users
        self.sessions = sessions
        self.passwords = passwords
        self.password_checks = password_checks
        self.codec = codec
        self.settings = settings
        self.clock = clock

    async def register(self, *, email: str, password: str, full_name: str) -> UserRead:
        """Create a member account for a self-service sign-up."""
        if not self.settings.registration_enabled:
            raise RegistrationClosed("Self-service registration is turned off.")
        data = UserCreate(email=email, full_name=full_name, password=password, role=Role.MEMBER)
        return UserRead.model_validate(await self.users.create(data=data, registered=True))

    async def login(self, *, email: str, password: str, device_cookie: str | None) -> IssuedTokens:
        """Check credentials and open a session, or fail the same way whatever went wrong.

        Unknown email, wrong password, inactive account and a throttled account each do
        exactly one password verification and end in the same `InvalidCredentials`. The
        verification runs with no lock and no database connection held. A valid device
        cookie of the account spends its own failure budget instead of the account-wide
        slow-down; a successful login hands out a new one.
        """
        account = await self.users.credentials_for(email=normalise_email(email))
        if account is None:
            # Nothing changes, so nothing is audited: guessed emails must not flood the chain.
            # Ending the read transaction gives the connection back before the slow verify.
            await commit_early(self.session)
            await self.passwords.verify_against_nothing(password=password)
            security_event(SecurityReason.LOGIN_FAILED, problem="unknown_account")
            record_login(LoginOutcome.FAILURE)
            raise InvalidCredentials
        device_id = self._trusted_device(device_cookie, user_id=account.id)
        reservation = await self._reserve_login(user_id=account.id, device_id=device_id)
        # The failure is counted before the slow verify, in its own short transaction:
        # the throttle row and the connection are free again while argon2 runs, and a
        # parallel guess already sees this one counted.
        await commit_early(self.session)
        if isinstance(reservation, Refused):
            await self.passwords.verify_against_nothing(password=password)
            # A refused guess changes nothing: logged for alerting, never audited.
            security_event(
                SecurityReason.LOGIN_THROTTLED,
                user_id=str(account.id),
                blocked_until=_iso(reservation.until),
            )
            record_login(LoginOutcome.THROTTLED)
            raise InvalidCredentials
        valid = await self.passwords.verify(password_hash=account.password_hash, password=password)
        if not valid or not account.is_active:
            await self._login_failed(
                account=account, reservation=reservation, wrong_password=not valid
            )
        # Rehashing is slow too: it runs before this transaction takes any lock.
        rehashed = await self.passwords.rehash_if_needed(
            password_hash=account.password_hash, password=password
        )
        # A trusted device's login leaves the account-wide count alone: an attacker's
        # slow-down outlives the owner's logins.
        await self.throttle.clear(user_id=account.id, reservation=reservation)
        if device_id is not None:
            await self.throttle.forget_device(user_id=account.id, device_id=device_id)
        tokens = await self._open_session(account=account, rehashed=rehashed)
        record_login(LoginOutcome.SUCCESS)
        return replace(tokens, device_cookie=self.devices.issue(user_id=account.id))

    def _trusted_device(self, cookie: str | None, *, user_id: uuid.UUID) -> uuid.UUID | None:
        if cookie is None:
            return None
        device_id = self.devices.read(cookie, user_id=user_id)
        if device_id is None:
            security_event(SecurityReason.DEVICE_COOKIE_REJECTED, user_id=str(user_id))
        return device_id

    async def _reserve_login(
        self, *, user_id: uuid.UUID, device_id: uuid.UUID | None
    ) -> Reservation | Refused:
        if device_id is not None:
            # A device the account logged in from spends its own budget, however slowed
            # down the account is; once spent, the device counts as unknown.
            own = await self.throttle.reserve_device(user_id=user_id, device_id=device_id)
            if own is not None:
                return own
        return await self.throttle.reserve(user_id=user_id, scope=Scope.LOGIN)

    async def refresh(self, *, token: str) -> IssuedTokens:
        """Exchange a refresh token for a new one and a new access token.

        A token already exchanged means a copy leaked: the whole session is ended, except
        when it is the one just replaced and comes back within the grace window (two tabs
        refreshing at once); then only an access token is issued, never a second branch.
        """
        token_hash = hash_refresh_token(token)
        found = await self.repository.find_token(token_hash=token_hash)
        if found is None:
            raise _refresh_rejected("unknown")
        # The session row lock serialises refreshes of one family: the second of two
        # parallel calls sees the token the first one rotated, so only one branch survives.
        auth_session = await self.repository.lock_session(session_id=found.session_id)
        current = await self.repository.find_token(token_hash=token_hash)
        if auth_session is None or current is None or auth_session.revoked_at is not None:
            raise _refresh_rejected("revoked")
        row = await self.sessions.caller(user_id=auth_session.user_id, session_id=auth_session.id)
        now = self.clock()
        if row is None:
            raise _refresh_rejected("session_over")
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
        record_refresh(RefreshOutcome.SUCCESS)
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
        account = await self.users.credentials(user_id=user_id)
        # The policy needs no secret: checked first, so a refused new password costs the
        # owner no counted failure.
        self.passwords.check(password=new_password, email=account.email, field="new_password")
        reservation = await self.password_checks.check(
            user_id=user_id,
            password_hash=account.password_hash,
            password=current_password,
            purpose="password_change",
        )
        # Hashed before any row is written or locked: the throttle and user rows and the
        # audit head stay free meanwhile, and no connection is held.
        password_hash = await self.passwords.hash_new(
            password=new_password, email=account.email, field="new_password"
        )
        await self.password_checks.passed(user_id=user_id, reservation=reservation)
        # The user row is locked first and the sessions before any audit entry: the same
        # order as deactivation and refresh (users, sessions, audit head), so no deadlock.
        locked = await self.users.lock_credentials(user_id=user_id)
        if locked.password_hash != account.password_hash:
            # Changed by a parallel request since the check: the checked password is stale.
            raise CurrentPasswordInvalid("The password was changed meanwhile.")
        # Whoever else holds a session may be the reason for the change: end them all.
        await self.sessions.end_others(
            user_id=user_id, keep=session_id, reason=SessionEndReason.PASSWORD_CHANGED
        )
        await self.users.store_password(user_id=user_id, password_hash=password_hash)

    def access_token(self, *, user_id: uuid.UUID, role: Role, session_id: uuid.UUID) -> str:
        """Sign an access token naming the user, their role and the session."""
        return self.codec.encode_access(
            subject=str(user_id), claims={"role": role.value, "sid": str(session_id)}
        )

    async def _open_session(self, *, account: Credentials, rehashed: str | None) -> IssuedTokens:
        # The password checked out: from here on the audit trail names this user as actor.
        bind_actor(actor_id=account.id, actor_role=account.role.value)
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

    async def _login_failed(
        self, *, account: Credentials, reservation: Reservation, wrong_password: bool
    ) -> NoReturn:
        await self.audit.record(
            action=AuditAction.AUTH_LOGIN_FAILED,
            entity_type=AuditEntity.USER,
            entity_id=account.id,
            after={
                "reason": "wrong_password" if wrong_password else "inactive",
                "counter": "login" if reservation.scope == Scope.LOGIN else "trusted_device",
                "failures": reservation.failures,
                "blocked_until": _iso(reservation.blocked_until),
            },
        )
        # The refusal rolls the request's unit of work back; the entry must outlive it.
        await commit_early(self.session)
        security_event(
            SecurityReason.LOGIN_FAILED,
            user_id=str(account.id),
            problem="wrong_password" if wrong_password else "inactive",
            failures=reservation.failures,
        )
        record_login(LoginOutcome.FAILURE)
        raise InvalidCredentials

    async def _reused(
        self, *, auth_session: AuthSession, token: RefreshToken, role: Role, now: datetime
    ) -> IssuedTokens:
        grace = timedelta(seconds=self.settings.refresh_reuse_grace_s)
        just_replaced = token.generation == auth_session.generation - 1
        if just_replaced and token.rotated_at is not None and now - token.rotated_at <= grace:
            security_event(SecurityReason.REFRESH_GRACE_REPLAY, session_id=str(auth_session.id))
            record_refresh(RefreshOutcome.GRACE_REPLAY)
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
        # As with failed logins: the revocation must outlive the refusal that follows.
        await commit_early(self.session)
        security_event(SecurityReason.REFRESH_REUSED, session_id=str(auth_session.id))
        record_refresh(RefreshOutcome.REUSE_DETECTED)
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


def build_password_check_service(
    session: AsyncSession, *, audit: AuditService, passwords: PasswordService, settings: Settings
) -> PasswordCheckService:
    """The current-password checks on a session, sharing the unit of work's audit service."""
    return PasswordCheckService(
        session=session, audit=audit, passwords=passwords, settings=settings.auth
    )


def build_auth_service(
    session: AsyncSession,
    *,
    audit: AuditService,
    sessions: SessionService,
    users: UserService,
    passwords: PasswordService,
    password_checks: PasswordCheckService,
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
        password_checks=password_checks,
        devices=DeviceCookies(
            secret=settings.security.jwt_secret,
            lifetime_s=settings.auth.device_cookie_lifetime_s,
            clock=utc_now,
        ),
        codec=codec,
        settings=settings.auth,
    )


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _refresh_rejected(problem: str) -> InvalidRefreshToken:
    security_event(SecurityReason.REFRESH_REJECTED, problem=problem)
    record_refresh(RefreshOutcome.REJECTED)
    return InvalidRefreshToken()
