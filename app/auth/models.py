"""Auth tables: sessions (refresh-token families), their tokens, and login slow-down state."""

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import DateTime, ForeignKey, Index, Integer, LargeBinary, String, func, text
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, Timestamped, UUIDPrimaryKey


class SessionEndReason(StrEnum):
    """Why a session was ended; expiry is not one, it is read from the timestamps."""

    LOGOUT = "logout"
    REVOKED = "revoked"
    PASSWORD_CHANGED = "password_changed"  # noqa: S105 - a reason, not a secret
    REFRESH_REUSED = "refresh_reused"
    USER_DEACTIVATED = "user_deactivated"


class AuthSession(UUIDPrimaryKey, Timestamped, Base):
    """One login on one device: a family of refresh tokens and the access tokens they mint.

    Access tokens carry the session id (`sid`), so ending the session ends them too.
    """

    __tablename__ = "auth_sessions"
    __table_args__ = (Index("ix_auth_sessions_user_id", "user_id", "created_at"),)
    __mapper_args__ = {"eager_defaults": True}  # noqa: RUF012

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    """The user who logged in."""
    last_used_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    """Last login or refresh; the idle timeout counts from here."""
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    """Absolute end of the session, however much it is used."""
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """When the session was ended; null while it is live."""
    revoked_reason: Mapped[str | None] = mapped_column(String(32))
    """Why it ended: a `SessionEndReason` value; null while live or after it merely expired."""
    user_agent: Mapped[str | None] = mapped_column(String(256))
    """`User-Agent` at login, to help the user recognise the device."""
    client_ip: Mapped[str | None] = mapped_column(String(64))
    """Client address at login."""
    generation: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    """How often the session was refreshed: the generation of its one live refresh token."""


class RefreshToken(UUIDPrimaryKey, Base):
    """One refresh token of a session; only its SHA-256 is stored, never the token."""

    __tablename__ = "auth_refresh_tokens"
    __table_args__ = (Index("ix_auth_refresh_tokens_session_id", "session_id"),)

    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("auth_sessions.id", ondelete="CASCADE")
    )
    """The session (token family) this token belongs to."""
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    """SHA-256 of the token; a database leak yields no usable token."""
    generation: Mapped[int] = mapped_column(Integer)
    """0 for the token issued at login, then one more per rotation."""
    issued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    """When the token was handed out."""
    rotated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """When it was exchanged for its successor; presenting it again after that is reuse."""


class LoginThrottle(Base):
    """Failed password checks of one account in one scope, and the delay window they earned.

    Scopes: `login` (the account-wide login slow-down), `password_check` (current-password
    confirmations of a logged-in user) and `device:<id>` (the failure budget of one
    trusted device cookie). A row is written before each check (the reservation) and
    deleted when the check succeeds.
    """

    __tablename__ = "auth_login_throttles"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    """The account being guessed at."""
    scope: Mapped[str] = mapped_column(String(48), primary_key=True)
    """What is counted: `login`, `password_check` or `device:<device id>`."""
    failures: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    """Failed checks since the last success, counting the checks in progress."""
    blocked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """No check is made before this time; then one more guess is allowed."""
    counted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    """When the last failure was counted; `make prune` forgets rows untouched for long."""


class StreamTicket(Base):
    """A single-use ticket that opens one event stream; only its SHA-256 is stored.

    A browser's `EventSource` cannot send an `Authorization` header, and an access token in
    a URL would end up in logs and histories; this ticket lives seconds and works once.
    """

    __tablename__ = "auth_stream_tickets"
    __table_args__ = (
        Index("ix_auth_stream_tickets_session_id", "session_id"),
        Index("ix_auth_stream_tickets_expires_at", "expires_at"),
    )

    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    """SHA-256 of the ticket; a database leak yields no usable ticket."""
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    """Whose stream the ticket opens."""
    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("auth_sessions.id", ondelete="CASCADE")
    )
    """The session that asked for it: the stream lives only as long as this session."""
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    """After this the ticket opens nothing; `make prune` deletes it."""
