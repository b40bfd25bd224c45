"""The audit service: `record` for every domain, reading and chain verification for admins."""

import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from app.audit.actions import AuditAction, AuditEntity
from app.audit.chain import (
    HASHED_FIELDS,
    ChainAnchor,
    ChainEntry,
    ChainKeys,
    PendingEntry,
    UnknownChainKey,
    entry_hash,
)
from app.audit.changes import diff
from app.audit.models import GENESIS_HASH, AuditEvent
from app.audit.repository import AuditRepository, ChainWriter
from app.audit.schemas import AuditFilter, BrokenEntry, ChainReport
from app.core.config import Settings
from app.core.context import current_context
from app.core.errors import NotFound
from app.core.metrics import time_audit_append
from app.core.pagination import PageRequest, SortValue
from app.core.unit_of_work import queue_before_commit

VERIFY_BATCH_ROWS = 2000
SYSTEM_ROLE = "system"
ANONYMOUS_ROLE = "anonymous"

log = structlog.get_logger("roombook.audit")


class AuditEventNotFound(NotFound):
    """No audit entry has this id."""

    code = "audit-event-not-found"
    title = "Audit event not found"


def utc_now() -> datetime:
    """The current time in UTC."""
    return datetime.now(UTC)


def _clip(value: str | None, length: int) -> str | None:
    return value[:length] if value else value


def _as_entry(row: Row[Any]) -> ChainEntry:
    return ChainEntry(**{name: getattr(row, name) for name in HASHED_FIELDS})


@dataclass(frozen=True, slots=True)
class ChainAppender:
    """Appends a unit of work's recorded entries to the chain, signed with the current key."""

    keys: ChainKeys

    def __call__(self, session: Session, entries: Sequence[PendingEntry]) -> None:
        """Append the entries, just before the unit of work's COMMIT.

        Locks the chain head (two round trips to COMMIT from here: this lock and the
        insert), so seq order is commit order and every entry links to the one committed
        before it, while nothing the transaction did earlier runs under the lock.
        """
        writer = ChainWriter(session)
        with time_audit_append():
            last_seq, last_hash = writer.lock_head()
            rows = []
            for pending in entries:
                entry = pending.link(
                    seq=last_seq + 1, prev_hash=last_hash, key_id=self.keys.current_id
                )
                last_seq, last_hash = entry.seq, entry_hash(entry, keys=self.keys)
                rows.append(
                    {**{name: getattr(entry, name) for name in HASHED_FIELDS}, "hash": last_hash}
                )
            writer.append(rows=rows)


