"""The floor of the HTTP benchmark: the least Roombook's own stack does for one read.

FastAPI, a request session from `app.core.db` committed through `SessionDep` as every
route's is, one `SELECT` of a user's public columns, and `UserRead` as the response model;
nothing else: no middleware, no authentication, no access log, no metrics. Every Roombook
route does at least this much, so no scenario's ratio to the ceiling can pass the floor's.
The gap from the ceiling down to the floor is the price of the stack the design card
prescribes (FastAPI, SQLAlchemy's async session); the gap below the floor is Roombook's.

Served like the ceiling, with the options of `python -m app.cli serve` and the same settings.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI
from sqlalchemy import bindparam, select

from app.cli import server_options
from app.core.config import get_settings
from app.core.db import SessionDep, create_engine, create_session_factory
from app.factory import settle_collector
from app.users.models import User
from app.users.schemas import UserRead
from benchmarks import seed

USERS = User.__table__
READ_USER = select(*(USERS.c[name] for name in UserRead.model_fields)).where(
    USERS.c.id == bindparam("user_id")
)
"""One user's public columns, by id: the statement `GET /users/me` also needs."""


async def read_user(session: SessionDep) -> UserRead:
    """One round trip through the request's session, answered through a response model."""
    row = (await session.execute(READ_USER, {"user_id": seed.user_id(seed.ADMIN)})).one()
    return UserRead.model_validate(row)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Open the engine Roombook would open (same pool, same timeouts), close it after."""
    database = get_settings().database
    if database.url is None:
        raise RuntimeError("the floor app needs DATABASE__URL (the harness sets it)")
    engine = create_engine(database, url=database.url.get_secret_value())
    app.state.session_factory = create_session_factory(engine)
    try:
        yield
    finally:
        await engine.dispose()


def create_app() -> FastAPI:
    """The floor app (a factory, as uvicorn is told by the shared serve options).

    Its collector is set as Roombook's served app sets its own, so that no route gains on
    the floor by a setting the floor lacks.
    """
    app = FastAPI(lifespan=lifespan, openapi_url=None)
    app.add_api_route("/", read_user, methods=["GET"], response_model=UserRead)
    settle_collector(get_settings().server)
    return app


def main() -> None:
    """Serve the floor app with the uvicorn options of `python -m app.cli serve`."""
    uvicorn.run("benchmarks.floor:create_app", **server_options(get_settings(), reload=False))


if __name__ == "__main__":
    main()
