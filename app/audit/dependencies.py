"""Dependencies of the audit API: the request's audit service."""

from typing import Annotated

from fastapi import Depends, Request

from app.audit.service import AuditService, build_audit_service
from app.core.db import SessionDep


async def get_audit_service(request: Request, session: SessionDep) -> AuditService:
    """The request's one audit service (FastAPI caches it for every dependency that asks)."""
    return build_audit_service(session, settings=request.app.state.settings)


AuditServiceDep = Annotated[AuditService, Depends(get_audit_service)]
