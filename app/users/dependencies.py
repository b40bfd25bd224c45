"""How requests get a UserService, and the `If-Match` precondition every user update needs."""

import re
from typing import Annotated

from fastapi import Depends, Header, Request
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.service import AuditService
from app.auth.passwords import PasswordService
from app.auth.service import SessionService
from app.core.config import Settings
from app.core.db import SessionDep
from app.core.errors import PreconditionFailed, PreconditionRequired
from app.core.security import PasswordHasher
from app.users.service import UserService

ETAG_PATTERN = re.compile(r'^(?:W/)?"(\d{1,9})"$')


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


def etag(version: int) -> str:
    """The strong ETag of a user version."""
    return f'"{version}"'


def if_match_version(
    if_match: Annotated[str | None, Header(alias="If-Match", max_length=64)] = None,
) -> int:
    """The version named by `If-Match`: 428 when missing, 412 when it names no version."""
    if if_match is None or if_match.strip() == "*":
        raise PreconditionRequired(
            "Send If-Match with the ETag from GET, so concurrent changes are not lost."
        )
    match = ETAG_PATTERN.fullmatch(if_match.strip())
    if match is None:
        raise PreconditionFailed("If-Match names no version of this user.")
    return int(match.group(1))


IfMatchVersion = Annotated[int, Depends(if_match_version)]
