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

ENTITY_TAG = re.compile(r'\s*(W/)?"([\x21\x23-\x7e]*)"\s*(?:,|$)')
"""One entity tag of an `If-Match` list (RFC 9110 section 8.8.3), with the comma after it."""
VERSION_TAG = re.compile(r"\d{1,9}")


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


def parse_if_match(value: str) -> frozenset[int]:
    """The versions named by strong entity tags of an `If-Match` list.

    `If-Match` uses strong comparison (RFC 9110 section 13.1.1): a weak tag (`W/"3"`)
    never matches, so it names no version. A malformed list names none either.
    """
    versions: set[int] = set()
    position = 0
    while position < len(value):
        match = ENTITY_TAG.match(value, position)
        if match is None:
            return frozenset()
        weak, opaque = match.groups()
        if not weak and VERSION_TAG.fullmatch(opaque):
            versions.add(int(opaque))
        position = match.end()
    return frozenset(versions)


def if_match_versions(
    if_match: Annotated[
        str | None,
        Header(
            alias="If-Match",
            max_length=256,
            description="The `ETag` from GET (strong; a list may name several). `*` is refused.",
        ),
    ] = None,
) -> frozenset[int]:
    """The versions `If-Match` accepts: 428 when missing or `*`, 412 when it names none.

    `*` would match any version and so protect nothing against lost updates: it is
    refused like a missing header, and the caller is told to send the ETag from GET.
    """
    if if_match is None or if_match.strip() == "*":
        raise PreconditionRequired(
            "Send If-Match with the ETag from GET, so concurrent changes are not lost."
        )
    versions = parse_if_match(if_match)
    if not versions:
        raise PreconditionFailed("If-Match names no version of this user (strong ETags only).")
    return versions


IfMatchVersions = Annotated[frozenset[int], Depends(if_match_versions)]
