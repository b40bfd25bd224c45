"""Every audit query: appending under the chain head's lock, filtered reads, chain walks."""

import json
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from functools import lru_cache
from typing import Any, TypeVarTuple

from sqlalchemy import BindParameter, ColumnElement, Row, Select, bindparam, func, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from app.audit.models import GENESIS_HASH, HEAD_ID, AuditChainHead, AuditEvent
from app.audit.schemas import AuditEventRead, AuditFilter
from app.core.db import LIKE_ESCAPE, prefix_pattern
from app.core.pagination import (
    PageRequest,
    SortValue,
    fetch_prebuilt_page,
    filters_given,
    keyset_statement,
)

EXPORT_BATCH_ROWS = 1000
Columns = TypeVarTuple("Columns")

# Chain statements run on every audited commit, so they use Core tables (no ORM bookkeeping).
_events = AuditEvent.metadata.tables[AuditEvent.__tablename__]
_head = AuditChainHead.metadata.tables[AuditChainHead.__tablename__]
READ_HEAD = select(_head.c.last_seq, _head.c.last_hash).where(_head.c.id == HEAD_ID)
LOCK_HEAD = READ_HEAD.with_for_update()
CREATE_HEAD = (
    pg_insert(_head).values(id=HEAD_ID, last_seq=0, last_hash=GENESIS_HASH).on_conflict_do_nothing()
)

# All of a commit's entries in one statement whatever their number: one array per column,
# unnested in lockstep. Always the same text, so asyncpg prepares it once per connection.
APPEND = text("""
WITH appended AS (
    INSERT INTO audit_events (
        id, seq, occurred_at, action, actor_id, actor_role, request_id, client_ip,
        user_agent, entity_type, entity_id, changes, prev_hash, hash, key_id
    )
    SELECT * FROM unnest(
        CAST(:id AS uuid[]), CAST(:seq AS bigint[]), CAST(:occurred_at AS timestamptz[]),
        CAST(:action AS text[]), CAST(:actor_id AS uuid[]), CAST(:actor_role AS text[]),
        CAST(:request_id AS text[]), CAST(:client_ip AS text[]), CAST(:user_agent AS text[]),
        CAST(:entity_type AS text[]), CAST(:entity_id AS text[]),
        CAST(CAST(:changes AS text[]) AS jsonb[]), CAST(:prev_hash AS text[]),
        CAST(:hash AS text[]), CAST(:key_id AS text[])
    )
)
UPDATE audit_chain_head SET last_seq = :head_seq, last_hash = :head_hash WHERE id = 1
""")
_ARRAY_COLUMNS = tuple(column.name for column in _events.c)


# One statement, so the head and the rows are read in the same snapshot: a row committed by
# a writer always commits with the head advanced to it, so a row past the head was forged.
BEYOND_HEAD = (
    select(_events.c.id, _events.c.seq)
    .where(
        _events.c.seq
        > func.coalesce(select(_head.c.last_seq).where(_head.c.id == HEAD_ID).scalar_subquery(), 0)
    )
    .order_by(_events.c.seq)
    .limit(1)
)
# The export's columns are the API's fields, in the API's order: a column added to the table
# for internal use never leaks into exports.
EXPORT_COLUMNS = tuple(_events.c[name] for name in AuditEventRead.model_fields)


EVENT_FILTERS: dict[str, Callable[[BindParameter[Any]], ColumnElement[bool]]] = {
    "actor_id": lambda value: AuditEvent.actor_id == value,
    "action": lambda value: AuditEvent.action == value,
    "entity_type": lambda value: AuditEvent.entity_type == value,
    "entity_id": lambda value: AuditEvent.entity_id == value,
    "since": lambda value: AuditEvent.occurred_at >= value,
    "until": lambda value: AuditEvent.occurred_at < value,
}
"""Each filter of the audit list, as the condition on its bound parameter."""


def _matching(
    statement: Select[*Columns], *, filtered_by: frozenset[str], action_prefix: bool
) -> Select[*Columns]:
    """`statement` over the entries matching the given filters, each a bound parameter.

    An action ending in `.` is a prefix (`booking.` is every booking action).
    """
    for name in sorted(filtered_by):
        # A bound parameter takes the type of the column it is compared with.
        value: BindParameter[Any] = bindparam(name)
        condition = (
            AuditEvent.action.like(value, escape=LIKE_ESCAPE)
            if name == "action" and action_prefix
            else EVENT_FILTERS[name](value)
        )
        statement = statement.where(condition)
    return statement


def _event_parameters(filters: AuditFilter) -> tuple[dict[str, Any], bool]:
    """The filters' parameters for `_matching`, and whether the action is a prefix."""
    action = filters.action
    action_prefix = action is not None and action.endswith(".")
    parameters = {
        "actor_id": filters.actor_id,
        "action": prefix_pattern(action) if action and action_prefix else action,
        "entity_type": filters.entity_type,
        "entity_id": filters.entity_id,
        "since": filters.since,
        "until": filters.until,
    }
    return parameters, action_prefix


