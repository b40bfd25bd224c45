"""Work queued on a session's unit of work and written as its last statements before COMMIT.

A domain that must write something at the very end of a transaction (the audit chain
append, which locks a row every writer shares) queues items with `queue_before_commit`
and names the function that writes them. At the outermost commit of the session, whoever
commits it (the request's `SessionDep`, a mid-request commit, a CLI `session.begin()`
block), pending ORM changes are flushed first and then each queue is written, so a lock
taken there lives only for the last round trips before COMMIT.
"""

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

T = TypeVar("T")

WriteQueue = Callable[[Session, Sequence[Any]], None]
"""Writes a queue's items with the synchronous session, inside the commit."""

_QUEUES = "roombook.before_commit_queues"
_SAVEPOINT_MARKS = "roombook.before_commit_savepoint_marks"


def queue_before_commit(
    session: AsyncSession, *, write: Callable[[Session, Sequence[T]], None], item: T
) -> None:
    """Queue `item`; `write` receives the whole queue just before the session's next COMMIT.

    Items queued inside a savepoint that rolls back are dropped with it; a rollback or
    close of the whole transaction drops the queue.
    """
    if not session.in_transaction():
        # The queue belongs to a transaction: begin it now (no I/O) so that its end,
        # whatever way it ends, is what writes or drops the queue.
        session.sync_session.begin()
    queues: dict[WriteQueue, list[Any]] = session.info.setdefault(_QUEUES, {})
    queues.setdefault(write, []).append(item)


@event.listens_for(Session, "before_commit")
def _write_queues(session: Session) -> None:
    # A savepoint release is not the end of the unit of work: the queue waits for the real
    # COMMIT, so what its writer locks is not held for the rest of the transaction.
    if session.in_nested_transaction():
        return
    queues: dict[WriteQueue, list[Any]] | None = session.info.pop(_QUEUES, None)
    if not queues or not any(queues.values()):
        return
    # Pending ORM changes go out before the queues, so only the queued writes (and the
    # COMMIT) run after their locks are taken.
    session.flush()
    for write, items in queues.items():
        if items:
            write(session, items)


@event.listens_for(Session, "after_transaction_create")
def _mark_savepoint(session: Session, transaction: SessionTransaction) -> None:
    if transaction.nested:
        queues: dict[WriteQueue, list[Any]] = session.info.get(_QUEUES, {})
        marks = session.info.setdefault(_SAVEPOINT_MARKS, {})
        marks[transaction] = {write: len(items) for write, items in queues.items()}


@event.listens_for(Session, "after_soft_rollback")
def _drop_rolled_back(session: Session, previous_transaction: SessionTransaction) -> None:
    if not previous_transaction.nested:
        return
    marks: dict[WriteQueue, int] = session.info.get(_SAVEPOINT_MARKS, {}).pop(
        previous_transaction, {}
    )
    for write, items in session.info.get(_QUEUES, {}).items():
        del items[marks.get(write, 0) :]


@event.listens_for(Session, "after_transaction_end")
def _forget(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        session.info.pop(_QUEUES, None)
        session.info.pop(_SAVEPOINT_MARKS, None)
