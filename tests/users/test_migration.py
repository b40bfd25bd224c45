"""Migration 0003 on its own database: its tables, citext uniqueness, and a clean downgrade."""

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import create_async_engine

from tests.database import migrate

OWN_TABLES = {"users", "auth_sessions", "auth_refresh_tokens", "auth_login_throttles"}
INSERT_USER = text(
    "INSERT INTO users (id, email, full_name, password_hash) "
    "VALUES (gen_random_uuid(), :email, 'X', 'h')"
)


async def _tables(url: str) -> set[str]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            )
            return set(rows.scalars())
    finally:
        await engine.dispose()


async def test_0003_creates_its_tables_and_removes_them_going_down(fresh_database_url: str) -> None:
    await migrate(fresh_database_url, "0003")
    assert await _tables(fresh_database_url) >= OWN_TABLES
    await migrate(fresh_database_url, "0002", down=True)
    assert OWN_TABLES.isdisjoint(await _tables(fresh_database_url))
    await migrate(fresh_database_url, "0003")
    assert await _tables(fresh_database_url) >= OWN_TABLES


async def test_emails_are_unique_whatever_their_case(fresh_database_url: str) -> None:
    await migrate(fresh_database_url, "0003")
    engine = create_async_engine(fresh_database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(INSERT_USER, {"email": "case@example.com"})
            defaults = (
                await connection.execute(text("SELECT role, is_active, version FROM users"))
            ).one()
        assert tuple(defaults) == ("member", True, 1)
        with pytest.raises(IntegrityError, match="uq_users_email"):
            async with engine.begin() as connection:
                await connection.execute(INSERT_USER, {"email": "CASE@Example.COM"})
    finally:
        await engine.dispose()
