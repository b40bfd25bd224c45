"""The ceiling of the HTTP benchmark: the least an app can do per request on this machine.

A bare Starlette app answering every `GET /` with one asyncpg `SELECT 1` from a pool of 64
connections, served by uvicorn with the options of `python -m app.cli serve` and the same
settings (`SERVER__*`, `DATABASE__URL`). Roombook's request rates are reported as ratios to
this one, measured in the same run, so they compare across runs and machines.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import uvicorn
from sqlalchemy.engine import make_url
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from app.cli import server_options
from app.core.config import get_settings

POOL_SIZE = 64
"""Connections the ceiling keeps open, enough that no request waits for one."""


def asyncpg_dsn(url: str) -> str:
    """The plain `postgresql://` form of a SQLAlchemy URL, which asyncpg understands."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def select_one(request: Request) -> PlainTextResponse:
    """One round trip to PostgreSQL per request."""
    pool: asyncpg.Pool = request.app.state.pool
    async with pool.acquire() as connection:
        value = await connection.fetchval("SELECT 1")
    return PlainTextResponse(str(value))


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    """Open the pool before serving, close it after."""
    database = get_settings().database.url
    if database is None:
        raise RuntimeError("the ceiling app needs DATABASE__URL (the harness sets it)")
    dsn = asyncpg_dsn(database.get_secret_value())
    app.state.pool = await asyncpg.create_pool(dsn=dsn, min_size=POOL_SIZE, max_size=POOL_SIZE)
    try:
        yield
    finally:
        await app.state.pool.close()


def create_app() -> Starlette:
    """The ceiling app (a factory, as uvicorn is told by the shared serve options)."""
    return Starlette(routes=[Route("/", select_one)], lifespan=lifespan)


def main() -> None:
    """Serve the ceiling app with the uvicorn options of `python -m app.cli serve`."""
    uvicorn.run("benchmarks.ceiling:create_app", **server_options(get_settings(), reload=False))


if __name__ == "__main__":
    main()
