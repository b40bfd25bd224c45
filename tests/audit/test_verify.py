"""Chain verification: a clean chain verifies, and each kind of tampering is named."""

import hashlib
import uuid
from collections.abc import Callable
from dataclasses import asdict, replace
from datetime import UTC, datetime

import pytest
from pydantic import SecretStr
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit import service as audit_service
from app.audit.actions import AuditAction, AuditEntity
from app.audit.chain import (
    HASHED_FIELDS,
    ChainAnchor,
    ChainEntry,
    ChainKeys,
    canonical_bytes,
    entry_hash,
)
from app.audit.models import GENESIS_HASH, AuditEvent
from app.audit.service import AuditService
from app.core.config import AuditSettings
from tests.audit.conftest import KEYS, events_by_seq


async def _record_many(audit: AuditService, count: int) -> list[AuditEvent]:
    for number in range(count):
        await audit.record(
            action=AuditAction.BOOKING_CREATED,
            entity_type=AuditEntity.BOOKING,
            entity_id=f"b{number}",
            after={"number": number},
        )
    await audit.session.commit()
    return await events_by_seq(audit.session)


def _as_entry(event: AuditEvent) -> ChainEntry:
    return ChainEntry(**{name: getattr(event, name) for name in HASHED_FIELDS})


async def _as_superuser(session: AsyncSession, statement: str) -> None:
    """Run a statement with the append-only triggers bypassed, as a superuser could."""
    await session.execute(text("SET LOCAL session_replication_role = replica"))
    await session.execute(text(statement))
    await session.execute(text("SET LOCAL session_replication_role = origin"))


async def test_an_empty_chain_verifies(audit: AuditService) -> None:
    report = await audit.verify()

    assert report.model_dump() == {"ok": True, "checked": 0, "broken": None}


async def test_an_intact_chain_verifies_across_batches(
    audit: AuditService, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audit_service, "VERIFY_BATCH_ROWS", 2)
    await _record_many(audit, 5)

    report = await audit.verify()

    assert report.model_dump() == {"ok": True, "checked": 5, "broken": None}


async def test_a_row_modified_with_triggers_disabled_is_named(
    audit: AuditService, db_session: AsyncSession
) -> None:
    events = await _record_many(audit, 4)
    target = events[2]
    await db_session.execute(text("ALTER TABLE audit_events DISABLE TRIGGER USER"))
    await db_session.execute(
        text('UPDATE audit_events SET changes = \'{"after": {"number": 99}}\' WHERE id = :id'),
        {"id": target.id},
    )
    await db_session.execute(text("ALTER TABLE audit_events ENABLE TRIGGER USER"))

    report = await audit.verify()

    assert report.ok is False
    assert report.checked == 2
    assert report.broken is not None
    assert (report.broken.id, report.broken.seq) == (target.id, 3)
    assert report.broken.reason == "hash does not match the entry's content"


async def test_a_replaced_hash_is_named_at_its_own_entry(
    audit: AuditService, db_session: AsyncSession
) -> None:
    events = await _record_many(audit, 3)
    await _as_superuser(
        db_session, f"UPDATE audit_events SET hash = repeat('a', 64) WHERE id = '{events[0].id}'"
    )

    report = await audit.verify()

    assert report.broken is not None
    assert (report.broken.id, report.broken.seq) == (events[0].id, 1)
    await _as_superuser(
        db_session,
        f"UPDATE audit_events SET prev_hash = repeat('a', 64) WHERE id = '{events[1].id}'",
    )
    report = await audit.verify()
    assert report.broken is not None
    assert report.broken.id == events[0].id


async def test_a_forged_link_is_named_at_the_entry_that_points_wrongly(
    audit: AuditService, db_session: AsyncSession
) -> None:
    events = await _record_many(audit, 3)
    await _as_superuser(
        db_session,
        f"UPDATE audit_events SET prev_hash = repeat('b', 64) WHERE id = '{events[1].id}'",
    )

    report = await audit.verify()

    assert report.checked == 1
    assert report.broken is not None
    assert (report.broken.id, report.broken.seq) == (events[1].id, 2)
    assert report.broken.reason == "prev_hash does not match the previous entry's hash"


async def test_a_deleted_entry_is_named_by_the_entry_after_the_gap(
    audit: AuditService, db_session: AsyncSession
) -> None:
    events = await _record_many(audit, 4)
    await _as_superuser(db_session, f"DELETE FROM audit_events WHERE id = '{events[1].id}'")

    report = await audit.verify()

    assert report.broken is not None
    assert (report.broken.id, report.broken.seq) == (events[2].id, 3)
    assert report.broken.reason == "entries 2 to 2 are missing before this entry"


async def test_entries_deleted_from_the_end_are_caught_by_the_head(
    audit: AuditService, db_session: AsyncSession
) -> None:
    events = await _record_many(audit, 3)
    await _as_superuser(db_session, f"DELETE FROM audit_events WHERE id = '{events[2].id}'")

    report = await audit.verify()

    assert report.checked == 2
    assert report.broken is not None
    assert (report.broken.id, report.broken.seq) == (None, 3)
    assert report.broken.reason == ("the chain head is at seq 3 but the last entry found is seq 2")


