"""Operator commands of the audit domain, run by `python -m app.cli`."""

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from sqlalchemy.exc import ProgrammingError

from app.audit.chain import ChainAnchor
from app.audit.schemas import ChainReport
from app.audit.service import AuditService, build_audit_service
from app.core.config import Settings
from app.core.db import create_engine, create_session_factory
from app.core.db_errors import sqlstate_of

UNDEFINED_TABLE = "42P01"


class ChainUnavailable(RuntimeError):
    """The database has no audit tables to verify."""


@asynccontextmanager
async def _audit(settings: Settings, *, url: str) -> AsyncIterator[AuditService]:
    engine = create_engine(settings.database, url=url)
    try:
        async with create_session_factory(engine)() as session:
            yield build_audit_service(session, settings=settings)
    except ProgrammingError as exc:
        if sqlstate_of(exc) != UNDEFINED_TABLE:
            raise
        raise ChainUnavailable(
            "no audit tables in this database: run `make migrate` first"
        ) from exc
    finally:
        await engine.dispose()


async def verify_chain(
    settings: Settings, *, url: str, anchors: Sequence[ChainAnchor] = ()
) -> ChainReport:
    """Walk the hash chain of the database at `url`, checking the given anchors too."""
    async with _audit(settings, url=url) as audit:
        return await audit.verify(anchors=anchors)


async def anchor_chain(settings: Settings, *, url: str) -> tuple[ChainReport, ChainAnchor]:
    """Verify the chain of the database at `url` and return its head as an anchor."""
    async with _audit(settings, url=url) as audit:
        return await audit.anchor()


def describe(report: ChainReport) -> str:
    """One line for the operator: `ok` or the first broken entry."""
    if report.broken is None:
        return f"ok: {report.checked} entries verified"
    broken = report.broken
    return (
        f"broken at seq {broken.seq} (id {broken.id}) after {report.checked} good entries: "
        f"{broken.reason}"
    )
