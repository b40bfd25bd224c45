"""Concurrent writers really committing: nothing lost, one well-ordered chain."""

import asyncio
import uuid
from collections import Counter
from datetime import UTC, datetime

from fastapi import FastAPI
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.audit.actions import AuditAction, AuditEntity
from app.audit.chain import PendingEntry
from app.audit.models import GENESIS_HASH, AuditEvent
from app.audit.service import AuditService, ChainAppender
from tests.audit.conftest import KEYS
from tests.conftest import truncate_all

WRITERS = 4
CHANGES_PER_WRITER = 250
WAITERS = text("SELECT count(*) FROM pg_stat_activity WHERE :pid = ANY(pg_blocking_pids(pid))")


async def _writer(factory: async_sessionmaker[AsyncSession], number: int) -> None:
    for change in range(CHANGES_PER_WRITER):
        async with factory() as session, session.begin():
            await AuditService(session, keys=KEYS).record(
                action=AuditAction.BOOKING_UPDATED,
                entity_type=AuditEntity.BOOKING,
                entity_id=f"w{number}-{change}",
                before={"writer": number, "change": change - 1},
                after={"writer": number, "change": change},
            )


async def test_four_writers_committing_250_changes_each_lose_nothing(app: FastAPI) -> None:
    factory = async_sessionmaker(app.state.engine, expire_on_commit=False)
    try:
        async with factory() as session:
            before = await AuditService(session, keys=KEYS).verify()

        await asyncio.gather(*(_writer(factory, number) for number in range(WRITERS)))

        async with factory() as session:
            report = await AuditService(session, keys=KEYS).verify()
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


async def _blocked_by(factory: async_sessionmaker[AsyncSession], pid: int) -> None:
    """Return once some backend waits for a lock held by `pid` (polled, bounded)."""
    for _ in range(1000):
        # A new transaction each time: pg_stat_activity is a snapshot per transaction.
        async with factory() as session:
            waiting = await session.scalar(WAITERS, {"pid": pid})
        if waiting:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the second writer never waited for the first")


async def _record_once(factory: async_sessionmaker[AsyncSession], entity_id: str) -> None:
    async with factory() as session, session.begin():
        await AuditService(session, keys=KEYS).record(
            action=AuditAction.BOOKING_CREATED, entity_type=AuditEntity.BOOKING, entity_id=entity_id
        )


def _pending(entity_id: str) -> PendingEntry:
    return PendingEntry(
        id=uuid.uuid4(),
        occurred_at=datetime.now(UTC),
        action=AuditAction.BOOKING_CREATED.value,
        actor_id=None,
        actor_role="system",
        request_id=None,
        client_ip=None,
        user_agent=None,
        entity_type=AuditEntity.BOOKING.value,
        entity_id=entity_id,
        changes={},
    )


async def _chain(factory: async_sessionmaker[AsyncSession]) -> list[tuple[int, str | None]]:
    async with factory() as session:
        rows = await session.execute(
            select(AuditEvent.seq, AuditEvent.entity_id).order_by(AuditEvent.seq)
        )
        return [(seq, entity_id) for seq, entity_id in rows]


async def test_a_transaction_held_open_after_record_does_not_stall_other_writers(
    app: FastAPI,
) -> None:
    factory = async_sessionmaker(app.state.engine, expire_on_commit=False)
    try:
        await truncate_all(app.state.engine)
        async with factory() as first, first.begin():
            await AuditService(first, keys=KEYS).record(
                action=AuditAction.BOOKING_CREATED,
                entity_type=AuditEntity.BOOKING,
                entity_id="first",
            )
            # The first transaction stays open here, as during a password hash after
            # record(), until the second writer has either committed or been seen waiting.
            pid = await first.scalar(text("SELECT pg_backend_pid()"))
            second = asyncio.create_task(_record_once(factory, "second"))
            blocked = asyncio.create_task(_blocked_by(factory, int(pid or 0)))
            await asyncio.wait({second, blocked}, return_when=asyncio.FIRST_COMPLETED)
            second_committed_first = second.done()
            blocked.cancel()
        await second
        chain = await _chain(factory)
        async with factory() as session:
            report = await AuditService(session, keys=KEYS).verify()
    finally:
        await truncate_all(app.state.engine)

    assert second_committed_first, "the second writer waited for the first's open transaction"
    # seq order is commit order: the writer that committed first comes first.
    assert chain == [(1, "second"), (2, "first")]
    assert report.model_dump() == {"ok": True, "checked": 2, "broken": None}


async def test_first_writers_racing_on_a_missing_head_build_one_chain(app: FastAPI) -> None:
    factory = async_sessionmaker(app.state.engine, expire_on_commit=False)
    try:
        await truncate_all(app.state.engine)  # no events and no head row, as after a wipe
        async with factory() as first, first.begin():
            # The first writer's append creates the head and holds it; the second cannot
            # see the uncommitted head, tries to create it too and must wait, then append
            # after it.
            await first.run_sync(ChainAppender(KEYS), [_pending("first")])
            pid = await first.scalar(text("SELECT pg_backend_pid()"))
            second = asyncio.create_task(_record_once(factory, "second"))
            await _blocked_by(factory, int(pid or 0))
        await second

        async with factory() as session:
            report = await AuditService(session, keys=KEYS).verify()
            rows = (
                await session.execute(
                    select(AuditEvent.seq, AuditEvent.entity_id, AuditEvent.prev_hash).order_by(
                        AuditEvent.seq
                    )
                )
            ).all()
    finally:
        await truncate_all(app.state.engine)

    assert report.model_dump() == {"ok": True, "checked": 2, "broken": None}
    assert [(seq, entity_id) for seq, entity_id, _ in rows] == [(1, "first"), (2, "second")]
    assert rows[0].prev_hash == GENESIS_HASH
