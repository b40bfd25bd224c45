"""How requests get a UserService: on the request's audit, password and session services."""

from typing import Annotated

from fastapi import Depends, Request

from app.audit.dependencies import audit_service_for
from app.auth.dependencies import (
    password_check_service_for,
    password_service_for,
    session_service_for,
)
from app.core.db import SessionDep
from app.users.service import UserService, build_user_service


async def get_user_service(request: Request, session: SessionDep) -> UserService:
    """The request's UserService."""
    return build_user_service(
        session,
        audit=audit_service_for(request, session),
        passwords=password_service_for(request),
        sessions=session_service_for(request, session),
        password_checks=password_check_service_for(request, session),
    )


UserServiceDep = Annotated[UserService, Depends(get_user_service)]
