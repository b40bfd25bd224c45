"""Shared fixtures: one migrated database per run, one rolled-back transaction per test."""

from collections.abc import AsyncIterator
from typing import Any

import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.core.config import DatabaseSettings, SecuritySettings, Settings
from app.factory import create_app
from tests.database import create_test_database, drop_test_database, migrate

TEST_SECRET = "roombook-test-signing-secret-of-at-least-32-bytes"


@pytest.fixture(scope="session")
async def database_url() -> AsyncIterator[str]:
    """A database created and migrated for this run, dropped at the end."""
    server, url = await create_test_database()
    await migrate(url)
    yield url
    await drop_test_database(server, url)


def make_settings(database_url: str, **overrides: Any) -> Settings:
    """Test settings: cheap hashing, the run's database, no `.env`."""
    values: dict[str, Any] = {
        "environment": "test",
        "database": DatabaseSettings(url=SecretStr(database_url), statement_timeout_ms=5000),
        "security": SecuritySettings(
            jwt_secret=SecretStr(TEST_SECRET), argon2_time_cost=1, argon2_memory_kib=64
        ),
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    """Settings every test app is built from."""
    return make_settings(database_url)


@pytest.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    """One app for the run, its lifespan running."""
    application = create_app(settings)
    async with LifespanManager(application):
        yield application


@pytest.fixture
async def db_session(app: FastAPI) -> AsyncIterator[AsyncSession]:
    """A session inside this test's transaction, which is rolled back afterwards.

    The app's requests share the transaction through savepoints, so their commits are
    visible to the test and vanish with the rollback.
    """
    engine: AsyncEngine = app.state.engine
    real_factory = app.state.session_factory
    async with engine.connect() as connection:
        transaction = await connection.begin()
        factory = async_sessionmaker(
            bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint"
        )
        app.state.session_factory = factory
        try:
            async with factory() as session:
                yield session
        finally:
            app.state.session_factory = real_factory
            await transaction.rollback()


@pytest.fixture
async def client(app: FastAPI, db_session: AsyncSession) -> AsyncIterator[AsyncClient]:
    """HTTP client for the app, isolated in the test's transaction."""
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://testserver") as c:
        yield c


@pytest.fixture
async def committed_client(app: FastAPI) -> AsyncIterator[AsyncClient]:
    """HTTP client whose requests really commit, for tests of concurrent transactions.

    Every table is emptied afterwards (triggers off, as the audit table refuses TRUNCATE).
    """
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://testserver") as c:
        yield c
    await truncate_all(app.state.engine)


async def truncate_all(engine: AsyncEngine) -> None:
    """Empty every application table."""
    async with engine.begin() as connection:
        tables = (
            await connection.execute(
                text(
                    "SELECT quote_ident(tablename) FROM pg_tables "
                    "WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
                )
            )
        ).scalars()
        names = ", ".join(tables)
        if names:
            await connection.execute(text("SET LOCAL session_replication_role = replica"))
            await connection.execute(text(f"TRUNCATE {names} CASCADE"))
