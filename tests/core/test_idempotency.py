"""`Idempotency-Key`, proven on `POST /users`: replay, reuse, in-flight retries, expiry, pruning."""

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi import FastAPI
from httpx import AsyncClient, Response
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.requests import Request
from starlette.types import Message

from app.cli import main
from app.core.idempotency import request_hash
from app.core.idempotency_store import IdempotencyRecord, lock_id
from app.users.models import User
from app.users.repository import UserRepository
from app.users.schemas import Role
from tests.auth.conftest import audit_changes, bearer, committed_user, login
from tests.conftest import AuthHeaders, CreateUser, truncate_all

USERS = "/api/v1/users"
NEW = {
    "email": "once.only@example.com",
    "full_name": "Once Only",
    "password": "a good long passphrase",
}
OTHER = {**NEW, "email": "someone.else@example.com"}
WAIT_S = 10


def _keyed(headers: dict[str, str], key: str = "3f0c7a52-create-once") -> dict[str, str]:
    return {**headers, "Idempotency-Key": key}


async def _accounts(session: AsyncSession, email: str) -> int:
    count = await session.scalar(select(func.count()).select_from(User).where(User.email == email))
    return count or 0


async def _creations(session: AsyncSession, email: str) -> int:
    changes = await audit_changes(session, action="user.created")
    return sum(1 for change in changes if change["after"]["email"] == email)


async def _stored(session: AsyncSession) -> list[IdempotencyRecord]:
    rows = await session.scalars(
        select(IdempotencyRecord).execution_options(populate_existing=True)
    )
    return list(rows.all())


def _assert_replay_of(replay: Response, first: Response) -> None:
    assert replay.status_code == first.status_code
    assert replay.content == first.content
    assert replay.headers["location"] == first.headers["location"]
    assert replay.headers["etag"] == first.headers["etag"]
    assert replay.headers["content-type"] == "application/json"
    assert replay.headers["idempotent-replayed"] == "true"


async def test_a_retry_with_the_same_key_and_body_replays_the_first_answer(
    client: AsyncClient, admin_headers: dict[str, str], db_session: AsyncSession
) -> None:
    first = await client.post(USERS, json=NEW, headers=_keyed(admin_headers))
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    assert first.headers["location"] == f"{USERS}/{first.json()['id']}"
    assert first.headers["etag"] == '"1"'

    replay = await client.post(USERS, json=NEW, headers=_keyed(admin_headers))

    _assert_replay_of(replay, first)
    assert replay.headers["cache-control"] == "no-store"
    assert await _accounts(db_session, NEW["email"]) == 1
    assert await _creations(db_session, NEW["email"]) == 1


async def test_the_same_document_written_differently_is_the_same_request(
    client: AsyncClient, admin_headers: dict[str, str]
) -> None:
    first = await client.post(USERS, json=NEW, headers=_keyed(admin_headers))
    assert first.status_code == 201, first.text
    # Keys in another order, with spaces and a line break: the same JSON document.
    reordered = json.dumps(dict(reversed(NEW.items())), indent=2)
    replay = await client.post(
        USERS,
        content=reordered,
        headers={**_keyed(admin_headers), "Content-Type": "application/json"},
    )
    _assert_replay_of(replay, first)


async def test_a_key_reused_for_another_body_is_refused(
    client: AsyncClient, admin_headers: dict[str, str], db_session: AsyncSession
) -> None:
    assert (await client.post(USERS, json=NEW, headers=_keyed(admin_headers))).status_code == 201

    reused = await client.post(USERS, json=OTHER, headers=_keyed(admin_headers))

    assert reused.status_code == 422
    assert reused.headers["content-type"] == "application/problem+json"
    assert reused.json()["code"] == "idempotency-key-reused"
    assert reused.json()["type"] == "https://roombook.dev/problems/idempotency-key-reused"
    assert await _accounts(db_session, OTHER["email"]) == 0


def _request(method: str, path: str, body: bytes, query: bytes = b"") -> Request:
    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "root_path": "",
        "query_string": query,
        "headers": [(b"host", b"testserver")],
        "scheme": "http",
        "server": ("testserver", 80),
    }
    return Request(scope, receive)


async def test_the_request_hash_names_the_operation_and_the_document() -> None:
    body = b'{"a": 1, "b": [true, null]}'
    base = await request_hash(_request("POST", "/api/v1/users", body))
    assert await request_hash(_request("POST", "/api/v1/users", b'{"b":[true,null],"a":1}')) == base
    for other in (
        _request("PUT", "/api/v1/users", body),
        _request("POST", "/api/v1/rooms", body),
        _request("POST", "/api/v1/users", body, query=b"dry_run=true"),
        _request("POST", "/api/v1/users", b'{"a": 2, "b": [true, null]}'),
        # The parts are length-prefixed: moving bytes from one part to the next changes it.
        _request("POST", "/api/v1/user", b"s" + body),
    ):
        assert await request_hash(other) != base
    # A body that is not JSON counts as its bytes.
    assert await request_hash(_request("POST", "/x", b"a b")) != await request_hash(
        _request("POST", "/x", b"a  b")
    )


