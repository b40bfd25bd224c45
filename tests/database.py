"""Provision the per-run test database: embedded PostgreSQL unless TEST_DATABASE_URL is set."""

import asyncio
import os
import secrets
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from alembic import command
from sqlalchemy.engine import make_url

from app import devdb
from app.cli import alembic_config
from app.core.db import async_url


def server_url() -> str:
    """Admin URL of the server tests run on."""
    return os.environ.get("TEST_DATABASE_URL") or devdb.embedded_server_url()


async def _admin(url: str, statement: str) -> None:
    connection = await devdb.connect(url)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


async def create_test_database(*, template: str | None = None) -> tuple[str, str]:
    """Create a fresh database (a copy of the database `template` when named).

    Return (server URL, database URL).
    """
    server = server_url()
    name = f"roombook_test_{uuid.uuid4().hex[:10]}"
    copy = f' TEMPLATE "{template}"' if template else ""
    await _admin(server, f'CREATE DATABASE "{name}"{copy}')
    # A commit need not wait for its WAL to reach the disk: a crash of the test server loses
    # nothing a test needs, and every commit stays atomic and visible at once.
    await _admin(server, f'ALTER DATABASE "{name}" SET synchronous_commit TO off')
    return server, async_url(devdb.with_database(server, name))


async def drop_test_database(server: str, url: str) -> None:
    """Drop the run's database, closing whatever still uses it."""
    name = make_url(url).database
    await _admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


_pending_drops: set[asyncio.Task[None]] = set()


def drop_later(server: str, url: str) -> None:
    """Drop a test database in the background; `finish_drops` waits for all of them.

    PostgreSQL forces a checkpoint for every DROP DATABASE, which takes seconds on a busy
    server: no test needs to wait for it.
    """
    task = asyncio.get_running_loop().create_task(drop_test_database(server, url))
    _pending_drops.add(task)
    task.add_done_callback(_pending_drops.discard)


async def finish_drops() -> None:
    """Wait for every background drop; a failed one fails here."""
    while _pending_drops:
        await asyncio.gather(*_pending_drops)


async def migrate(url: str, revision: str = "head", *, down: bool = False) -> None:
    """Run Alembic against `url` in a worker thread (its env runs its own event loop)."""
    config = alembic_config()
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    action = command.downgrade if down else command.upgrade
    await asyncio.to_thread(action, config, revision)


@asynccontextmanager
async def login_role(url: str, purpose: str, *, options: str = "") -> AsyncIterator[str]:
    """A login role named after the database at `url`; yield its URL there, drop it after.

    Roles are cluster-wide, so the name carries the run's database and `purpose`.
    """
    name = f"{make_url(url).database}_{purpose}"
    password = secrets.token_hex(16)
    quoted = devdb.quote_ident(name)
    await _admin(url, f"CREATE ROLE {quoted} LOGIN PASSWORD '{password}' {options}")
    try:
        yield devdb.with_user(url, name, password=password)
    finally:
        # Its grants live in the database and must go before the role can.
        await _admin(url, f"DROP OWNED BY {quoted}")
        await _admin(url, f"DROP ROLE {quoted}")
