"""How requests get a UserService."""

from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.service import AuditService
from app.auth.passwords import PasswordService
from app.auth.service import SessionService
from app.core.config import Settings
from app.core.db import SessionDep
from app.core.security import PasswordHasher
from app.users.service import UserService


def password_service(*, hasher: PasswordHasher, settings: Settings) -> PasswordService:
    """The password policy and hasher configured by settings."""
    return PasswordService(hasher=hasher, min_length=settings.auth.password_min_length)


def build_user_service(
    session: AsyncSession, *, hasher: PasswordHasher, settings: Settings
) -> UserService:
    """Wire a UserService on a session (requests, CLI and startup alike)."""
    audit = AuditService(session)
    return UserService(
        session=session,
        audit=audit,
        passwords=password_service(hasher=hasher, settings=settings),
        sessions=SessionService(session=session, audit=audit, settings=settings.auth),
    )


def get_user_service(request: Request, session: SessionDep) -> UserService:
    """The request's UserService."""
    return build_user_service(
        session, hasher=request.app.state.password_hasher, settings=request.app.state.settings
    )


UserServiceDep = Annotated[UserService, Depends(get_user_service)]
