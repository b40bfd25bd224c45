"""The pool serves waiting requests in arrival order; nothing is lost when a wait ends."""

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool
from sqlalchemy.util.concurrency import greenlet_spawn
from sqlalchemy.util.queue import Empty

from app.core.config import DatabaseSettings
from app.core.db import async_url, create_engine
from app.core.pool import FifoAsyncQueuePool, FifoQueue


async def settle() -> None:
    """Let every ready task run until it blocks."""
    for _ in range(20):
        await asyncio.sleep(0)


@pytest.fixture
async def one_connection(scratch_url: str) -> AsyncIterator[AsyncEngine]:
    """The app's engine with a single pooled connection and no overflow."""
    engine = create_engine(
        DatabaseSettings(pool_size=1, max_overflow=0, pool_timeout_s=2), url=scratch_url
    )
    yield engine
    await engine.dispose()


def test_the_app_engine_uses_the_fifo_pool(scratch_url: str) -> None:
    engine = create_engine(DatabaseSettings(), url=scratch_url)
    assert isinstance(engine.pool, FifoAsyncQueuePool)


async def take_turn(engine: AsyncEngine, name: str, order: list[str]) -> None:
    """Check a connection out, note the turn, use it and give it back."""
    async with engine.connect() as connection:
        order.append(name)
        await connection.execute(text("SELECT 1"))


async def served_order(engine: AsyncEngine) -> list[str]:
    """Two requests wait for the only connection; a third arrives just before it comes back."""
    order: list[str] = []
    holder = await engine.connect()
    await holder.exec_driver_sql("SELECT 1")
    await holder.commit()
    waiting = [asyncio.create_task(take_turn(engine, f"waiter {n}", order)) for n in (1, 2)]
    await settle()
    assert order == []
    # The newcomer is ready to run before the returned connection wakes the first waiter.
    newcomer = asyncio.create_task(take_turn(engine, "newcomer", order))
    await holder.close()
    await asyncio.gather(*waiting, newcomer)
    return order


async def test_a_returned_connection_goes_to_the_longest_waiter(
    one_connection: AsyncEngine,
) -> None:
    assert await served_order(one_connection) == ["waiter 1", "waiter 2", "newcomer"]


async def test_without_the_fifo_queue_the_newcomer_jumps_the_line(scratch_url: str) -> None:
    """The failure the FIFO queue exists for, shown on SQLAlchemy's own pool."""
    engine = create_async_engine(async_url(scratch_url), pool_size=1, max_overflow=0)
    assert type(engine.pool) is AsyncAdaptedQueuePool
    try:
        assert (await served_order(engine))[0] == "newcomer"
    finally:
        await engine.dispose()


async def test_a_timed_out_waiter_leaves_the_line(one_connection: AsyncEngine) -> None:
    holder = await one_connection.connect()
    await holder.exec_driver_sql("SELECT 1")
    pool = one_connection.sync_engine.pool
    assert isinstance(pool, FifoAsyncQueuePool)
    pool._timeout = 0.05
    with pytest.raises(PoolTimeoutError):
        await one_connection.connect()
    await holder.close()
    # The connection went back on the shelf, not to the waiter that gave up.
    order: list[str] = []
    await take_turn(one_connection, "after", order)
    assert order == ["after"]


async def test_an_item_handed_to_a_cancelled_waiter_is_passed_on() -> None:
    queue: FifoQueue[str] = FifoQueue(maxsize=2)
    first = asyncio.create_task(greenlet_spawn(queue.get, True, 5.0))
    second = asyncio.create_task(greenlet_spawn(queue.get, True, 5.0))
    await settle()
    # Handed to the first waiter, which is cancelled before it could resume.
    queue.put_nowait("connection")
    first.cancel()
    await settle()
    assert first.cancelled()
    assert await second == "connection"


async def test_a_lone_item_waits_on_the_shelf_and_non_blocking_gets_never_wait() -> None:
    queue: FifoQueue[str] = FifoQueue(maxsize=1)
    with pytest.raises(Empty):
        await greenlet_spawn(queue.get, False)
    queue.put_nowait("connection")
    assert not queue.empty()
    assert await greenlet_spawn(queue.get, True, 1.0) == "connection"
    with pytest.raises(Empty):
        await greenlet_spawn(queue.get, True, 0.01)
