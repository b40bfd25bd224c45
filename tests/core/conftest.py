"""Fixtures of the core suite: a scratch database and a clean settings cache."""

from collections.abc import AsyncIterator, Iterator

import pytest

from app.core.config import get_settings
from tests.database import create_test_database, drop_later


@pytest.fixture(scope="session")
async def scratch_url() -> AsyncIterator[str]:
    """An empty database (no migrations) for tables the core tests create themselves."""
    server, url = await create_test_database()
    yield url
    drop_later(server, url)


@pytest.fixture
def fresh_settings() -> Iterator[None]:
    """Forget the process settings before and after the test."""
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()
