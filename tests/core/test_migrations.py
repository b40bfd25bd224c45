"""Migrations run both ways on a fresh database and agree with the models exactly."""

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.models import metadata
from tests.database import migrate


def differences(connection: Connection) -> list[Any]:
    """What autogenerate would write to make the database match the models."""
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "compare_server_default": True}
    )
    diff: list[Any] = compare_metadata(context, metadata)
    return diff


async def tables(engine: AsyncEngine) -> set[str]:
    """Tables in the public schema."""
    async with engine.connect() as connection:
        rows = await connection.execute(
            text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        )
        return set(rows.scalars())


async def extensions(engine: AsyncEngine) -> set[str]:
    """Extensions installed in the database."""
    async with engine.connect() as connection:
        return set((await connection.execute(text("SELECT extname FROM pg_extension"))).scalars())


async def test_upgrade_downgrade_upgrade(fresh_database_url: str) -> None:
    engine = create_async_engine(fresh_database_url)
    try:
        await migrate(fresh_database_url)
        at_head = await tables(engine)
        assert {table.name for table in metadata.sorted_tables} <= at_head
        assert {"btree_gist", "citext"} <= await extensions(engine)

        await migrate(fresh_database_url, "base", down=True)
        assert await tables(engine) == {"alembic_version"}
        assert {"btree_gist", "citext"}.isdisjoint(await extensions(engine))

        await migrate(fresh_database_url)
        assert await tables(engine) == at_head
        async with engine.connect() as connection:
            assert await connection.run_sync(differences) == []
            # The comparison does see drift: a table no model declares.
            await connection.execute(text("CREATE TABLE drift_probe (id int)"))
            drift = await connection.run_sync(differences)
            await connection.rollback()
        assert [(d[0], d[1].name) for d in drift] == [("remove_table", "drift_probe")]
    finally:
        await engine.dispose()


async def test_models_and_migrations_agree(database_url: str) -> None:
    """Autogenerate against the run's migrated database finds nothing to do."""
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            assert await connection.run_sync(differences) == []
            version = (
                await connection.execute(text("SELECT version_num FROM alembic_version"))
            ).scalar_one()
    finally:
        await engine.dispose()
    assert version


def test_metadata_uses_the_naming_convention() -> None:
    assert metadata.naming_convention["pk"] == "pk_%(table_name)s"
    for table in metadata.sorted_tables:
        assert table.primary_key.name == f"pk_{table.name}", table.name