async def _forge(
    session: AsyncSession, *, seq: int, prev_hash: str, advance_head: bool = False
) -> uuid.UUID:
    """Insert an entry whose hash is right for its content, as a careful forger would."""
    entry = ChainEntry(
        id=uuid.uuid4(),
        seq=seq,
        occurred_at=datetime.now(UTC),
        action="booking.cancelled",
        actor_id=None,
        actor_role="system",
        request_id=None,
        client_ip=None,
        user_agent=None,
        entity_type=AuditEntity.BOOKING,
        entity_id="forged",
        changes={},
        prev_hash=prev_hash,
        key_id=KEYS.current_id,
    )
    await session.execute(
        insert(AuditEvent).values(**asdict(entry), hash=entry_hash(entry, keys=KEYS))
    )
    if advance_head:
        await session.execute(text("UPDATE audit_chain_head SET last_seq = last_seq + 1"))
    return entry.id


async def test_swapped_entries_are_named_at_the_first_out_of_place(
    audit: AuditService, db_session: AsyncSession
) -> None:
    events = await _record_many(audit, 4)
    swap = (
        f"UPDATE audit_events SET seq = 1000 WHERE id = '{events[1].id}';"
        f"UPDATE audit_events SET seq = 2 WHERE id = '{events[2].id}';"
        f"UPDATE audit_events SET seq = 3 WHERE id = '{events[1].id}'"
    )
    for statement in swap.split(";"):
        await _as_superuser(db_session, statement)

    report = await audit.verify()

    assert report.checked == 1
    assert report.broken is not None
    assert (report.broken.id, report.broken.seq) == (events[2].id, 2)
    assert report.broken.reason == "prev_hash does not match the previous entry's hash"


async def test_an_entry_inserted_mid_chain_breaks_the_link_of_the_entry_it_displaced(
    audit: AuditService, db_session: AsyncSession
) -> None:
    events = await _record_many(audit, 3)
    for event in reversed(events[1:]):  # make room at seq 2, from the end (seq is unique)
        await _as_superuser(
            db_session, f"UPDATE audit_events SET seq = seq + 1 WHERE id = '{event.id}'"
        )
    forged = await _forge(db_session, seq=2, prev_hash=events[0].hash, advance_head=True)

    report = await audit.verify()

    # The forged entry links correctly to its predecessor; the displaced one cannot.
    assert forged not in {e.id for e in events}
    assert report.checked == 2
    assert report.broken is not None
    assert (report.broken.id, report.broken.seq) == (events[1].id, 3)
    assert report.broken.reason == "prev_hash does not match the previous entry's hash"


async def test_an_entry_appended_past_the_head_is_named(
    audit: AuditService, db_session: AsyncSession
) -> None:
    events = await _record_many(audit, 2)
    forged = await _forge(db_session, seq=3, prev_hash=events[1].hash)

    report = await audit.verify()

    assert report.checked == 2
    assert report.broken is not None
    assert (report.broken.id, report.broken.seq) == (forged, 3)
    assert report.broken.reason == "this entry lies beyond the chain head"


async def test_entries_without_a_chain_head_are_named_from_the_first(
    audit: AuditService, db_session: AsyncSession
) -> None:
    events = await _record_many(audit, 2)
    await _as_superuser(db_session, "DELETE FROM audit_chain_head")

    report = await audit.verify()

    assert report.checked == 0
    assert report.broken is not None
    assert (report.broken.id, report.broken.seq) == (events[0].id, 1)
    assert report.broken.reason == "this entry lies beyond the chain head"


async def test_a_last_entry_rewritten_with_a_recomputed_hash_is_caught_by_the_head(
    audit: AuditService, db_session: AsyncSession
) -> None:
    events = await _record_many(audit, 3)
    last = events[2]
    forged = replace(_as_entry(last), entity_id="forged")
    await _as_superuser(
        db_session,
        f"UPDATE audit_events SET entity_id = 'forged', hash = '{entry_hash(forged, keys=KEYS)}' "
        f"WHERE id = '{last.id}'",
    )

    report = await audit.verify()

    assert report.checked == 2
    assert report.broken is not None
    assert (report.broken.id, report.broken.seq) == (last.id, 3)
    assert report.broken.reason == "the chain head records a different hash for this entry"


def _unkeyed(entry: ChainEntry) -> str:
    """The hash a forger without the key can compute."""
    return hashlib.sha256(canonical_bytes(entry)).hexdigest()


