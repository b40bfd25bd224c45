"""Every filter of the event list is an index scan on a realistically sized, analysed table.

200,000 synthetic rows (a realistic action mix, 2,000 actors, 200,000 entities over ~70
days) are inserted and analysed inside the test's transaction, then the exact statement
the repository runs is EXPLAINed. The same plans at 1M rows are in the README.
"""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.actions import AuditEntity
from app.audit.repository import AuditRepository
from app.audit.schemas import AuditFilter
from app.core.pagination import PageRequest
from tests.audit.synthetic import insert_synthetic
from tests.plans import Captured, plan_of

ROWS = 200_000
START = datetime(2026, 1, 1, tzinfo=UTC)
STEP_US = 30_000_000
MIDDLE = START + timedelta(microseconds=STEP_US * ROWS // 2)
ACTOR = uuid.UUID("00000000-0000-4000-8000-000000000007")


@pytest.fixture
async def analysed_rows(db_session: AsyncSession) -> None:
    """Synthetic rows, with planner statistics gathered for them."""
    await insert_synthetic(db_session, rows=ROWS, start=START, step_us=STEP_US)
    await db_session.execute(text("ANALYZE audit_events"))


async def _plan(
    session: AsyncSession, captured: Captured, filters: AuditFilter, page: PageRequest
) -> str:
    return await plan_of(
        session, captured, AuditRepository(session).list_page(filters=filters, page=page)
    )


CASES = [
    ("no filter", AuditFilter(), "Index Scan Backward using ix_audit_events_occurred_at"),
    ("actor_id", AuditFilter(actor_id=ACTOR), "Index Scan Backward using ix_audit_events_actor_id"),
    (
        "exact action",
        AuditFilter(action="user.role_changed"),
        "Index Scan Backward using ix_audit_events_action",
    ),
    # A rare prefix is a range on the action index (the column's "C" collation allows it).
    ("rare action prefix", AuditFilter(action="nothing."), "using ix_audit_events_action"),
    # A common prefix walks the time index newest first and stops after one page of matches.
    (
        "common action prefix",
        AuditFilter(action="booking."),
        "Index Scan Backward using ix_audit_events_occurred_at",
    ),
    (
        "entity_type",
        AuditFilter(entity_type=AuditEntity.ROOM),
        "Index Scan Backward using ix_audit_events_entity_type",
    ),
    (
        "entity_id",
        AuditFilter(entity_id="e123"),
        "Index Scan Backward using ix_audit_events_entity_id",
    ),
    (
        "entity_type and entity_id",
        AuditFilter(entity_type=AuditEntity.BOOKING, entity_id="e123"),
        "Index Scan Backward using ix_audit_events_entity_id",
    ),
    ("since", AuditFilter(since=MIDDLE), "Index Scan Backward using ix_audit_events_occurred_at"),
    ("until", AuditFilter(until=MIDDLE), "Index Scan Backward using ix_audit_events_occurred_at"),
    (
        "since and until",
        AuditFilter(since=MIDDLE, until=MIDDLE + timedelta(hours=1)),
        "Index Scan Backward using ix_audit_events_occurred_at",
    ),
]


@pytest.mark.usefixtures("analysed_rows")
async def test_every_filter_and_later_pages_are_index_scans(
    app: FastAPI, db_session: AsyncSession, captured: Captured
) -> None:
    page = PageRequest(limit=20, after=None, codec=app.state.cursor_codec)
    plans = {name: await _plan(db_session, captured, f, page) for name, f, _ in CASES}

    for name, _, expected in CASES:
        assert expected in plans[name], f"{name}:\n{plans[name]}"
        assert "Seq Scan" not in plans[name], f"{name}:\n{plans[name]}"
    assert "Index Cond: (((action)::text >= 'nothing.'::text)" in plans["rare action prefix"]

    later_page = PageRequest(limit=20, after=(MIDDLE, uuid.uuid4()), codec=app.state.cursor_codec)
    later = await _plan(db_session, captured, AuditFilter(actor_id=ACTOR), later_page)
    assert "Index Scan Backward using ix_audit_events_actor_id" in later
    assert "ROW(occurred_at, id) <" in later