@lru_cache(maxsize=128)
def events_page_statement(
    *, filtered_by: frozenset[str], action_prefix: bool, after: bool
) -> Select[Any]:
    """A page of entries as plain rows, newest first, for one combination of filters.

    Built once per combination, as the export's statement is.
    """
    statement = _matching(select(*_events.c), filtered_by=filtered_by, action_prefix=action_prefix)
    return keyset_statement(
        statement, sort_column=AuditEvent.occurred_at, id_column=AuditEvent.id, after=after
    )


@lru_cache(maxsize=128)
def export_statement(*, filtered_by: frozenset[str], action_prefix: bool) -> Select[Any]:
    """Every matching entry's exported columns, newest first, for one combination of filters."""
    statement = _matching(
        select(*EXPORT_COLUMNS), filtered_by=filtered_by, action_prefix=action_prefix
    )
    return statement.order_by(AuditEvent.occurred_at.desc(), AuditEvent.id.desc())


class ChainWriter:
    """The chain append, run with the synchronous session inside the commit."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def lock_head(self) -> tuple[int, str]:
        """Lock the chain head until the transaction ends; return its last seq and hash.

        The row lock is what orders concurrent appends: the next writer waits here until
        this transaction commits or rolls back, then reads the head it left behind.
        """
        row = self.session.execute(LOCK_HEAD).one_or_none()
        if row is None:
            # An emptied database (tests truncate every table) gets its genesis head back.
            self.session.execute(CREATE_HEAD)
            row = self.session.execute(LOCK_HEAD).one()
        return row.last_seq, row.last_hash

    def append(self, *, rows: Sequence[dict[str, Any]]) -> None:
        """Insert the entries (in seq order) and advance the head to the last, in one round trip."""
        parameters: dict[str, Any] = {name: [row[name] for row in rows] for name in _ARRAY_COLUMNS}
        parameters["changes"] = [json.dumps(row["changes"]) for row in rows]
        parameters |= {"head_seq": rows[-1]["seq"], "head_hash": rows[-1]["hash"]}
        self.session.execute(APPEND, parameters)


class AuditRepository:
    """Reads and appends audit rows in the caller's session."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def head(self) -> tuple[int, str]:
        """Read the head without locking it (genesis when there is none)."""
        row = (await self.session.execute(READ_HEAD)).one_or_none()
        return (0, GENESIS_HASH) if row is None else (row.last_seq, row.last_hash)

    async def chain_batch(
        self, *, after_seq: int, up_to_seq: int, limit: int
    ) -> Sequence[Row[Any]]:
        """The next entries of the chain in seq order (a keyset walk, one short query each).

        Plain rows, not ORM objects: the identity map must never hand back a stale copy
        of a row that was changed behind the application's back.
        """
        statement = (
            select(_events)
            .where(_events.c.seq > after_seq, _events.c.seq <= up_to_seq)
            .order_by(_events.c.seq)
            .limit(limit)
        )
        return (await self.session.execute(statement)).all()

    async def first_beyond_head(self) -> tuple[uuid.UUID, int] | None:
        """`(id, seq)` of the first entry past the chain head; a sound chain has none."""
        row = (await self.session.execute(BEYOND_HEAD)).one_or_none()
        return None if row is None else (row.id, row.seq)

    async def get(self, *, event_id: uuid.UUID) -> AuditEvent | None:
        """Load one entry by id."""
        return await self.session.get(AuditEvent, event_id)

    async def list_page(
        self, *, filters: AuditFilter, page: PageRequest
    ) -> tuple[Sequence[Row[Any]], tuple[SortValue, uuid.UUID] | None]:
        """One page of matching entries as plain rows, newest first.

        Rows, not ORM objects: a page is only shown, so the identity map would only add work.
        """
        parameters, action_prefix = _event_parameters(filters)
        statement = events_page_statement(
            filtered_by=filters_given(parameters),
            action_prefix=action_prefix,
            after=page.after is not None,
        )
        return await fetch_prebuilt_page(
            self.session,
            statement=statement,
            parameters=parameters,
            sort_key="occurred_at",
            id_key="id",
            page=page,
        )

    async def stream(self, *, filters: AuditFilter) -> AsyncIterator[Sequence[Row[Any]]]:
        """Yield matching entries newest first, a batch at a time, through a server-side cursor.

        `yield_per` fetches one batch at a time and plain rows bypass the identity map,
        so memory stays flat however many rows match.
        """
        parameters, action_prefix = _event_parameters(filters)
        statement = export_statement(
            filtered_by=filters_given(parameters), action_prefix=action_prefix
        )
        result = await self.session.stream(
            statement.execution_options(yield_per=EXPORT_BATCH_ROWS), parameters
        )
        async for batch in result.partitions():
            yield batch
