"""Fill the benchmark database with bulk SQL, never through the API.

The database (`roombook_bench`) is dropped, created and migrated with Alembic, then each
step of `SEED_STEPS` runs in order on one connection. Ids are derived from numbers so the
harness knows whom to authenticate as without reading them back:

* users `0 … users-1`: user 0 is the admin, every hundredth a manager, the rest members;
  all share one argon2id hash made with the configured parameters, so login works;
* sessions for the users the read scenarios act as (the admin and users `1 … token_users`);
* `audit_events` entries appended as a real hash chain (`make audit-verify` passes).

Rooms (500) and bookings (200k), and the 1M-entry audit load (`--audit-events 1000000`),
belong here too once the bookings domain exists: add a step to `SEED_STEPS` and a field to
`SeedPlan`.
"""

import json
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from app import devdb
from app.audit.actions import AuditAction
from app.audit.chain import HASHED_FIELDS, ChainEntry, ChainKeys, entry_hash
from app.audit.models import GENESIS_HASH
from app.core.db import async_url
from tests.database import migrate

DATABASE_NAME = "roombook_bench"
"""The benchmark's own database, on whichever server the harness uses."""
ADMIN = 0
"""Number of the admin account."""
SESSION_LIFETIME = timedelta(days=14)
AUDIT_STEP = timedelta(seconds=30)
"""Time between two seeded audit entries; the last one lies just before the seed."""
AUDIT_CHUNK = 20_000
"""Entries hashed and copied per round trip."""
AUDIT_MIX = (
    (AuditAction.AUTH_LOGIN_SUCCEEDED, "session"),
    (AuditAction.AUTH_TOKEN_REFRESHED, "session"),
    (AuditAction.AUTH_LOGIN_FAILED, "user"),
    (AuditAction.USER_UPDATED, "user"),
    (AuditAction.AUTH_LOGOUT, "session"),
)
AUDIT_COLUMNS = (*HASHED_FIELDS, "hash")


@dataclass(frozen=True, slots=True)
class SeedPlan:
    """How much to seed, and the one password hash every account shares."""

    password_hash: str
    chain_keys: ChainKeys
    """The audit chain's keys, the same the served API is given."""
    users: int = 10_000
    token_users: int = 100
    """Members 1 … token_users get sessions; the read scenarios act as them."""
    sessions_per_user: int = 3
    audit_events: int = 50_000


def user_id(number: int) -> uuid.UUID:
    """Id of seeded user `number` (the SQL of `seed_users` builds the same)."""
    return uuid.UUID(f"00000000-0000-4000-8000-{number:012d}")


def user_role(number: int) -> str:
    """Role of seeded user `number` (the SQL of `seed_users` picks the same)."""
    if number == ADMIN:
        return "admin"
    return "manager" if number % 100 == 0 else "member"


def user_email(number: int) -> str:
    """Email of seeded user `number`."""
    return f"user{number}@example.com"


def session_id(number: int, index: int) -> uuid.UUID:
    """Id of the `index`-th seeded session of user `number`."""
    return uuid.UUID(f"00000000-0000-4000-9000-{number:08d}{index:04d}")


SEED_USERS = """
INSERT INTO users (id, email, full_name, role, is_active, password_hash, version,
    created_at, updated_at)
SELECT ('00000000-0000-4000-8000-' || lpad(n::text, 12, '0'))::uuid,
    'user' || n || '@example.com', 'Bench User ' || n,
    CASE WHEN n = 0 THEN 'admin' WHEN n % 100 = 0 THEN 'manager' ELSE 'member' END,
    true, $1, 1, $2::timestamptz - n * interval '1 minute', $2::timestamptz
FROM generate_series(0, $3 - 1) AS n
"""


async def seed_users(connection: asyncpg.Connection, plan: SeedPlan) -> None:
    """Insert the accounts in one statement, newest first by number."""
    await connection.execute(SEED_USERS, plan.password_hash, datetime.now(UTC), plan.users)


async def seed_sessions(connection: asyncpg.Connection, plan: SeedPlan) -> None:
    """Open `sessions_per_user` live sessions for the admin and each token user."""
    now = datetime.now(UTC)
    records = [
        (
            session_id(number, index),
            user_id(number),
            now - timedelta(hours=index),
            now,
            now,
            now - timedelta(hours=index) + SESSION_LIFETIME,
            "bench",
            "127.0.0.1",
            0,
        )
        for number in range(plan.token_users + 1)
        for index in range(plan.sessions_per_user)
    ]
    await connection.copy_records_to_table(
        "auth_sessions",
        records=records,
        columns=(
            "id",
            "user_id",
            "created_at",
            "updated_at",
            "last_used_at",
            "expires_at",
            "user_agent",
            "client_ip",
            "generation",
        ),
    )


