"""Where `Idempotency-Key` answers live: the `idempotency_keys` table and its queries.

A row is written in the same transaction as the change it answers for, so only a
committed outcome is ever replayed: a request that fails or rolls back stores nothing,
and its retry runs again.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    Index,
    Interval,
    LargeBinary,
    SmallInteger,
    String,
    bindparam,
    delete,
    func,
    select,
    text,
    tuple_,
)
from sqlalchemy.dialects.postgresql import JSONB, Insert, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from app.core.config import Settings
from app.core.db import Base, create_engine, create_session_factory
from app.core.locks import advisory_lock_id

LOCK_PREFIX = b"roombook.idempotency:"
"""Salts the advisory lock ids, so they do not coincide with other advisory locks' ids."""
KEY_COLUMNS = frozenset({"caller_id", "key"})
"""The primary key, which replacing an expired answer keeps."""


class IdempotencyRecord(Base):
    """The committed answer to a request sent with an `Idempotency-Key`, kept for its retries."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (
        CheckConstraint("char_length(key) BETWEEN 1 AND 255", name="key_length"),
        Index("ix_idempotency_keys_expires_at", "expires_at"),
    )

    caller_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    """The user who sent the request: keys are scoped per caller, never shared."""
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    """The `Idempotency-Key` header as sent (printable ASCII, 1 to 255 characters)."""
    request_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    """SHA-256 of method, path, query and canonical body: a retry must send the same."""
    status_code: Mapped[int] = mapped_column(SmallInteger)
    """Status of the stored answer."""
    headers: Mapped[dict[str, str]] = mapped_column(JSONB)
    """The answer's headers a replay repeats (such as `Location` and `ETag`), by name."""
    body: Mapped[bytes] = mapped_column(LargeBinary)
    """The answer's body exactly as it was sent."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    """When the answer was stored."""
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    """From then on the row is ignored (the key runs its request afresh) and may be pruned."""


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    """What a replay needs of a stored answer, read as plain values."""

    request_hash: bytes
    status_code: int
    headers: dict[str, str]
    body: bytes


def lock_id(*, caller_id: uuid.UUID, key: str) -> int:
    """The 64-bit advisory lock id of one caller's key."""
    return advisory_lock_id(LOCK_PREFIX, caller_id.bytes, key.encode())


TRY_LOCK = text("SELECT pg_try_advisory_xact_lock(:id)")
FIND = select(
    IdempotencyRecord.request_hash,
    IdempotencyRecord.status_code,
    IdempotencyRecord.headers,
    IdempotencyRecord.body,
).where(
    IdempotencyRecord.caller_id == bindparam("caller_id"),
    IdempotencyRecord.key == bindparam("key"),
    IdempotencyRecord.expires_at > func.now(),
)


def _save_statement() -> Insert:
    values = {
        "caller_id": bindparam("caller_id"),
        "key": bindparam("key"),
        "request_hash": bindparam("request_hash"),
        "status_code": bindparam("status_code"),
        "headers": bindparam("headers", type_=JSONB),
        "body": bindparam("body"),
        "created_at": func.now(),
        "expires_at": func.now() + bindparam("ttl", type_=Interval),
    }
    statement = insert(IdempotencyRecord).values(values)
    return statement.on_conflict_do_update(
        index_elements=[IdempotencyRecord.caller_id, IdempotencyRecord.key],
        set_={name: statement.excluded[name] for name in values if name not in KEY_COLUMNS},
    )


SAVE = _save_statement()
"""Store an answer, replacing an expired one under the same key.

These statements are built once: a statement built per call costs its construction and its
cache key on every request (about 175 us of CPU each, measured on the key lookup)."""


class IdempotencyStore:
    """Locks, reads and writes stored answers in the caller's session and transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def try_lock(self, *, caller_id: uuid.UUID, key: str) -> bool:
        """Take the key's lock until the transaction ends; False at once if someone holds it."""
        locked = await self.session.scalar(TRY_LOCK, {"id": lock_id(caller_id=caller_id, key=key)})
        return bool(locked)

    async def find(self, *, caller_id: uuid.UUID, key: str) -> StoredAnswer | None:
        """The unexpired answer stored under a caller's key, if any."""
        row = (await self.session.execute(FIND, {"caller_id": caller_id, "key": key})).one_or_none()
        return None if row is None else StoredAnswer(*row)

    async def save(
        self,
        *,
        caller_id: uuid.UUID,
        key: str,
        request_hash: bytes,
        status_code: int,
        headers: dict[str, str],
        body: bytes,
        ttl_s: int,
    ) -> None:
        """Store an answer under a caller's key, replacing an expired one; the lock is held."""
        # Only an expired row can be in the way: the lookup under the same lock found none live.
        await self.session.execute(
            SAVE,
            {
                "caller_id": caller_id,
                "key": key,
                "request_hash": request_hash,
                "status_code": status_code,
                "headers": headers,
                "body": body,
                "ttl": timedelta(seconds=ttl_s),
            },
        )

    async def prune(self, *, limit: int) -> int:
        """Delete up to `limit` expired answers; return how many went."""
        batch = (
            select(IdempotencyRecord.caller_id, IdempotencyRecord.key)
            .where(IdempotencyRecord.expires_at <= func.now())
            .limit(limit)
            # A row a request is replacing right now is left for the next run.
            .with_for_update(skip_locked=True)
        )
        key = tuple_(IdempotencyRecord.caller_id, IdempotencyRecord.key)
        rows = await self.session.execute(
            delete(IdempotencyRecord)
            .where(key.in_(batch))
            .returning(IdempotencyRecord.key)
            .execution_options(synchronize_session=False)
        )
        return len(rows.all())


async def prune_expired_keys(settings: Settings, *, url: str, batch_size: int) -> int:
    """Delete expired answers in batches of short transactions; return how many went."""
    engine = create_engine(settings.database, url=url)
    removed = 0
    try:
        factory = create_session_factory(engine)
        while True:
            async with factory() as session, session.begin():
                count = await IdempotencyStore(session).prune(limit=batch_size)
            removed += count
            if count < batch_size:
                return removed
    finally:
        await engine.dispose()
