"""Fixtures of the audit tests."""

from collections.abc import Iterator

import pytest
from pydantic import SecretStr
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.chain import ChainKeys
from app.audit.models import AuditEvent
from app.audit.service import AuditService
from app.core.config import AuditSettings
from app.core.context import RequestContext, start_context
from tests.conftest import TEST_CHAIN_KEY

KEYS = ChainKeys.from_settings(AuditSettings(chain_key=SecretStr(TEST_CHAIN_KEY)))
"""The chain keys of the test settings."""


@pytest.fixture
def audit(db_session: AsyncSession) -> AuditService:
    """The audit service on the test's transaction."""
    return AuditService(db_session, keys=KEYS)


@pytest.fixture(autouse=True)
def clean_context() -> Iterator[None]:
    """Each test starts and ends outside any request."""
    start_context(RequestContext())
    yield
    start_context(RequestContext())


async def count_events(session: AsyncSession) -> int:
    """How many audit rows the session sees."""
    return (await session.scalar(select(func.count()).select_from(AuditEvent))) or 0


async def events_by_seq(session: AsyncSession) -> list[AuditEvent]:
    """Every audit row the session sees, in chain order."""
    return list((await session.scalars(select(AuditEvent).order_by(AuditEvent.seq))).all())
