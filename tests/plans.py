"""EXPLAIN the exact statements a repository sends, for the index tests of every domain."""

from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

Captured = list[tuple[str, Any]]
"""SQL statements and their parameters, in the order the engine sent them."""


@contextmanager
def capturing(engine: AsyncEngine) -> Iterator[Captured]:
    """Collect every statement the engine sends while the block runs."""
    statements: Captured = []

    def capture(_conn: Connection, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        statements.append((statement, parameters))

    event.listen(engine.sync_engine, "before_cursor_execute", capture)
    try:
        yield statements
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", capture)


async def plan_of(
    session: AsyncSession, captured: Captured, query: Coroutine[Any, Any, Any]
) -> str:
    """The plan of the last statement `query` sends (it runs only when awaited here)."""
    captured.clear()
    await query
    statement, parameters = captured[-1]
    connection = await session.connection()
    result = await connection.exec_driver_sql(f"EXPLAIN {statement}", parameters)
    return "\n".join(row[0] for row in result)
