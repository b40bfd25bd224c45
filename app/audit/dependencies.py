"""Dependencies of the audit API: the request's audit service."""

from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.service import AuditService, build_audit_service
from app.core.db import SessionDep, shared_in_unit_of_work


def audit_service_for(request: Request, session: AsyncSession) -> AuditService:
    """The unit of work's one audit service, which every other service of it writes through."""
    settings = request.app.state.settings
    return shared_in_unit_of_work(
        session, AuditService, lambda: build_audit_service(session, settings=settings)
    )


async def get_audit_service(request: Request, session: SessionDep) -> AuditService:
    """The request's one audit service."""
    return audit_service_for(request, session)


AuditServiceDep = Annotated[AuditService, Depends(get_audit_service)]
