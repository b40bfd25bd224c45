"""The floor app reads the bench's admin through the request session, and nothing more."""

import gc

import asyncpg
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.chain import ChainKeys
from app.core.config import AuditSettings, ServerSettings
from benchmarks import floor, seed
from tests.core.support import captured_statements


async def test_the_floor_answers_the_admin_with_one_statement(
    app: FastAPI, db_session: AsyncSession
) -> None:
    plan = seed.SeedPlan(
        password_hash="unused",
        chain_keys=ChainKeys.from_settings(AuditSettings()),
        users=2,
        token_users=1,
        audit_events=0,
        rooms=0,
        bookings=0,
    )
    connection = await db_session.connection()
    driver: asyncpg.Connection = (await connection.get_raw_connection()).driver_connection
    await seed.seed_users(driver, plan)
    thresholds = gc.get_threshold()
    try:
        floor_app = floor.create_app()
        # The floor's collector is set as the served app's is.
        assert gc.get_threshold()[0] == ServerSettings().gc_young_threshold
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
    # The test's transaction stands in for the lifespan's engine.
    floor_app.state.session_factory = app.state.session_factory

    transport = ASGITransport(app=floor_app)
    with captured_statements(app.state.engine) as captured:
        async with AsyncClient(transport=transport, base_url="http://floor") as client:
            response = await client.get("/")

    assert response.status_code == 200, response.text
    assert response.json()["id"] == str(seed.user_id(seed.ADMIN))
    assert response.json()["email"] == seed.user_email(seed.ADMIN)
    assert "password_hash" not in response.json()
    reads = [statement for statement, _ in captured if statement.startswith("SELECT")]
    assert len(reads) == 1, reads
    assert "FROM users" in reads[0]
