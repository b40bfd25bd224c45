"""Shared fixtures: one migrated database per run, one rolled-back transaction per test."""

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.audit.service import build_audit_service
from app.auth.passwords import normalise_password
from app.auth.service import build_session_service
from app.core import security
from app.core.config import (
    AuditSettings,
    DatabaseSettings,
    RateLimitSettings,
    SecuritySettings,
    Settings,
    get_settings,
)
from app.factory import create_app
from app.users.models import User
from app.users.repository import UserRepository
from app.users.schemas import Role
from tests.database import create_test_database, drop_later, finish_drops, migrate
from tests.factories import UserFactory, unique_email
from tests.plans import Captured, capturing

TEST_SECRET = "roombook-test-signing-secret-of-at-least-32-bytes"
TEST_CHAIN_KEY = "roombook-test-audit-chain-key-of-at-least-32-bytes"
DEFAULT_PASSWORD = "a perfectly long test passphrase 4 roombook"
"""Password of users made by `create_user` unless told otherwise; passes the policy."""
GENEROUS_LIMIT = "100000/minute"


class RunLongHashPool(ThreadPoolExecutor):
    """A hashing pool that outlives the app that asked for it, for the rest of the test run."""

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Keep the threads: the next app with the same pool shape reuses them."""

    def end(self) -> None:
        """Stop the threads at the end of the run."""
        super().shutdown(wait=True)


@pytest.fixture(scope="session", autouse=True)
def hash_threads_live_all_run() -> Iterator[None]:
    """Every app of the run hashes on one pool per shape, whose threads never exit mid-run.

    Coverage's greenlet mode gives each traced thread greenlet state, and greenlet's clean-up
    of an exited thread's state has spun forever in CI. Hundreds of apps each closing their
    own pool made hundreds of such exits.
    """
    pools: dict[tuple[object, ...], RunLongHashPool] = {}

    def shared_pool(max_workers: int, **options: Any) -> RunLongHashPool:
        key = (max_workers, *sorted((name, repr(value)) for name, value in options.items()))
        if key not in pools:
            pools[key] = RunLongHashPool(max_workers, **options)
        return pools[key]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(security, "ThreadPoolExecutor", shared_pool)
        yield
    for pool in pools.values():
        pool.end()


@pytest.fixture(scope="session", autouse=True)
async def background_drops() -> AsyncIterator[None]:
    """At the end of the run, wait for the databases whose drop went on in the background."""
    yield
    await finish_drops()


@pytest.fixture(scope="session")
async def migrated_template() -> AsyncIterator[str]:
    """Name of a database migrated once per test process, which migrated databases copy.

    Copying it (`CREATE DATABASE … TEMPLATE`) costs less than running every migration again.
    Nothing stays connected to it, as PostgreSQL copies only an unused database.
    """
    server, url = await create_test_database()
    await migrate(url)
    yield str(make_url(url).database)
    drop_later(server, url)


@pytest.fixture(scope="session")
async def database_url(migrated_template: str) -> AsyncIterator[str]:
    """A migrated database for this run, dropped at the end."""
    server, url = await create_test_database(template=migrated_template)
    yield url
    drop_later(server, url)


@pytest.fixture
async def migrated_database_url(migrated_template: str) -> AsyncIterator[str]:
    """A new, migrated database of its own, for tests that commit or start apps on it."""
    server, url = await create_test_database(template=migrated_template)
    try:
        yield url
    finally:
        drop_later(server, url)


def make_settings(database_url: str, **overrides: Any) -> Settings:
    """Test settings: cheap hashing, the run's database, no `.env`."""
    values: dict[str, Any] = {
        "environment": "test",
        "database": DatabaseSettings(url=SecretStr(database_url), statement_timeout_ms=5000),
        "security": SecuritySettings(
            jwt_secret=SecretStr(TEST_SECRET), argon2_time_cost=1, argon2_memory_kib=64
        ),
        "audit": AuditSettings(chain_key=SecretStr(TEST_CHAIN_KEY)),
        # The whole suite comes from one client IP; rate-limit tests set tight budgets.
        "rate_limit": RateLimitSettings(
            auth_per_ip=GENEROUS_LIMIT, credentials_per_ip=GENEROUS_LIMIT
        ),
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


@pytest.fixture
async def fresh_database_url() -> AsyncIterator[str]:
    """A new, empty database of its own (no migrations), dropped afterwards."""
    server, url = await create_test_database()
    try:
        yield url
    finally:
        drop_later(server, url)


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
def cli_database(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Point the CLI's settings at the test database and the tests' chain key."""
    monkeypatch.setenv("DATABASE__URL", database_url)
    monkeypatch.setenv("AUDIT__CHAIN_KEY", TEST_CHAIN_KEY)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


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


class CreateUser(Protocol):
    """Signature of the `create_user` fixture."""

    async def __call__(
        self,
        *,
        role: Role = Role.MEMBER,
        email: str | None = None,
        password: str = DEFAULT_PASSWORD,
        active: bool = True,
        full_name: str | None = None,
    ) -> uuid.UUID: ...


AuthHeaders = Callable[[uuid.UUID], Awaitable[dict[str, str]]]


@pytest.fixture
def create_user(app: FastAPI, db_session: AsyncSession) -> CreateUser:
    """Insert a user in the test's transaction; return its id."""

    async def create(
        *,
        role: Role = Role.MEMBER,
        email: str | None = None,
        password: str = DEFAULT_PASSWORD,
        active: bool = True,
        full_name: str | None = None,
    ) -> uuid.UUID:
        user = UserFactory.build(
            email=(email or unique_email()).lower(),
            full_name=full_name or f"Test {role.value.title()}",
            role=role.value,
            is_active=active,
            password_hash=await app.state.password_hasher.hash(normalise_password(password)),
        )
        await UserRepository(db_session).add(user=user)
        return user.id

    return create


@pytest.fixture
def auth_headers(app: FastAPI, db_session: AsyncSession) -> AuthHeaders:
    """Open a real session for a user and return `Authorization` headers for it."""

    async def headers(user_id: uuid.UUID) -> dict[str, str]:
        user = await db_session.get(User, user_id, populate_existing=True)
        assert user is not None
        sessions = build_session_service(
            db_session,
            audit=build_audit_service(db_session, settings=app.state.settings),
            settings=app.state.settings,
        )
        auth_session, _ = await sessions.start(user_id=user_id)
        token = app.state.token_codec.encode_access(
            subject=str(user_id), claims={"role": user.role, "sid": str(auth_session.id)}
        )
        return {"Authorization": f"Bearer {token}"}

    return headers


@pytest.fixture
async def admin_headers(create_user: CreateUser, auth_headers: AuthHeaders) -> dict[str, str]:
    """Headers of a fresh admin."""
    return await auth_headers(await create_user(role=Role.ADMIN))


@pytest.fixture
async def manager_headers(create_user: CreateUser, auth_headers: AuthHeaders) -> dict[str, str]:
    """Headers of a fresh manager."""
    return await auth_headers(await create_user(role=Role.MANAGER))


@pytest.fixture
async def member_headers(create_user: CreateUser, auth_headers: AuthHeaders) -> dict[str, str]:
    """Headers of a fresh member."""
    return await auth_headers(await create_user(role=Role.MEMBER))


@pytest.fixture
def captured(app: FastAPI) -> Iterator[Captured]:
    """The SQL statements and parameters the app's engine sends during the test, in order."""
    with capturing(app.state.engine) as statements:
        yield statements
