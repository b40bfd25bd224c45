"""Dependencies of the audit API: the request's audit service."""

from typing import Annotated

from fastapi import Depends

from app.audit.service import AuditService
from app.core.db import SessionDep


def get_audit_service(session: SessionDep) -> AuditService:
    """Build the audit service on the request's session."""
    return AuditService(session)


AuditServiceDep = Annotated[AuditService, Depends(get_audit_service)]
