"""Alembic environment: async engine from settings, metadata from every domain's models."""

import asyncio

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from app.core.config import get_settings
from app.core.db import async_url
from app.models import metadata

config = context.config


def database_url() -> str:
    """The URL migrations run against: an explicit `sqlalchemy.url`, else the owner's from settings.

    Migrations create and alter tables, so they connect as the role that owns them
    (`DATABASE__MIGRATION_URL`), never as the API's role, which owns nothing.
    """
    explicit = config.get_main_option("sqlalchemy.url")
    if explicit:
        return async_url(explicit)
    configured = get_settings().database.owner_url
    if configured is None:
        raise RuntimeError("DATABASE__URL is not set; run migrations through `make migrate`")
    return async_url(configured.get_secret_value())


def run_offline() -> None:
    """Emit SQL to stdout instead of running it."""
    context.configure(url=database_url(), target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def _run_sync(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


async def run_online() -> None:
    """Run migrations over an asyncpg connection."""
    engine = create_async_engine(database_url())
    async with engine.connect() as connection:
        await connection.run_sync(_run_sync)
    await engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    asyncio.run(run_online())
