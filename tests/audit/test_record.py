"""Recording: context capture, chaining, atomicity with the change, append-only table."""

import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.actions import AuditAction, AuditEntity
from app.audit.chain import HASHED_FIELDS, ChainEntry, entry_hash
from app.audit.changes import REDACTED
from app.audit.models import GENESIS_HASH, AuditChainHead
from app.audit.service import AuditService
from app.core.context import RequestContext, bind_actor, start_context
from tests.audit.conftest import KEYS, count_events, events_by_seq

FIXED_NOW = datetime(2026, 11, 24, 9, 30, 0, 123456, tzinfo=UTC)


async def test_record_captures_actor_and_request_from_context(db_session: AsyncSession) -> None:
    actor = uuid.uuid4()
    start_context(RequestContext(request_id="req-42", client_ip="203.0.113.7", user_agent="curl/8"))
    bind_actor(actor_id=actor, actor_role="admin")
    audit = AuditService(db_session, keys=KEYS, clock=lambda: FIXED_NOW)
    entity = uuid.uuid4()

    await audit.record(
        action=AuditAction.USER_ROLE_CHANGED,
        entity_type=AuditEntity.USER,
        entity_id=entity,
        before={"role": "member", "email": "a@example.com", "password_hash": "h1"},
        after={"role": "admin", "email": "a@example.com", "password_hash": "h1"},
    )
    await db_session.commit()

    (event,) = await events_by_seq(db_session)
    assert event.action == "user.role_changed"
    assert event.actor_id == actor
    assert event.actor_role == "admin"
    assert event.request_id == "req-42"
    assert event.client_ip == "203.0.113.7"
    assert event.user_agent == "curl/8"
    assert event.entity_type == "user"
    assert event.entity_id == str(entity)
    assert event.occurred_at == FIXED_NOW
    assert event.changes == {"before": {"role": "member"}, "after": {"role": "admin"}}
    assert event.seq == 1
    assert event.prev_hash == GENESIS_HASH
    entry = ChainEntry(**{name: getattr(event, name) for name in HASHED_FIELDS})
    assert event.hash == entry_hash(entry, keys=KEYS)


async def test_work_outside_a_request_is_recorded_as_system(
    audit: AuditService, db_session: AsyncSession
) -> None:
    await audit.record(
        action=AuditAction.AUTH_ADMIN_BOOTSTRAPPED, entity_type=AuditEntity.USER, entity_id=None
    )
    await db_session.commit()

    (event,) = await events_by_seq(db_session)
    assert (event.actor_id, event.actor_role, event.request_id) == (None, "system", None)
    assert (event.client_ip, event.user_agent, event.entity_id) == (None, None, None)
    assert event.changes == {}


async def test_unauthenticated_requests_are_recorded_as_anonymous(
    audit: AuditService, db_session: AsyncSession
) -> None:
    start_context(RequestContext(request_id="r1", client_ip="198.51.100.1"))

    await audit.record(
        action=AuditAction.AUTH_LOGIN_FAILED,
        entity_type=AuditEntity.USER,
        entity_id="someone@example.com",
        after={"email": "someone@example.com", "password": "wrong guess"},
    )
    await db_session.commit()

    (event,) = await events_by_seq(db_session)
    assert (event.actor_id, event.actor_role) == (None, "anonymous")
    assert event.changes == {"after": {"email": "someone@example.com", "password": REDACTED}}


async def test_oversized_context_values_are_clipped(
    audit: AuditService, db_session: AsyncSession
) -> None:
    start_context(RequestContext(request_id="r" * 200, client_ip="x" * 300, user_agent="u" * 400))

    await audit.record(action=AuditAction.ROOM_CREATED, entity_type=AuditEntity.ROOM, entity_id="1")
    await db_session.commit()

    (event,) = await events_by_seq(db_session)
    assert (
        len(event.request_id or ""),
        len(event.client_ip or ""),
        len(event.user_agent or ""),
    ) == (
        128,
        64,
        256,
    )


async def test_actions_outside_the_vocabulary_are_refused(
    audit: AuditService, db_session: AsyncSession
) -> None:
    with pytest.raises(ValueError, match="not a valid AuditAction"):
        await audit.record(action="user.teleported", entity_type=AuditEntity.USER, entity_id="1")  # type: ignore[arg-type]
    await db_session.commit()

    assert await count_events(db_session) == 0


async def test_entity_types_outside_the_vocabulary_are_refused(
    audit: AuditService, db_session: AsyncSession
) -> None:
    with pytest.raises(ValueError, match="not a valid AuditEntity"):
        await audit.record(action=AuditAction.ROOM_CREATED, entity_type="widget", entity_id="1")  # type: ignore[arg-type]
    await db_session.commit()

    assert await count_events(db_session) == 0


async def test_entries_are_chained_in_append_order(
    audit: AuditService, db_session: AsyncSession
) -> None:
    for action in (
        AuditAction.ROOM_CREATED,
        AuditAction.ROOM_UPDATED,
        AuditAction.ROOM_DEACTIVATED,
    ):
        await audit.record(action=action, entity_type=AuditEntity.ROOM, entity_id="r1")
    await db_session.commit()

    events = await events_by_seq(db_session)
    head = await db_session.get(AuditChainHead, 1, populate_existing=True)
    assert [e.seq for e in events] == [1, 2, 3]
    assert [e.action for e in events] == ["room.created", "room.updated", "room.deactivated"]
    assert events[0].prev_hash == GENESIS_HASH
    assert events[1].prev_hash == events[0].hash
    assert events[2].prev_hash == events[1].hash
    assert head is not None
    assert (head.last_seq, head.last_hash) == (3, events[2].hash)