class AuditService:
    """Record audit entries in the caller's unit of work and read them back."""

    def __init__(
        self, session: AsyncSession, *, keys: ChainKeys, clock: Callable[[], datetime] = utc_now
    ) -> None:
        self.session = session
        self.repository = AuditRepository(session)
        self.keys = keys
        self.append = ChainAppender(keys)
        self.clock = clock

    async def record(
        self,
        *,
        action: AuditAction,
        entity_type: AuditEntity,
        entity_id: str | uuid.UUID | None,
        before: Mapping[str, Any] | None = None,
        after: Mapping[str, Any] | None = None,
    ) -> None:
        """Record an entry describing a change, to commit in the same transaction as the change.

        Nothing is written here: the entry waits on the caller's unit of work and is
        appended to the chain as the last statements before its COMMIT (see
        `ChainAppender`), so slow work after `record()` holds no lock other writers
        need. A rollback drops it with the change, and a failed append fails the commit.
        """
        context = current_context()
        action = AuditAction(action)
        entity_type = AuditEntity(entity_type)
        entry = PendingEntry(
            id=uuid.uuid4(),
            occurred_at=self.clock().astimezone(UTC),
            action=action.value,
            actor_id=context.actor_id,
            actor_role=context.actor_role
            or (ANONYMOUS_ROLE if context.request_id else SYSTEM_ROLE),
            request_id=_clip(context.request_id, 128),
            client_ip=_clip(context.client_ip, 64),
            user_agent=_clip(context.user_agent, 256),
            entity_type=entity_type.value,
            entity_id=None if entity_id is None else str(entity_id),
            changes=diff(before, after),
        )
        queue_before_commit(self.session, write=self.append, item=entry)

    async def get_event(self, *, event_id: uuid.UUID) -> AuditEvent:
        """Load one entry, or raise `AuditEventNotFound`."""
        event = await self.repository.get(event_id=event_id)
        if event is None:
            raise AuditEventNotFound(f"No audit event has id {event_id}.")
        return event

    async def list_events(
        self, *, filters: AuditFilter, page: PageRequest
    ) -> tuple[Sequence[Row[Any]], tuple[SortValue, uuid.UUID] | None]:
        """One page of matching entries, newest first, and the key to resume after."""
        return await self.repository.list_page(filters=filters, page=page)

    def stream_events(self, *, filters: AuditFilter) -> AsyncIterator[Sequence[Row[Any]]]:
        """Every matching entry, newest first, in batches, never all of them in memory."""
        return self.repository.stream(filters=filters)

    async def verify(self, *, anchors: Sequence[ChainAnchor] = ()) -> ChainReport:
        """Walk the chain from the first entry to the head; report the first entry that breaks.

        Checks for each entry: its seq follows the previous one, its `prev_hash` is the
        previous entry's hash, its key is configured (or it is an accepted unkeyed entry)
        and its hash matches its content under that key. Then the head must point at the
        last entry (catching entries deleted from, or rewritten at, the end), no entry may
        lie past the head (catching entries forged onto the end), and every given anchor
        (a seq and hash published elsewhere) must still be in the chain, unchanged.
        """
        # The head is read first: every entry up to it committed with it, so the walk sees a
        # complete chain even while writers keep appending past it.
        head_seq, head_hash = await self.repository.head()
        return await self._verify_up_to(head_seq=head_seq, head_hash=head_hash, anchors=anchors)

    async def anchor(self) -> tuple[ChainReport, ChainAnchor]:
        """Verify the chain and return its head as an anchor to publish outside the database."""
        head_seq, head_hash = await self.repository.head()
        report = await self._verify_up_to(head_seq=head_seq, head_hash=head_hash, anchors=())
        return report, ChainAnchor(seq=head_seq, hash=head_hash)

    async def _verify_up_to(
        self, *, head_seq: int, head_hash: str, anchors: Sequence[ChainAnchor]
    ) -> ChainReport:
        pinned = {anchor.seq: anchor.hash for anchor in anchors}
        checked, prev_seq, prev_hash = 0, 0, GENESIS_HASH
        prev_id: uuid.UUID | None = None
        while True:
            batch = await self.repository.chain_batch(
                after_seq=prev_seq, up_to_seq=head_seq, limit=VERIFY_BATCH_ROWS
            )
            for event in batch:
                reason = _break_reason(
                    event, prev_seq=prev_seq, prev_hash=prev_hash, keys=self.keys, pinned=pinned
                )
                if reason is not None:
                    return _broken(checked=checked, entry_id=event.id, seq=event.seq, reason=reason)
                checked, prev_seq, prev_hash, prev_id = checked + 1, event.seq, event.hash, event.id
            if len(batch) < VERIFY_BATCH_ROWS:
                break
        if prev_seq != head_seq:
            reason = (
                f"the chain head is at seq {head_seq} but the last entry found is seq {prev_seq}"
            )
            return _broken(checked=checked, entry_id=None, seq=prev_seq + 1, reason=reason)
        if prev_hash != head_hash:
            # The last entry checks out on its own, but the head that pins it disagrees.
            reason = "the chain head records a different hash for this entry"
            return _broken(
                checked=max(checked - 1, 0), entry_id=prev_id, seq=prev_seq, reason=reason
            )
        beyond = await self.repository.first_beyond_head()
        if beyond is not None:
            reason = "this entry lies beyond the chain head"
            beyond_id, beyond_seq = beyond
            return _broken(checked=checked, entry_id=beyond_id, seq=beyond_seq, reason=reason)
        missing = [seq for seq in sorted(pinned) if seq > head_seq]
        if missing:
            # A chain cut back below a published anchor (and rebuilt from there) ends early.
            reason = f"the anchored entry is missing: the chain ends at seq {head_seq}"
            return _broken(checked=checked, entry_id=None, seq=missing[0], reason=reason)
        return ChainReport(ok=True, checked=checked, broken=None)


def build_audit_service(session: AsyncSession, *, settings: Settings) -> AuditService:
    """The audit service on a session (one per unit of work), signing with the chain key."""
    return AuditService(session, keys=ChainKeys.from_settings(settings.audit))


def _broken(*, checked: int, entry_id: uuid.UUID | None, seq: int, reason: str) -> ChainReport:
    log.warning("audit chain broken", seq=seq, reason=reason)
    return ChainReport(
        ok=False, checked=checked, broken=BrokenEntry(id=entry_id, seq=seq, reason=reason)
    )


def _break_reason(
    event: Row[Any], *, prev_seq: int, prev_hash: str, keys: ChainKeys, pinned: dict[int, str]
) -> str | None:
    if event.seq != prev_seq + 1:
        return f"entries {prev_seq + 1} to {event.seq - 1} are missing before this entry"
    if event.prev_hash != prev_hash:
        return "prev_hash does not match the previous entry's hash"
    reason = _hash_reason(event, keys=keys)
    if reason is None and event.seq in pinned and event.hash != pinned[event.seq]:
        return "hash differs from the published anchor"
    return reason


def _hash_reason(event: Row[Any], *, keys: ChainKeys) -> str | None:
    if event.key_id is None and event.seq > keys.unkeyed_until_seq:
        # Someone who cannot sign could otherwise rewrite entries as unkeyed ones.
        return "entry is unkeyed but lies past AUDIT__CHAIN_UNKEYED_UNTIL_SEQ"
    try:
        expected = entry_hash(_as_entry(event), keys=keys)
    except UnknownChainKey:
        return f"entry is signed with key {event.key_id!r}, which is not configured"
    if event.hash != expected:
        return "hash does not match the entry's content"
    return None
