"""Liveness and readiness probes."""

import asyncio

from fastapi import APIRouter, Request
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.errors import ServiceUnavailable

READY_TIMEOUT_S = 2.0

router = APIRouter(prefix="/health", tags=["health"])


class HealthStatus(BaseModel):
    """Probe answer."""

    status: str


@router.get("/live", name="live")
async def live() -> HealthStatus:
    """Answer without I/O: the process is up and serving."""
    return HealthStatus(status="ok")


@router.get("/ready", name="ready")
async def ready(request: Request) -> HealthStatus:
    """Answer 200 when the database responds in time, 503 problem otherwise."""
    engine: AsyncEngine = request.app.state.engine
    try:
        async with asyncio.timeout(READY_TIMEOUT_S), engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception as exc:  # whatever the failure, the answer is "not ready"
        raise ServiceUnavailable("The database is not reachable.") from exc
    return HealthStatus(status="ok")
