"""Chain verification: a clean chain verifies, and each kind of tampering is named."""

import uuid
from dataclasses import asdict, replace
from datetime import UTC, datetime

import pytest
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit import service as audit_service
from app.audit.actions import AuditAction, AuditEntity
from app.audit.chain import HASHED_FIELDS, ChainEntry, entry_hash
from app.audit.models import AuditEvent
from app.audit.service import AuditService
from tests.audit.conftest import events_by_seq


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
    )
    await session.execute(insert(AuditEvent).values(**asdict(entry), hash=entry_hash(entry)))
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
        f"UPDATE audit_events SET entity_id = 'forged', hash = '{entry_hash(forged)}' "
        f"WHERE id = '{last.id}'",
    )

    report = await audit.verify()

    assert report.checked == 2
    assert report.broken is not None
    assert (report.broken.id, report.broken.seq) == (last.id, 3)
    assert report.broken.reason == "the chain head records a different hash for this entry"
