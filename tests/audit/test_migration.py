"""Migration 0002 on its own database: ordinary triggers going up, nothing left going down."""

from app import devdb
from tests.database import migrate

AUDIT_TRIGGERS = [
    ("audit_chain_head_advance", "O"),
    ("audit_chain_head_no_truncate", "O"),
    ("audit_events_no_truncate", "O"),
    ("audit_events_no_update_delete", "O"),
]


async def _audit_objects(url: str) -> tuple[list[tuple[str, str]], list[str], list[str]]:
    connection = await devdb.connect(url)
    try:
        triggers = await connection.fetch(
            "SELECT tgname, tgenabled::text FROM pg_trigger WHERE NOT tgisinternal "
            "AND tgname LIKE 'audit%' ORDER BY tgname"
        )
        functions = await connection.fetch(
            "SELECT proname FROM pg_proc WHERE proname LIKE 'audit%' ORDER BY proname"
        )
        tables = await connection.fetch(
            "SELECT tablename FROM pg_tables WHERE tablename LIKE 'audit%' ORDER BY tablename"
        )
    finally:
        await connection.close()
    return (
        [(r["tgname"], r["tgenabled"]) for r in triggers],
        [r["proname"] for r in functions],
        [r["tablename"] for r in tables],
    )


async def test_upgrade_creates_ordinary_triggers_and_downgrade_removes_everything(
    fresh_database_url: str,
) -> None:
    await migrate(fresh_database_url, "0002")
    triggers, functions, tables = await _audit_objects(fresh_database_url)
    # "O" = fires in origin/local mode only, so session_replication_role = replica bypasses it.
    assert triggers == AUDIT_TRIGGERS
    assert functions == ["audit_chain_head_advance_only", "audit_events_append_only"]
    assert tables == ["audit_chain_head", "audit_events"]

    connection = await devdb.connect(fresh_database_url)
    try:
        head = await connection.fetchrow("SELECT id, last_seq, last_hash FROM audit_chain_head")
        async with connection.transaction():
            await connection.execute("SET LOCAL session_replication_role = replica")
            await connection.execute("TRUNCATE audit_events, audit_chain_head")
    finally:
        await connection.close()
    assert dict(head or {}) == {"id": 1, "last_seq": 0, "last_hash": "0" * 64}

    await migrate(fresh_database_url, "0001", down=True)
    assert await _audit_objects(fresh_database_url) == ([], [], [])