async def test_keys_are_scoped_per_caller(
    client: AsyncClient,
    create_user: CreateUser,
    auth_headers: AuthHeaders,
    db_session: AsyncSession,
) -> None:
    first_admin = await auth_headers(await create_user(role=Role.ADMIN))
    second_admin = await auth_headers(await create_user(role=Role.ADMIN))
    first = await client.post(USERS, json=NEW, headers=_keyed(first_admin))
    assert first.status_code == 201, first.text

    # The same key from someone else is theirs alone: no replay, no reuse refusal.
    own = await client.post(USERS, json=OTHER, headers=_keyed(second_admin))
    assert own.status_code == 201, own.text
    assert "idempotent-replayed" not in own.headers
    # Not the first admin's answer either: the request runs (and finds the email taken).
    same_body = await client.post(USERS, json=NEW, headers=_keyed(second_admin, "another-key"))
    assert same_body.json()["code"] == "email-taken"

    _assert_replay_of(await client.post(USERS, json=NEW, headers=_keyed(first_admin)), first)
    _assert_replay_of(await client.post(USERS, json=OTHER, headers=_keyed(second_admin)), own)
    assert await _accounts(db_session, OTHER["email"]) == 1


async def test_a_refused_request_stores_nothing_and_its_retry_runs_again(
    client: AsyncClient,
    admin_headers: dict[str, str],
    create_user: CreateUser,
    db_session: AsyncSession,
) -> None:
    await create_user(email=NEW["email"])
    for _ in range(2):
        taken = await client.post(USERS, json=NEW, headers=_keyed(admin_headers))
        assert taken.status_code == 409
        assert taken.json()["code"] == "email-taken"
        assert "idempotent-replayed" not in taken.headers
        assert await _stored(db_session) == []


async def test_an_answer_whose_commit_fails_is_not_stored(
    client: AsyncClient, admin_headers: dict[str, str], db_session: AsyncSession
) -> None:
    # The audit entry is written last, at COMMIT, after the answer was stored: it now fails.
    await db_session.execute(
        text("ALTER TABLE audit_events ADD CONSTRAINT test_refuse CHECK (false) NOT VALID")
    )

    failed = await client.post(USERS, json=NEW, headers=_keyed(admin_headers))

    assert failed.status_code == 500
    assert await _stored(db_session) == []
    assert await _accounts(db_session, NEW["email"]) == 0


async def test_without_a_key_nothing_is_stored_or_replayed(
    client: AsyncClient, admin_headers: dict[str, str], db_session: AsyncSession
) -> None:
    created = await client.post(USERS, json=NEW, headers=admin_headers)
    assert created.status_code == 201
    assert "idempotent-replayed" not in created.headers
    assert await _stored(db_session) == []
    again = await client.post(USERS, json=NEW, headers=admin_headers)
    assert again.json()["code"] == "email-taken"


async def test_an_expired_key_runs_its_request_again(
    client: AsyncClient, admin_headers: dict[str, str], db_session: AsyncSession
) -> None:
    first = await client.post(USERS, json=NEW, headers=_keyed(admin_headers))
    assert first.status_code == 201, first.text
    (record,) = await _stored(db_session)
    ttl = record.expires_at - record.created_at
    assert ttl == timedelta(seconds=86_400)
    await db_session.execute(
        update(IdempotencyRecord).values(expires_at=func.now() - timedelta(seconds=1))
    )

    # Expired, the key is free: another body is neither refused nor answered from the store.
    fresh = await client.post(USERS, json=OTHER, headers=_keyed(admin_headers))

    assert fresh.status_code == 201, fresh.text
    assert "idempotent-replayed" not in fresh.headers
    assert await _accounts(db_session, OTHER["email"]) == 1
    (replaced,) = await _stored(db_session)
    assert replaced.body == fresh.content
    assert replaced.expires_at - replaced.created_at == ttl
    _assert_replay_of(await client.post(USERS, json=OTHER, headers=_keyed(admin_headers)), fresh)


@pytest.mark.parametrize(
    "key",
    [b"", b"k" * 256, "cl\u00e9".encode("latin-1"), b"tab\tinside"],
    ids=["empty", "too-long", "not-ascii", "control-character"],
)
async def test_a_malformed_key_is_a_422_naming_the_header(
    client: AsyncClient, admin_headers: dict[str, str], db_session: AsyncSession, key: bytes
) -> None:
    raw = [(name.encode(), value.encode()) for name, value in admin_headers.items()]
    response = await client.post(USERS, json=NEW, headers=[*raw, (b"Idempotency-Key", key)])
    assert response.status_code == 422
    assert response.json()["code"] == "validation-failed"
    assert [error["field"] for error in response.json()["errors"]] == ["Idempotency-Key"]
    assert await _accounts(db_session, NEW["email"]) == 0


