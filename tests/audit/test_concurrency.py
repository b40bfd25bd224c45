"""Concurrent writers really committing: nothing lost, one well-ordered chain."""

import asyncio
from collections import Counter

from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.audit.actions import AuditAction
from app.audit.models import AuditEvent
from app.audit.service import AuditService
from tests.conftest import truncate_all

WRITERS = 4
CHANGES_PER_WRITER = 250


async def _writer(factory: async_sessionmaker[AsyncSession], number: int) -> None:
    for change in range(CHANGES_PER_WRITER):
        async with factory() as session, session.begin():
            await AuditService(session).record(
                action=AuditAction.BOOKING_UPDATED,
                entity_type="booking",
                entity_id=f"w{number}-{change}",
                before={"writer": number, "change": change - 1},
                after={"writer": number, "change": change},
            )


async def test_four_writers_committing_250_changes_each_lose_nothing(app: FastAPI) -> None:
    factory = async_sessionmaker(app.state.engine, expire_on_commit=False)
    try:
        async with factory() as session:
            before = await AuditService(session).verify()

        await asyncio.gather(*(_writer(factory, number) for number in range(WRITERS)))

        async with factory() as session:
            report = await AuditService(session).verify()
            rows = (await session.execute(select(AuditEvent.seq, AuditEvent.entity_id))).all()
    finally:
        await truncate_all(app.state.engine)

    assert before.ok is True
    assert report.model_dump() == {
        "ok": True,
        "checked": before.checked + WRITERS * CHANGES_PER_WRITER,
        "broken": None,
    }
    assert sorted(seq for seq, _ in rows) == list(range(1, len(rows) + 1))
    per_writer = Counter(entity_id.split("-")[0] for _, entity_id in rows if entity_id)
    assert per_writer == {f"w{n}": CHANGES_PER_WRITER for n in range(WRITERS)}
