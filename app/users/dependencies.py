"""How requests get a UserService: the request's audit, password and session services."""

from typing import Annotated

from fastapi import Depends

from app.audit.dependencies import AuditServiceDep
from app.auth.dependencies import PasswordCheckServiceDep, PasswordServiceDep, SessionServiceDep
from app.core.db import SessionDep
from app.users.service import UserService, build_user_service


async def get_user_service(
    session: SessionDep,
    audit: AuditServiceDep,
    passwords: PasswordServiceDep,
    sessions: SessionServiceDep,
    password_checks: PasswordCheckServiceDep,
) -> UserService:
    """The request's UserService."""
    return build_user_service(
        session,
        audit=audit,
        passwords=passwords,
        sessions=sessions,
        password_checks=password_checks,
    )


UserServiceDep = Annotated[UserService, Depends(get_user_service)]