async def test_the_longest_printable_key_is_accepted(
    client: AsyncClient, admin_headers: dict[str, str]
) -> None:
    key = "".join(chr(code) for code in range(0x20, 0x7F)) * 3
    first = await client.post(USERS, json=NEW, headers=_keyed(admin_headers, key[:255]))
    assert first.status_code == 201, first.text
    replay = await client.post(USERS, json=NEW, headers=_keyed(admin_headers, key[:255]))
    _assert_replay_of(replay, first)


async def test_a_retry_while_the_first_request_runs_is_refused_at_once(
    app: FastAPI, committed_client: AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    await committed_user(app, email="root@example.com", role=Role.ADMIN)
    token = (await login(committed_client, "root@example.com")).json()["access_token"]
    headers = _keyed(bearer(token))
    first_inside, release = asyncio.Event(), asyncio.Event()
    add = UserRepository.add

    async def add_once_released(self: UserRepository, *, user: User) -> User:
        # The first request waits here, inside its transaction, holding its key's lock.
        if not first_inside.is_set():
            first_inside.set()
            await release.wait()
        return await add(self, user=user)

    monkeypatch.setattr(UserRepository, "add", add_once_released)
    first_task = asyncio.create_task(committed_client.post(USERS, json=NEW, headers=headers))
    await asyncio.wait_for(first_inside.wait(), WAIT_S)

    retry = await asyncio.wait_for(committed_client.post(USERS, json=NEW, headers=headers), WAIT_S)
    release.set()
    first = await asyncio.wait_for(first_task, WAIT_S)
    monkeypatch.undo()

    assert retry.status_code == 409, retry.text
    assert retry.json()["code"] == "idempotency-key-in-flight"
    assert retry.headers["retry-after"] == "1"
    assert first.status_code == 201, first.text
    _assert_replay_of(await committed_client.post(USERS, json=NEW, headers=headers), first)
    async with app.state.session_factory() as session:
        assert await _accounts(session, NEW["email"]) == 1
        assert await _creations(session, NEW["email"]) == 1


async def test_a_stored_answer_is_replayed_while_another_retry_holds_the_key(
    app: FastAPI, committed_client: AsyncClient
) -> None:
    admin_id = await committed_user(app, email="root@example.com", role=Role.ADMIN)
    token = (await login(committed_client, "root@example.com")).json()["access_token"]
    headers = _keyed(bearer(token))
    first = await committed_client.post(USERS, json=NEW, headers=headers)
    assert first.status_code == 201, first.text
    engine: AsyncEngine = app.state.engine
    async with engine.connect() as holder:
        # Another process is replaying the same key right now: its answer needs no lock.
        await holder.execute(
            text("SELECT pg_advisory_lock(:id)"),
            {"id": lock_id(caller_id=admin_id, key=headers["Idempotency-Key"])},
        )
        _assert_replay_of(await committed_client.post(USERS, json=NEW, headers=headers), first)
        # A key never answered while someone holds it is in flight.
        held_fresh = {**headers, "Idempotency-Key": "held-elsewhere"}
        await holder.execute(
            text("SELECT pg_advisory_lock(:id)"),
            {"id": lock_id(caller_id=admin_id, key="held-elsewhere")},
        )
        in_flight = await committed_client.post(USERS, json=OTHER, headers=held_fresh)
        assert in_flight.json()["code"] == "idempotency-key-in-flight"
        # Session locks outlive the connection's return to the pool: give them back.
        await holder.execute(text("SELECT pg_advisory_unlock_all()"))


@pytest.fixture
async def factory(app: FastAPI) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions that really commit; every table is emptied afterwards."""
    yield app.state.session_factory
    await truncate_all(app.state.engine)


@pytest.mark.usefixtures("cli_database")
async def test_prune_deletes_expired_keys_in_batches_and_keeps_live_ones(
    factory: async_sessionmaker[AsyncSession], capsys: pytest.CaptureFixture[str]
) -> None:
    now = datetime.now(UTC)
    caller = uuid.uuid4()
    async with factory() as session, session.begin():
        for name, expires_at in (
            ("expired-1", now - timedelta(days=2)),
            ("expired-2", now - timedelta(hours=1)),
            ("expired-3", now - timedelta(seconds=1)),
            ("live", now + timedelta(hours=1)),
        ):
            session.add(
                IdempotencyRecord(
                    caller_id=caller,
                    key=name,
                    request_hash=bytes(32),
                    status_code=201,
                    headers={},
                    body=b"{}",
                    expires_at=expires_at,
                )
            )

    # Batches of two: three expired rows take a full batch and a partial one.
    await asyncio.to_thread(main, ["prune", "--batch-size", "2"])

    assert "idempotency_keys: 3 removed" in capsys.readouterr().out.splitlines()
    async with factory() as session:
        assert list((await session.scalars(select(IdempotencyRecord.key))).all()) == ["live"]