async def _rewrite_chain(
    session: AsyncSession,
    events: list[AuditEvent],
    *,
    seal: Callable[[ChainEntry], ChainEntry],
    digest_of: Callable[[ChainEntry], str] = _unkeyed,
) -> None:
    """Rewrite every entry through `seal` and relink the chain and head, as a superuser could."""
    prev_hash = GENESIS_HASH
    for event in events:
        entry = seal(replace(_as_entry(event), prev_hash=prev_hash))
        digest = digest_of(entry)
        await _as_superuser(
            session,
            f"UPDATE audit_events SET entity_id = '{entry.entity_id}', prev_hash = '{prev_hash}', "
            f"key_id = {'NULL' if entry.key_id is None else repr(entry.key_id)}, "
            f"hash = '{digest}' WHERE id = '{event.id}'",
        )
        prev_hash = digest
    await _as_superuser(session, f"UPDATE audit_chain_head SET last_hash = '{prev_hash}'")


async def test_a_rewrite_with_recomputed_unkeyed_hashes_is_caught_without_the_key(
    audit: AuditService, db_session: AsyncSession
) -> None:
    events = await _record_many(audit, 3)

    # Edit entry 2 and recompute every hash after it with SHA-256, head included: all a
    # superuser without the chain key can do. The unkeyed chain verified this as ok.
    def forge(entry: ChainEntry) -> ChainEntry:
        return replace(entry, entity_id="forged") if entry.seq == 2 else entry

    await _rewrite_chain(db_session, events, seal=forge)
    report = await audit.verify()

    assert report.ok is False
    assert report.broken is not None
    assert (report.broken.seq, report.broken.reason) == (
        1,
        "hash does not match the entry's content",
    )


async def test_entries_rewritten_as_unkeyed_are_refused_past_the_unkeyed_boundary(
    audit: AuditService, db_session: AsyncSession
) -> None:
    events = await _record_many(audit, 3)
    await _rewrite_chain(db_session, events, seal=lambda entry: replace(entry, key_id=None))

    refused = await audit.verify()
    # An operator who declares entries up to seq 3 as written before the chain was keyed
    # accepts them: the boundary lives in settings, out of the database's reach.
    accepting = AuditService(db_session, keys=replace(KEYS, unkeyed_until_seq=3))
    accepted = await accepting.verify()

    assert refused.broken is not None
    assert (refused.broken.seq, refused.broken.reason) == (
        1,
        "entry is unkeyed but lies past AUDIT__CHAIN_UNKEYED_UNTIL_SEQ",
    )
    assert accepted.model_dump() == {"ok": True, "checked": 3, "broken": None}


async def test_entries_of_a_previous_key_verify_after_a_rotation(db_session: AsyncSession) -> None:
    old = ChainKeys.from_settings(AuditSettings(chain_key=SecretStr("o" * 32), chain_key_id="k1"))
    await _record_many(AuditService(db_session, keys=old), 2)
    rotated_settings = AuditSettings(
        chain_key=SecretStr("n" * 32),
        chain_key_id="k2",
        chain_previous_keys={"k1": SecretStr("o" * 32)},
    )
    rotated = AuditService(db_session, keys=ChainKeys.from_settings(rotated_settings))
    events = await _record_many(rotated, 2)
    forgotten = ChainKeys.from_settings(
        AuditSettings(chain_key=SecretStr("n" * 32), chain_key_id="k2")
    )

    report = await rotated.verify()
    without_old_key = await AuditService(db_session, keys=forgotten).verify()

    assert [event.key_id for event in events] == ["k1", "k1", "k2", "k2"]
    assert report.model_dump() == {"ok": True, "checked": 4, "broken": None}
    assert without_old_key.broken is not None
    assert (without_old_key.broken.seq, without_old_key.broken.reason) == (
        1,
        "entry is signed with key 'k1', which is not configured",
    )


async def test_an_anchor_catches_a_chain_rebuilt_with_the_key(
    audit: AuditService, db_session: AsyncSession
) -> None:
    await _record_many(audit, 3)
    report, anchor = await audit.anchor()
    events = await events_by_seq(db_session)

    def resign(entry: ChainEntry) -> ChainEntry:
        return replace(entry, entity_id="forged") if entry.seq == 2 else entry

    # Someone holding the key can rewrite and re-sign everything consistently...
    await _rewrite_chain(
        db_session, events, seal=resign, digest_of=lambda entry: entry_hash(entry, keys=KEYS)
    )

    unanchored = await audit.verify()
    anchored = await audit.verify(anchors=[anchor])
    beyond = await audit.verify(anchors=[ChainAnchor(seq=9, hash=anchor.hash)])

    assert report.ok is True
    assert anchor == ChainAnchor(seq=3, hash=events[2].hash)
    # ...which only the anchor published elsewhere reveals.
    assert unanchored.ok is True
    assert anchored.broken is not None
    assert (anchored.broken.seq, anchored.broken.reason) == (
        3,
        "hash differs from the published anchor",
    )
    assert beyond.broken is not None
    assert (beyond.broken.seq, beyond.broken.reason) == (
        9,
        "the anchored entry is missing: the chain ends at seq 3",
    )
