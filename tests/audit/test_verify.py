"""Chain verification: a clean chain verifies, and each kind of tampering is named."""

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit import service as audit_service
from app.audit.actions import AuditAction
from app.audit.models import AuditEvent
from app.audit.service import AuditService
from tests.audit.conftest import events_by_seq


async def _record_many(audit: AuditService, count: int) -> list[AuditEvent]:
    for number in range(count):
        await audit.record(
            action=AuditAction.BOOKING_CREATED,
            entity_type="booking",
            entity_id=f"b{number}",
            after={"number": number},
        )
    return await events_by_seq(audit.repository.session)


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


async def test_a_rewritten_row_with_a_recomputed_hash_breaks_the_next_link(
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