async def test_a_missing_chain_head_is_recreated(
    audit: AuditService, db_session: AsyncSession
) -> None:
    await db_session.execute(text("SET LOCAL session_replication_role = replica"))
    await db_session.execute(text("DELETE FROM audit_chain_head"))
    await db_session.execute(text("SET LOCAL session_replication_role = origin"))

    await audit.record(
        action=AuditAction.ROOM_CREATED, entity_type=AuditEntity.ROOM, entity_id="r1"
    )
    await db_session.commit()

    (event,) = await events_by_seq(db_session)
    assert (event.seq, event.prev_hash) == (1, GENESIS_HASH)


@pytest.fixture
async def widgets(db_session: AsyncSession) -> None:
    """A stand-in domain table, gone with the test's rollback (not with the tests' own)."""
    await db_session.execute(text("CREATE TEMP TABLE widgets (id int PRIMARY KEY, name text)"))
    await db_session.commit()


async def _widget_names(session: AsyncSession) -> list[str]:
    return list((await session.scalars(text("SELECT name FROM widgets ORDER BY id"))).all())


@pytest.mark.usefixtures("widgets")
async def test_change_and_record_commit_together(
    audit: AuditService, db_session: AsyncSession
) -> None:
    async with db_session.begin_nested():
        await db_session.execute(text("INSERT INTO widgets VALUES (1, 'kept')"))
        await audit.record(
            action=AuditAction.ROOM_CREATED, entity_type=AuditEntity.ROOM, entity_id="1"
        )
    # Releasing the savepoint is not the end of the unit of work: nothing is appended yet.
    assert await count_events(db_session) == 0
    await db_session.commit()

    assert await _widget_names(db_session) == ["kept"]
    assert await count_events(db_session) == 1


@pytest.mark.usefixtures("widgets")
async def test_rolled_back_change_leaves_no_audit_row(
    audit: AuditService, db_session: AsyncSession
) -> None:
    class ChangeFailed(Exception):
        """The caller's change fails after it was recorded."""

    async def change_then_fail() -> None:
        async with db_session.begin_nested():
            await db_session.execute(text("INSERT INTO widgets VALUES (1, 'lost')"))
            await audit.record(
                action=AuditAction.ROOM_CREATED, entity_type=AuditEntity.ROOM, entity_id="1"
            )
            raise ChangeFailed

    await audit.record(action=AuditAction.ROOM_UPDATED, entity_type=AuditEntity.ROOM, entity_id="0")
    with pytest.raises(ChangeFailed):
        await change_then_fail()
    await db_session.commit()

    # The entry recorded inside the rolled-back savepoint is dropped, the one before it kept.
    (event,) = await events_by_seq(db_session)
    assert event.action == "room.updated"
    assert await _widget_names(db_session) == []


@pytest.mark.usefixtures("widgets")
async def test_failed_audit_insert_fails_the_change(
    audit: AuditService, db_session: AsyncSession
) -> None:
    await db_session.execute(text("INSERT INTO widgets VALUES (1, 'lost')"))
    # An entity id longer than its column makes the audit INSERT itself fail, at commit.
    await audit.record(
        action=AuditAction.ROOM_CREATED, entity_type=AuditEntity.ROOM, entity_id="w" * 129
    )

    with pytest.raises(DBAPIError, match="too long"):
        await db_session.commit()
    await db_session.rollback()

    assert await _widget_names(db_session) == []
    assert await count_events(db_session) == 0


async def _fails(session: AsyncSession, statement: str) -> str:
    with pytest.raises(DBAPIError) as caught:
        async with session.begin_nested():
            await session.execute(text(statement))
    return str(caught.value.orig)


async def test_the_database_refuses_updates_deletes_and_truncates(
    audit: AuditService, db_session: AsyncSession
) -> None:
    await audit.record(
        action=AuditAction.ROOM_CREATED, entity_type=AuditEntity.ROOM, entity_id="r1"
    )
    await db_session.commit()

    update = await _fails(db_session, "UPDATE audit_events SET action = 'room.updated'")
    delete = await _fails(db_session, "DELETE FROM audit_events")
    truncate = await _fails(db_session, "TRUNCATE audit_events")

    assert "audit_events is append-only: UPDATE is not allowed" in update
    assert "audit_events is append-only: DELETE is not allowed" in delete
    assert "audit_events is append-only: TRUNCATE is not allowed" in truncate
    (event,) = await events_by_seq(db_session)
    assert event.action == "room.created"


async def test_the_chain_head_only_advances(audit: AuditService, db_session: AsyncSession) -> None:
    await audit.record(
        action=AuditAction.ROOM_CREATED, entity_type=AuditEntity.ROOM, entity_id="r1"
    )
    await db_session.commit()

    rewind = await _fails(db_session, "UPDATE audit_chain_head SET last_seq = 0")
    stay = await _fails(db_session, "UPDATE audit_chain_head SET last_hash = 'x'")
    delete = await _fails(db_session, "DELETE FROM audit_chain_head")
    truncate = await _fails(db_session, "TRUNCATE audit_chain_head")

    for message, operation in (
        (rewind, "UPDATE"),
        (stay, "UPDATE"),
        (delete, "DELETE"),
        (truncate, "TRUNCATE"),
    ):
        assert f"audit_chain_head only advances: {operation}" in message
    head = (await db_session.execute(select(AuditChainHead.last_seq))).scalar_one()
    assert head == 1
