"""Helpers of the auth tests: login calls, HTTPS clients for the Secure cookie, extra apps."""

import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, contextmanager
from typing import Any

import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.audit.models import AuditEvent
from app.auth.passwords import normalise_password
from app.factory import create_app
from app.users.models import User
from app.users.repository import UserRepository
from app.users.schemas import Role
from tests.conftest import DEFAULT_PASSWORD, make_settings

LOGIN = "/api/v1/auth/login"
REFRESH = "/api/v1/auth/refresh"
LOGOUT = "/api/v1/auth/logout"
REGISTER = "/api/v1/auth/register"
SESSIONS = "/api/v1/auth/sessions"
PASSWORD = "/api/v1/auth/password"
ME = "/api/v1/users/me"
COOKIE = "roombook_refresh"

BuildApp = Callable[..., Awaitable[tuple[FastAPI, AsyncClient]]]


async def login(
    client: AsyncClient,
    email: str,
    password: str = DEFAULT_PASSWORD,
    *,
    delivery: str = "body",
    headers: dict[str, str] | None = None,
) -> Response:
    """POST the login form."""
    return await client.post(
        LOGIN,
        data={"username": email, "password": password, "refresh_token_delivery": delivery},
        headers=headers,
    )


def bearer(token: str) -> dict[str, str]:
    """Authorization header for an access token."""
    return {"Authorization": f"Bearer {token}"}


def without_request_id(body: dict[str, Any]) -> dict[str, Any]:
    """A problem body minus its per-request id, to compare two answers."""
    return {k: v for k, v in body.items() if k != "request_id"}


@pytest.fixture
async def https_client(app: FastAPI, db_session: AsyncSession) -> AsyncIterator[AsyncClient]:
    """Like `client`, over https so the Secure refresh cookie is stored and sent back."""
    async with AsyncClient(transport=ASGITransport(app=app), base_url="https://testserver") as c:
        yield c


@pytest.fixture
async def build_app(database_url: str, db_session: AsyncSession) -> AsyncIterator[BuildApp]:
    """Build extra apps with setting overrides, sharing the test's transaction."""
    async with AsyncExitStack() as stack:

        async def build(**overrides: Any) -> tuple[FastAPI, AsyncClient]:
            application = create_app(make_settings(database_url, **overrides))
            await stack.enter_async_context(LifespanManager(application))
            application.state.session_factory = async_sessionmaker(
                bind=db_session.bind,
                expire_on_commit=False,
                join_transaction_mode="create_savepoint",
            )
            client = await stack.enter_async_context(
                AsyncClient(transport=ASGITransport(app=application), base_url="https://testserver")
            )
            return application, client

        yield build


async def audit_actions(session: AsyncSession, *, entity_id: object | None = None) -> list[str]:
    """Actions recorded in the audit trail (optionally for one entity), oldest first."""
    statement = select(AuditEvent.action).order_by(AuditEvent.seq)
    if entity_id is not None:
        statement = statement.where(AuditEvent.entity_id == str(entity_id))
    return list((await session.scalars(statement)).all())


async def audit_changes(session: AsyncSession, *, action: str) -> list[dict[str, Any]]:
    """The `changes` of every audit entry with this action, oldest first."""
    statement = (
        select(AuditEvent.changes).where(AuditEvent.action == action).order_by(AuditEvent.seq)
    )
    return list((await session.scalars(statement)).all())


async def committed_user(
    app: FastAPI, *, email: str, role: Role = Role.MEMBER, password: str = DEFAULT_PASSWORD
) -> uuid.UUID:
    """Insert and commit a user, for tests whose requests really commit."""
    factory: async_sessionmaker[AsyncSession] = app.state.session_factory
    async with factory() as session, session.begin():
        user = User(
            id=uuid.uuid4(),
            email=email,
            full_name="Committed User",
            role=role.value,
            is_active=True,
            password_hash=await app.state.password_hasher.hash(normalise_password(password)),
            version=1,
        )
        await UserRepository(session).add(user=user)
    return user.id


class RawLogs(logging.Handler):
    """Collects every log record as raw text, before any redaction or formatting."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        """Keep the message and every extra attribute of the record."""
        self.lines.append(f"{record.msg!r} {record.args!r} {record.__dict__!r}")

    @property
    def text(self) -> str:
        """Everything logged so far."""
        return "\n".join(self.lines)


@contextmanager
def raw_logs() -> Iterator[RawLogs]:
    """Capture every record reaching the root logger, at DEBUG and up, unredacted."""
    root = logging.getLogger()
    handler = RawLogs()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)
