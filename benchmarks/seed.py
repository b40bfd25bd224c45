"""Fill the benchmark database with bulk SQL, never through the API.

The database (`roombook_bench`) is dropped, created and migrated with Alembic, then each
step of `SEED_STEPS` runs in order on one connection. Ids are derived from numbers so the
harness knows whom to authenticate as without reading them back:

* users `0 … users-1`: user 0 is the admin, every hundredth a manager, the rest members;
  all share one argon2id hash made with the configured parameters, so login works;
* sessions for the users the read scenarios act as (the admin and users `1 … token_users`);
* `audit_events` entries appended as a real hash chain (`make audit-verify` passes);
* rooms `1 … rooms` in a few time zones, capacities and amenity sets, some needing
  approval and some with a turnover buffer; every room keeps the default opening hours;
* bookings over a year from `year_start` (26 weeks back), each room's own never
  overlapping (the exclusion constraint checks them as they go in), on weekdays in the
  room's local time between 08:00 and 18:00, buffers included, a share of them pending,
  cancelled or rejected. From 18:30 local every weekday evening stays free in every room:
  the booking scenarios of the bench book there (see `benchmarks/bookings_bench.py`).
"""

import json
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
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
YEAR_WEEKS = 52
YEAR_WEEKDAYS = YEAR_WEEKS * 5
"""Monday to Friday of the seeded year: the days rooms open by default."""
ROOM_TIME_ZONES = ("Europe/Berlin", "America/New_York", "Europe/London", "Asia/Kolkata")
"""Seeded rooms' zones, in turn; Kolkata's half-hour offset puts slots off UTC's hour grid."""


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
    audit_events: int = 1_000_000
    rooms: int = 500
    bookings: int = 200_000
    """Spread evenly over the rooms (the remainder is dropped), at most 520 per room."""
    today: date = field(default_factory=lambda: datetime.now(UTC).date())
    """The day the seeded year is centred on."""

    @property
    def bookings_per_room(self) -> int:
        """Bookings each room gets: two on each of half as many weekdays."""
        per_room = self.bookings // self.rooms if self.rooms else 0
        if per_room > 2 * YEAR_WEEKDAYS:
            raise ValueError(f"at most {2 * YEAR_WEEKDAYS} bookings per room fit the seeded year")
        return per_room

    @property
    def year_start(self) -> date:
        """The Monday 26 weeks before `today`'s week: the first day of the seeded year."""
        return self.today - timedelta(days=self.today.weekday(), weeks=YEAR_WEEKS // 2)


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


def room_id(number: int) -> uuid.UUID:
    """Id of seeded room `number` (the SQL of `seed_rooms` builds the same)."""
    return uuid.UUID(f"00000000-0000-4000-a000-{number:012d}")


SEED_ROOMS = """
INSERT INTO rooms (id, name, description, building, floor, capacity, amenities, time_zone,
    policy)
SELECT ('00000000-0000-4000-a000-' || lpad(n::text, 12, '0'))::uuid,
    'Room ' || lpad(n::text, 4, '0'), 'Seeded for the benchmark',
    'Building ' || (n % 10), (n % 8)::text,
    (ARRAY[2, 4, 6, 8, 10, 12, 16, 20, 30, 50])[1 + n % 10],
    CASE n % 5 WHEN 0 THEN ARRAY['whiteboard'] WHEN 1 THEN ARRAY['projector', 'whiteboard']
        WHEN 2 THEN ARRAY['video', 'whiteboard'] WHEN 3 THEN ARRAY['phone']
        ELSE ARRAY['accessible', 'projector', 'video'] END::varchar[],
    ($2::text[])[1 + n % cardinality($2::text[])],
    CASE WHEN n % 10 = 3 THEN '{"requires_approval": true}'
        WHEN n % 7 = 0 THEN '{"buffer_minutes": 15}' ELSE '{}' END::jsonb
FROM generate_series(1, $1) AS n
"""


async def seed_rooms(connection: asyncpg.Connection, plan: SeedPlan) -> None:
    """Insert the rooms in one statement: every tenth needs approval, every seventh a buffer."""
    await connection.execute(SEED_ROOMS, plan.rooms, list(ROOM_TIME_ZONES))


# Room n's booking i: pair i / 2 falls on weekday `day` of the year (pairs spread evenly
# over its 260 weekdays, so each room's pairs lie on different days); the first of the
# pair starts on the hour between 08:00 and 12:00 local and lasts an hour, the second starts
# between 14:00 and 16:00 and lasts 30 to 120 minutes. With a 15-minute buffer the first
# still ends before 14:00 and the second by 18:15: a room's bookings never overlap, and
# its evenings from 18:30 stay free.
SEED_BOOKINGS = """
WITH room AS (
    SELECT id, time_zone, capacity, coalesce((policy ->> 'buffer_minutes')::int, 0) AS buffer,
        substr(id::text, 25)::int AS n
    FROM rooms
), slot AS (
    SELECT room.*, i, i / 2 AS pair, (i / 2) * $4 / (($2 + 1) / 2) AS day
    FROM room, generate_series(0, $2 - 1) AS i
), timed AS (
    SELECT slot.*,
        (($3::date + (7 * (day / 5) + day % 5)::int)
            + CASE WHEN i % 2 = 0 THEN make_interval(hours => 8 + (n + pair) % 5)
                ELSE make_interval(hours => 14 + (3 * n + pair) % 3) END)
            AT TIME ZONE time_zone AS starts_at,
        CASE WHEN i % 2 = 0 THEN 60 ELSE 30 * (1 + (n + pair) % 4) END AS minutes,
        1 + ((n - 1) * $2 + i) % ($1 - 1) AS owner,
        (7 * i + n) % 20 AS lot
    FROM slot
)
INSERT INTO bookings (id, room_id, kind, owner_id, title, attendees, starts_at, ends_at,
    blocked_until, status, cancelled_by, cancelled_at, cancel_reason)
SELECT gen_random_uuid(), id, 'booking',
    ('00000000-0000-4000-8000-' || lpad(owner::text, 12, '0'))::uuid,
    'Team meeting ' || i, 1 + i % capacity, starts_at,
    starts_at + minutes * interval '1 minute',
    starts_at + (minutes + buffer) * interval '1 minute',
    CASE WHEN lot < 2 THEN 'cancelled' WHEN lot = 2 THEN 'pending' ELSE 'confirmed' END,
    CASE WHEN lot < 2 THEN ('00000000-0000-4000-8000-' || lpad(owner::text, 12, '0'))::uuid END,
    CASE WHEN lot < 2 THEN starts_at - interval '1 day' END,
    CASE WHEN lot < 2 THEN 'Plans changed' END
FROM timed
"""


async def seed_bookings(connection: asyncpg.Connection, plan: SeedPlan) -> None:
    """Insert every room's bookings in one statement; one in ten cancelled, one in twenty pending.

    Owners are users `1 … users-1` in turn, so the token users own some too.
    """
    # The exclusion constraint checks each row as it goes in: slow on a loaded machine.
    await connection.execute("SET statement_timeout = 0")
    await connection.execute(
        SEED_BOOKINGS, plan.users, plan.bookings_per_room, plan.year_start, YEAR_WEEKDAYS
    )


async def analyse(connection: asyncpg.Connection, plan: SeedPlan) -> None:
    """Give the planner statistics of the loaded tables."""
    await connection.execute("ANALYZE")


SeedStep = Callable[[asyncpg.Connection, SeedPlan], Awaitable[None]]

SEED_STEPS: tuple[tuple[str, SeedStep], ...] = (
    ("users", seed_users),
    ("sessions", seed_sessions),
    ("audit events", seed_audit),
    ("rooms", seed_rooms),
    ("bookings", seed_bookings),
)
"""What a seed does, in order; later domains append their steps."""


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
