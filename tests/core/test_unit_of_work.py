"""Work queued on a unit of work: written last before COMMIT, dropped with what rolls back."""

from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from app.core.config import DatabaseSettings
from app.core.db import async_url, create_engine
from app.core.unit_of_work import queue_before_commit

WRITE = text("INSERT INTO uow_written (item) VALUES (:item)")


class _Base(DeclarativeBase):
    """This module's own models."""


class Thing(_Base):
    """A row the ORM inserts in the same unit of work as the queued items."""

    __tablename__ = "uow_thing"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    """Identifier."""


def write_items(session: Session, items: Sequence[str]) -> None:
    """The queue's writer: one INSERT per item."""
    for item in items:
        session.execute(WRITE, {"item": item})


@pytest.fixture(scope="module")
async def engine(scratch_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on the scratch database with this module's tables."""
    engine = create_engine(DatabaseSettings(), url=async_url(scratch_url))
    async with engine.begin() as connection:
        await connection.execute(text("CREATE TABLE uow_written (item text NOT NULL)"))
        await connection.run_sync(_Base.metadata.create_all)
    yield engine
    await engine.dispose()


@pytest.fixture
async def factory(engine: AsyncEngine) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions on the scratch database; the tables are emptied afterwards."""
    yield async_sessionmaker(engine, expire_on_commit=False)
    async with engine.begin() as connection:
        await connection.execute(text("TRUNCATE uow_written, uow_thing"))


@pytest.fixture
def statements(engine: AsyncEngine) -> Iterator[list[str]]:
    """Every SQL statement sent, in order."""
    seen: list[str] = []

    def capture(_c: Connection, _cur: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", capture)
    yield seen
    event.remove(engine.sync_engine, "before_cursor_execute", capture)


async def written(factory: async_sessionmaker[AsyncSession]) -> list[str]:
    """What the queue's writer has committed, in order."""
    async with factory() as session:
        return list((await session.scalars(text("SELECT item FROM uow_written"))).all())


async def test_queued_items_are_written_last_before_commit(
    factory: async_sessionmaker[AsyncSession], statements: list[str]
) -> None:
    async with factory() as session:
        queue_before_commit(session, write=write_items, item="a")
        session.add(Thing(id=1))
        queue_before_commit(session, write=write_items, item="b")
        assert await written(factory) == []

        statements.clear()
        await session.commit()
        sent = [statement.split(" (")[0] for statement in statements]

    assert await written(factory) == ["a", "b"]
    # The pending ORM insert goes out first; the queued writes are the last statements.
    assert sent == ["INSERT INTO uow_thing", "INSERT INTO uow_written", "INSERT INTO uow_written"]


async def test_each_commit_of_a_session_writes_what_was_queued_since_the_last(
    factory: async_sessionmaker[AsyncSession],
) -> None:
    async with factory() as session:
        queue_before_commit(session, write=write_items, item="before the mid-request commit")
        await session.commit()
        queue_before_commit(session, write=write_items, item="after it")
        await session.commit()
        await session.commit()

    assert await written(factory) == ["before the mid-request commit", "after it"]


async def test_a_begin_block_writes_its_queue_when_it_commits(
    factory: async_sessionmaker[AsyncSession],
) -> None:
    async with factory() as session, session.begin():
        queue_before_commit(session, write=write_items, item="cli")

    assert await written(factory) == ["cli"]


async def test_a_rollback_drops_the_queue(factory: async_sessionmaker[AsyncSession]) -> None:
    async with factory() as session:
        queue_before_commit(session, write=write_items, item="rolled back")
        await session.rollback()
        await session.commit()
        queue_before_commit(session, write=write_items, item="closed without commit")
    async with factory() as session:
        await session.commit()

    assert await written(factory) == []


async def test_a_savepoint_release_waits_and_its_rollback_drops_only_its_items(
    factory: async_sessionmaker[AsyncSession],
) -> None:
    class Failed(Exception):
        """The work inside the savepoint fails."""

    async def fail_in_savepoint(session: AsyncSession) -> None:
        async with session.begin_nested():
            queue_before_commit(session, write=write_items, item="rolled-back savepoint")
            raise Failed

    async with factory() as session:
        queue_before_commit(session, write=write_items, item="outer")
        async with session.begin_nested():
            queue_before_commit(session, write=write_items, item="released savepoint")
        assert await written(factory) == []
        with pytest.raises(Failed):
            await fail_in_savepoint(session)
        await session.commit()

    assert await written(factory) == ["outer", "released savepoint"]
