"""The first admin: created once at startup from settings, or by `make create-admin`."""

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.audit.actions import AuditAction, AuditEntity
from app.audit.service import AuditService
from app.core.config import Settings
from app.core.errors import AppError
from app.core.security import PasswordHasher
from app.users.dependencies import build_user_service
from app.users.schemas import Role, UserCreate, UserRead

BOOTSTRAP_LOCK_KEY = 0x526F6F6D  # "Room": one advisory lock id for the bootstrap
"""Advisory lock taken while bootstrapping, so several workers starting at once create one admin."""

log = structlog.get_logger("roombook.auth")


async def create_admin(
    session: AsyncSession,
    *,
    hasher: PasswordHasher,
    settings: Settings,
    email: str,
    password: str,
    full_name: str,
) -> UserRead:
    """Create an admin account in the session's transaction (policy and uniqueness apply)."""
    users = build_user_service(session, hasher=hasher, settings=settings)
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
        users = build_user_service(session, hasher=hasher, settings=settings)
        if await users.any_admin():
            return None
        try:
            user = await create_admin(
                session,
                hasher=hasher,
                settings=settings,
                email=email,
                password=password.get_secret_value(),
                full_name=settings.auth.bootstrap_admin_name,
            )
        except AppError as exc:
            log.warning("admin bootstrap refused", reason=exc.detail)
            return None
        await AuditService(session).record(
            action=AuditAction.AUTH_ADMIN_BOOTSTRAPPED,
            entity_type=AuditEntity.USER,
            entity_id=user.id,
        )
    log.info("bootstrap admin created", user_id=str(user.id))
    return user
