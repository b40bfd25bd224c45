"""Liveness and readiness probes, including a database outage and its recovery."""

from collections.abc import AsyncIterator

import pytest
from httpx import AsyncClient
from pydantic import SecretStr

from app.core.config import DatabaseSettings
from app.factory import create_app
from tests.conftest import make_settings
from tests.core.support import DatabaseProxy, assert_problem, serve


async def test_live_answers_without_database(client: AsyncClient) -> None:
    response = await client.get("/health/live")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_ready_checks_database(client: AsyncClient) -> None:
    response = await client.get("/health/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.fixture
async def proxy(database_url: str) -> AsyncIterator[DatabaseProxy]:
    """A cuttable TCP path to the test database."""
    proxy = DatabaseProxy(database_url)
    await proxy.start()
    yield proxy
    if proxy.running:
        await proxy.stop()


async def test_ready_is_503_while_database_is_down_and_200_once_back(
    database_url: str, proxy: DatabaseProxy
) -> None:
    settings = make_settings(
        database_url,
        database=DatabaseSettings(url=SecretStr(proxy.url), connect_timeout_s=1),
    )
    async with serve(create_app(settings)) as client:
        before = await client.get("/health/ready")
        await proxy.stop()
        down = await client.get("/health/ready")
        still_live = await client.get("/health/live")
        await proxy.start()
        back = await client.get("/health/ready")
    assert before.status_code == 200
    assert before.json() == {"status": "ok"}
    assert_problem(
        down,
        status=503,
        code="service-unavailable",
        instance="/health/ready",
        detail="The database is not reachable.",
        title="Service unavailable",
    )
    assert down.headers["retry-after"] == "5"
    assert still_live.json() == {"status": "ok"}
    assert back.status_code == 200
    assert back.json() == {"status": "ok"}
