"""Reads before a transaction's first write run without `BEGIN`; a read-only request sends no
`BEGIN`/`COMMIT` pair at all.

The asyncpg driver opens a transaction with a `BEGIN` round trip before a connection's first
statement, and the unit of work ends it with a `COMMIT` round trip, so a request that only
reads (the guard's query and the route's own) paid three round trips for one `SELECT`.

Here a plain `SELECT` sent while no transaction is open runs on its own (PostgreSQL's
implicit one-statement transaction), and the first statement that is not one opens the
transaction as before; `COMMIT` and `ROLLBACK` then have nothing to end unless something
was written. Under READ COMMITTED, Roombook's isolation level, every statement takes a
fresh snapshot whether or not it runs inside a transaction, so such a read sees exactly
what it would have seen inside one, and the writes that follow are as atomic as before.

A plain read is a `select()` construct (ORM or Core) without `FOR UPDATE`/`FOR SHARE`,
fetched at once. Everything else opens the transaction first: row locks live until
`COMMIT`, a server-side cursor only exists inside a transaction, and a textual statement
(`text("SELECT pg_advisory_xact_lock(…)")`, `SET LOCAL`) may depend on one.
A `select()` of a function that locks or writes must be sent as `text()` for that reason.
"""

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, ExecutionContext
from sqlalchemy.sql import Select

AUTOCOMMIT = "autocommit"
_SAVED_LEVEL = "_roombook_saved_isolation_level"


def is_plain_read(context: ExecutionContext) -> bool:
    """Whether a statement only reads and needs no transaction around it."""
    compiled = context.compiled
    if compiled is None or context.execution_options.get("stream_results"):
        return False
    statement = compiled.statement
    return isinstance(statement, Select) and statement._for_update_arg is None


def _before(
    conn: Connection,
    _cursor: Any,
    _statement: str,
    _parameters: Any,
    context: ExecutionContext,
    _executemany: bool,
) -> None:
    # The asyncpg adapter: its `_transaction` and `isolation_level` are not typed API.
    driver: Any = conn.connection.dbapi_connection
    # The asyncpg adapter opens its transaction lazily before a statement unless its level
    # is autocommit; for this one statement it is, when nothing is open yet.
    if getattr(driver, "_transaction", True) is None and is_plain_read(context):
        setattr(context, _SAVED_LEVEL, driver.isolation_level)
        driver.isolation_level = AUTOCOMMIT


def _restore(conn: Connection, context: ExecutionContext | None) -> None:
    saved = getattr(context, _SAVED_LEVEL, AUTOCOMMIT)
    driver: Any = conn.connection.dbapi_connection
    if saved != AUTOCOMMIT and driver is not None:
        driver.isolation_level = saved


def _after(conn: Connection, *event_args: Any) -> None:
    # The arguments after the connection: cursor, statement, parameters, context, executemany.
    _restore(conn, event_args[3])


def _on_error(exception_context: Any) -> None:
    if exception_context.connection is not None:
        _restore(exception_context.connection, exception_context.execution_context)


def defer_begin(engine: Engine) -> None:
    """Let `engine` send plain reads outside a transaction until the first other statement."""
    event.listen(engine, "before_cursor_execute", _before)
    event.listen(engine, "after_cursor_execute", _after)
    event.listen(engine, "handle_error", _on_error)
