"""Synthetic audit rows in bulk, for index and export measurements (not a valid chain)."""

from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

ACTORS = 2000
"""Distinct actors among the synthetic rows."""
ENTITIES = 200_000
"""Distinct entity ids among the synthetic rows."""
SEQ_BASE = 1_000_000_000
"""Synthetic rows take seq numbers far above any real chain."""

# A realistic mix: logins and bookings dominate, room and role changes are rare.
_ACTION = """CASE
    WHEN g % 100 < 35 THEN 'auth.login_succeeded'
    WHEN g % 100 < 40 THEN 'auth.login_failed'
    WHEN g % 100 < 50 THEN 'auth.token_refreshed'
    WHEN g % 100 < 70 THEN 'booking.created'
    WHEN g % 100 < 80 THEN 'booking.updated'
    WHEN g % 100 < 90 THEN 'booking.cancelled'
    WHEN g % 100 < 96 THEN 'user.updated'
    WHEN g % 100 < 98 THEN 'user.role_changed'
    WHEN g % 1000 < 990 THEN 'room.updated'
    ELSE 'room.created' END"""

INSERT_SYNTHETIC = text(
    f"""
    INSERT INTO audit_events (id, seq, occurred_at, action, actor_id, actor_role, request_id,
        client_ip, user_agent, entity_type, entity_id, changes, prev_hash, hash)
    SELECT gen_random_uuid(), {SEQ_BASE} + CAST(:first_seq AS bigint) + g,
        CAST(:start AS timestamptz) + g * CAST(:step AS bigint) * interval '1 microsecond',
        a.action,
        ('00000000-0000-4000-8000-' || lpad(((g * 7919) % {ACTORS})::text, 12, '0'))::uuid,
        'member', md5(g::text), '203.0.113.' || (g % 250), 'bench',
        CASE split_part(a.action, '.', 1) WHEN 'auth' THEN 'session'
            ELSE split_part(a.action, '.', 1) END,
        'e' || ((g * 104729) % {ENTITIES}),
        jsonb_build_object('after', jsonb_build_object('n', g)),
        repeat('0', 64), repeat('f', 64)
    FROM generate_series(1, CAST(:rows AS bigint)) AS g
    CROSS JOIN LATERAL (SELECT {_ACTION} AS action) AS a
    """
)


async def insert_synthetic(
    target: AsyncSession | AsyncConnection,
    *,
    rows: int,
    start: datetime,
    step_us: int,
    first_seq: int = 0,
) -> None:
    """Insert `rows` synthetic entries, `step_us` microseconds apart from `start` on.

    Their seq numbers start after `SEQ_BASE + first_seq`, so loads with distinct offsets can
    share a table.
    """
    # A bulk load outlasts the suite's 5 s statement timeout; lift it for this transaction.
    await target.execute(text("SET LOCAL statement_timeout = 0"))
    await target.execute(
        INSERT_SYNTHETIC, {"rows": rows, "start": start, "step": step_us, "first_seq": first_seq}
    )
