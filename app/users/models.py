"""The `users` table: accounts are deactivated, never deleted."""

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, DateTime, Index, Integer, String, text
from sqlalchemy.dialects.postgresql import CITEXT
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, Timestamped, UUIDPrimaryKey


class User(UUIDPrimaryKey, Timestamped, Base):
    """A person who can log in; bookings and audit entries keep pointing at them forever."""

    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint("role IN ('member', 'manager', 'admin')", name="role_known"),
        CheckConstraint("version > 0", name="version_positive"),
        Index("ix_users_created_at_id", "created_at", "id"),
        Index("ix_users_role_active", "role", "is_active"),
    )
    # Server-set columns (timestamps, version) are read back with RETURNING, never lazily.
    __mapper_args__ = {"eager_defaults": True}  # noqa: RUF012

    email: Mapped[str] = mapped_column(CITEXT, unique=True)
    """Login name, stored lower-cased; citext keeps uniqueness case-insensitive regardless."""
    full_name: Mapped[str] = mapped_column(String(200))
    """Display name."""
    role: Mapped[str] = mapped_column(String(16), server_default=text("'member'"))
    """`member`, `manager` or `admin` (see `Role`)."""
    is_active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    """False once deactivated: no login, no sessions, existing tokens rejected."""
    password_hash: Mapped[str] = mapped_column(String(255))
    """argon2id hash in PHC format; never leaves the service layer."""
    version: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    """Bumped by every update; the ETag, checked against `If-Match`."""
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """When the user last logged in successfully."""
