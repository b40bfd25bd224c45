"""Least privilege in the database: what the API's role may do to each table, and the grant."""

import asyncpg
from sqlalchemy.engine import make_url

from app import devdb

SCHEMA = "public"

APP_PRIVILEGES: dict[str, tuple[str, ...]] = {
    # Append-only: the API may add and read entries, never change or remove one.
    "audit_events": ("SELECT", "INSERT"),
    # The append advances the head with UPDATE (and locks it FOR UPDATE, which needs it);
    # triggers keep it from moving back. INSERT only restores the genesis row of an
    # emptied table: the single-row key and check refuse a second head.
    "audit_chain_head": ("SELECT", "INSERT", "UPDATE"),
    # Accounts are deactivated, never deleted.
    "users": ("SELECT", "INSERT", "UPDATE"),
    # Sessions, refresh tokens and throttle counters end and are pruned when expired.
    "auth_sessions": ("SELECT", "INSERT", "UPDATE", "DELETE"),
    "auth_refresh_tokens": ("SELECT", "INSERT", "UPDATE", "DELETE"),
    "auth_login_throttles": ("SELECT", "INSERT", "UPDATE", "DELETE"),
    # A stream ticket is used up by deleting it; expired ones are pruned.
    "auth_stream_tickets": ("SELECT", "INSERT", "DELETE"),
    # Rooms are deactivated, bookings and blackouts cancelled: nothing is ever deleted.
    "rooms": ("SELECT", "INSERT", "UPDATE"),
    "bookings": ("SELECT", "INSERT", "UPDATE"),
    "booking_series": ("SELECT", "INSERT", "UPDATE"),
    # Regenerating a calendar token replaces it in place; revoking deletes it.
    "calendar_tokens": ("SELECT", "INSERT", "UPDATE", "DELETE"),
    # Stored answers are replaced once expired and pruned.
    "idempotency_keys": ("SELECT", "INSERT", "UPDATE", "DELETE"),
}
"""Table privileges of the API's role; a table not listed (`alembic_version`) gets none."""

ROLE_FACTS = """
SELECT r.rolsuper, r.rolcreaterole,
       EXISTS (
           SELECT 1 FROM pg_tables t
           WHERE t.schemaname = $2 AND pg_has_role(r.oid, t.tableowner, 'MEMBER')
       ) AS owns_tables
FROM pg_roles r WHERE r.rolname = $1
"""


class RoleNotGrantable(RuntimeError):
    """The role cannot serve as the API's role: it is missing or too powerful already."""


def user_of(url: str) -> str | None:
    """The role a database URL logs in as."""
    return make_url(url).username


async def grant_app_role(url: str, *, role: str) -> None:
    """Give `role` exactly `APP_PRIVILEGES` on the database at `url` (run as its owner).

    Idempotent: every table of the schema loses whatever else the role held, so a
    re-run after each migration also covers new tables and withdraws stray grants.
    """
    connection = await devdb.connect(url)
    try:
        await _refuse_powerful(connection, role=role)
        quoted = devdb.quote_ident(role)
        tables = await connection.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = $1 ORDER BY tablename", SCHEMA
        )
        database = await connection.fetchval("SELECT current_database()")
        async with connection.transaction():
            await connection.execute(
                f"GRANT CONNECT ON DATABASE {devdb.quote_ident(database)} TO {quoted}"
            )
            await connection.execute(f"GRANT USAGE ON SCHEMA {SCHEMA} TO {quoted}")
            for row in tables:
                table = f"{SCHEMA}.{devdb.quote_ident(row['tablename'])}"
                await connection.execute(f"REVOKE ALL ON TABLE {table} FROM {quoted}")
                privileges = APP_PRIVILEGES.get(row["tablename"])
                if privileges:
                    await connection.execute(
                        f"GRANT {', '.join(privileges)} ON TABLE {table} TO {quoted}"
                    )
    finally:
        await connection.close()


async def _refuse_powerful(connection: asyncpg.Connection, *, role: str) -> None:
    facts = await connection.fetchrow(ROLE_FACTS, role, SCHEMA)
    if facts is None:
        raise RoleNotGrantable(
            f"role {role!r} does not exist: create it first (LOGIN, no other options)"
        )
    # Each of these lets the role get past the audit triggers: a superuser or table owner
    # (or a member of the owner) disables them, and CREATEROLE can grant itself the owner.
    if facts["rolsuper"]:
        raise RoleNotGrantable(f"role {role!r} is a superuser")
    if facts["rolcreaterole"]:
        raise RoleNotGrantable(f"role {role!r} has CREATEROLE")
    if facts["owns_tables"]:
        raise RoleNotGrantable(f"role {role!r} owns (or may act as the owner of) the tables")
