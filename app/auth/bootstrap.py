"""The first admin: created once at startup from settings, or by `make create-admin`."""

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.audit.actions import AuditAction, AuditEntity
from app.audit.service import AuditService, build_audit_service
from app.auth.passwords import build_password_service
from app.auth.service import build_password_check_service, build_session_service
from app.core.config import Settings
from app.core.errors import AppError
from app.core.security import PasswordHasher
from app.users.schemas import Role, UserCreate, UserRead
from app.users.service import UserService, build_user_service

BOOTSTRAP_LOCK_KEY = 0x526F6F6D  # "Room": one advisory lock id for the bootstrap
"""Advisory lock taken while bootstrapping, so several workers starting at once create one admin."""

log = structlog.get_logger("roombook.auth")


def build_account_services(
    session: AsyncSession, *, hasher: PasswordHasher, settings: Settings
) -> tuple[AuditService, UserService]:
    """The audit and user services of a unit of work outside a request (CLI and startup)."""
    audit = build_audit_service(session, settings=settings)
    sessions = build_session_service(session, audit=audit, settings=settings)
    passwords = build_password_service(hasher=hasher, settings=settings)
    return audit, build_user_service(
        session,
        audit=audit,
        passwords=passwords,
        sessions=sessions,
        password_checks=build_password_check_service(
            session, audit=audit, passwords=passwords, settings=settings
        ),
    )


async def create_admin(
    users: UserService, *, email: str, password: str, full_name: str
) -> UserRead:
    """Create an admin account in the users service's transaction (policy, uniqueness apply)."""
    data = UserCreate(email=email, full_name=full_name, password=password, role=Role.ADMIN)
    return UserRead.model_validate(await users.create(data=data))


async def bootstrap_admin(
    factory: async_sessionmaker[AsyncSession], *, hasher: PasswordHasher, settings: Settings
) -> UserRead | None:
    """Create the configured admin if no admin exists yet; otherwise do nothing.

    Only ever creates: an existing account with that email is never promoted, so a
    leaked setting cannot take over someone else's account.
    """
    email, password = settings.auth.bootstrap_admin_email, settings.auth.bootstrap_admin_password
    if not email or password is None:
        return None
    async with factory() as session, session.begin():
        # Workers start together; the lock makes the check-then-create happen once.
        await session.execute(
            text("SELECT pg_advisory_xact_lock(:key)"), {"key": BOOTSTRAP_LOCK_KEY}
        )
        audit, users = build_account_services(session, hasher=hasher, settings=settings)
        if await users.any_admin():
            return None
        try:
            user = await create_admin(
                users,
                email=email,
                password=password.get_secret_value(),
                full_name=settings.auth.bootstrap_admin_name,
            )
        except AppError as exc:
            log.warning("admin bootstrap refused", reason=exc.detail)
            return None
        await audit.record(
            action=AuditAction.AUTH_ADMIN_BOOTSTRAPPED,
            entity_type=AuditEntity.USER,
            entity_id=user.id,
        )
    log.info("bootstrap admin created", user_id=str(user.id))
    return user
