"""Audit tables: the append-only event log and the single-row head of its hash chain."""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Index,
    SmallInteger,
    String,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, UUIDPrimaryKey

GENESIS_HASH = "0" * 64
"""The `prev_hash` of the first entry of the chain."""
HEAD_ID = 1
"""The id of the one row of `audit_chain_head`."""


class AuditEvent(UUIDPrimaryKey, Base):
    """One recorded change; rows are never updated or deleted (a trigger enforces it)."""

    __tablename__ = "audit_events"
    __table_args__ = (
        UniqueConstraint("seq"),
        CheckConstraint("seq > 0", name="seq_positive"),
        CheckConstraint("action ~ '^[a-z_]+\\.[a-z_]+$'", name="action_format"),
        Index("ix_audit_events_occurred_at", "occurred_at", "id"),
        Index("ix_audit_events_actor_id", "actor_id", "occurred_at", "id"),
        Index("ix_audit_events_action", "action", "occurred_at", "id"),
        Index("ix_audit_events_entity_type", "entity_type", "occurred_at", "id"),
        Index("ix_audit_events_entity_id", "entity_id", "occurred_at", "id"),
    )

    seq: Mapped[int] = mapped_column(BigInteger)
    """Position in the hash chain: 1, 2, 3… in the order entries were appended."""
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    """When the entry was appended (application clock, UTC, microseconds)."""
    action: Mapped[str] = mapped_column(String(64, collation="C"))
    """An `AuditAction` value; byte-order collation so `LIKE 'booking.%'` uses the index."""
    actor_id: Mapped[uuid.UUID | None]
    """The authenticated user who caused the change; null for anonymous or system work."""
    actor_role: Mapped[str | None] = mapped_column(String(32))
    """The actor's role then; `anonymous` in unauthenticated requests, `system` outside requests."""
    request_id: Mapped[str | None] = mapped_column(String(128))
    """The `X-Request-ID` of the request that made the change."""
    client_ip: Mapped[str | None] = mapped_column(String(64))
    """The caller's address (`X-Forwarded-For` believed only from trusted proxies)."""
    user_agent: Mapped[str | None] = mapped_column(String(256))
    """The caller's `User-Agent`, truncated to 256 characters."""
    entity_type: Mapped[str] = mapped_column(String(64))
    """Kind of thing changed, e.g. `user`, `booking`."""
    entity_id: Mapped[str | None] = mapped_column(String(128))
    """Identifier of the thing changed, as text."""
    changes: Mapped[dict[str, Any]] = mapped_column(JSONB)
    """`{"before": {…}, "after": {…}}` with only the fields that changed, secrets redacted."""
    prev_hash: Mapped[str] = mapped_column(String(64))
    """`hash` of the entry with `seq - 1` (64 zeros for the first)."""
    hash: Mapped[str] = mapped_column(String(64))
    """HMAC-SHA256 (hex) under `key_id` of the canonical serialisation, which has `prev_hash`."""
    key_id: Mapped[str | None] = mapped_column(String(32))
    """Id of the chain key that signed the entry; null for an unkeyed entry from before keys."""


class AuditChainHead(Base):
    """The last appended entry; locking this row serialises appends to the chain."""

    __tablename__ = "audit_chain_head"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    """Always 1: there is exactly one chain."""
    last_seq: Mapped[int] = mapped_column(BigInteger)
    """`seq` of the last appended entry (0 while the chain is empty)."""
    last_hash: Mapped[str] = mapped_column(String(64))
    """`hash` of the last appended entry (64 zeros while the chain is empty)."""