def audit_entries(
    *, count: int, users: int, end: datetime, keys: ChainKeys
) -> Iterator[tuple[Any, ...]]:
    """Rows of a valid hash chain of `count` entries ending before `end`, signed with `keys`."""
    prev_hash = GENESIS_HASH
    start = end - AUDIT_STEP * count
    for seq in range(1, count + 1):
        action, entity_type = AUDIT_MIX[seq % len(AUDIT_MIX)]
        actor = user_id((seq * 7919) % users)
        entry = ChainEntry(
            id=uuid.uuid4(),
            seq=seq,
            occurred_at=start + AUDIT_STEP * seq,
            action=action.value,
            actor_id=actor,
            actor_role="member",
            request_id=uuid.uuid4().hex,
            client_ip=f"203.0.113.{seq % 250}",
            user_agent="bench",
            entity_type=entity_type,
            entity_id=str(actor) if entity_type == "user" else str(uuid.uuid4()),
            changes={"after": {"n": seq}},
            prev_hash=prev_hash,
            key_id=keys.current_id,
        )
        content = [getattr(entry, name) for name in HASHED_FIELDS]
        prev_hash = entry_hash(entry, keys=keys)
        # asyncpg's COPY takes jsonb as text.
        yield (*(json.dumps(v) if isinstance(v, dict) else v for v in content), prev_hash)


async def seed_audit(connection: asyncpg.Connection, plan: SeedPlan) -> None:
    """Append the chain in chunks, then move its head to the last entry once."""
    last: tuple[Any, ...] | None = None
    chunk: list[tuple[Any, ...]] = []
    rows = audit_entries(
        count=plan.audit_events, users=plan.users, end=datetime.now(UTC), keys=plan.chain_keys
    )
    for row in rows:
        chunk.append(row)
        if len(chunk) == AUDIT_CHUNK:
            await connection.copy_records_to_table(
                "audit_events", records=chunk, columns=AUDIT_COLUMNS
            )
            last, chunk = chunk[-1], []
    if chunk:
        await connection.copy_records_to_table("audit_events", records=chunk, columns=AUDIT_COLUMNS)
        last = chunk[-1]
    if last is None:
        return
    async with connection.transaction():
        # The head's guard allows one-entry steps only; a bulk load moves it once, with the
        # guard off just for this transaction (DDL is transactional, so it cannot stay off).
        await connection.execute(
            "ALTER TABLE audit_chain_head DISABLE TRIGGER audit_chain_head_advance"
        )
        await connection.execute(
            "UPDATE audit_chain_head SET last_seq = $1, last_hash = $2 WHERE id = 1",
            last[1],
            last[-1],
        )
        await connection.execute(
            "ALTER TABLE audit_chain_head ENABLE TRIGGER audit_chain_head_advance"
        )


async def analyse(connection: asyncpg.Connection, plan: SeedPlan) -> None:
    """Give the planner statistics of the loaded tables."""
    await connection.execute("ANALYZE")


SeedStep = Callable[[asyncpg.Connection, SeedPlan], Awaitable[None]]

SEED_STEPS: tuple[tuple[str, SeedStep], ...] = (
    ("users", seed_users),
    ("sessions", seed_sessions),
    ("audit events", seed_audit),
)
"""What a seed does, in order; later domains append their steps (rooms, bookings)."""


async def recreate(server_url: str) -> str:
    """Drop and create the benchmark database, migrate it; return its asyncpg URL."""
    admin = await devdb.connect(server_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{DATABASE_NAME}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{DATABASE_NAME}"')
    finally:
        await admin.close()
    url = async_url(devdb.with_database(server_url, DATABASE_NAME))
    await migrate(url)
    return url


async def run_steps(url: str, plan: SeedPlan) -> dict[str, float]:
    """Run every seed step, then analyse; return the seconds each took."""
    seconds: dict[str, float] = {}
    connection = await devdb.connect(url)
    try:
        for name, step in (*SEED_STEPS, ("analyse", analyse)):
            started = time.perf_counter()
            await step(connection, plan)
            seconds[name] = round(time.perf_counter() - started, 2)
    finally:
        await connection.close()
    return seconds
