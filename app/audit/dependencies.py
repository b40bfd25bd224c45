"""Dependencies of the audit API: the request's audit service."""

from typing import Annotated

from fastapi import Depends

from app.audit.service import AuditService, build_audit_service
from app.core.db import SessionDep


async def get_audit_service(session: SessionDep) -> AuditService:
    """The request's one audit service (FastAPI caches it for every dependency that asks)."""
    return build_audit_service(session)


AuditServiceDep = Annotated[AuditService, Depends(get_audit_service)]
