"""Business rules of accounts: uniqueness, the last admin, versions, deactivation."""

import uuid
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.actions import AuditAction, AuditEntity
from app.audit.service import AuditService
from app.core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from app.core.pagination import PageRequest, SortValue
from app.core.preconditions import StaleVersion, check_version
from app.users.models import User
from app.users.repository import UserRepository
from app.users.schemas import AdminUpdate, Role, SelfUpdate, UserCreate, UserFilter, UserRead

FIELD_ACTIONS = {
    "full_name": AuditAction.USER_UPDATED,
    "email": AuditAction.USER_EMAIL_CHANGED,
    "role": AuditAction.USER_ROLE_CHANGED,
    "is_active": AuditAction.USER_DEACTIVATED,
}
"""The audit action of each changeable field (`is_active` becoming true is a reactivation)."""


class UserNotFound(NotFound):
    """No user has this id."""

    code = "user-not-found"
    title = "User not found"


class EmailTaken(Conflict):
    """Another account already uses this email."""

    code = "email-taken"
    title = "Email already registered"


class LastAdmin(Conflict):
    """The change would leave no active admin."""

    code = "last-admin"
    title = "Last active admin"


class CurrentPasswordInvalid(Forbidden):
    """The current password given to confirm a sensitive change is wrong."""

    code = "current-password-invalid"
    title = "Current password is wrong"


class PasswordPolicy(Protocol):
    """What users needs from auth's password service: policy-checked hashing."""

    async def hash_new(self, *, password: str, email: str, field: str = "password") -> str:
        """Check a new password against the policy (`ValidationFailed`), then hash it."""
        ...


class PasswordConfirmer(Protocol):
    """What users needs from auth: confirming a current password, throttled per account."""

    async def confirm(
        self, *, user_id: uuid.UUID, password_hash: str, password: str, purpose: str
    ) -> None:
        """Return if the password is right; raise `CurrentPasswordInvalid` (or a throttle error)."""
        ...


class SessionEnder(Protocol):
    """What users needs from auth: ending every session of a deactivated user."""

    async def end_deactivated(self, *, user_id: uuid.UUID) -> int:
        """End the user's sessions; return how many were live."""
        ...


@dataclass(frozen=True, slots=True)
class Credentials:
    """What login needs to know about an account, hash included; never leaves the services."""

    id: uuid.UUID
    email: str
    role: Role
    is_active: bool
    password_hash: str


def snapshot(user: User) -> dict[str, Any]:
    """The audited fields of a user (never the password hash)."""
    return {
        "email": user.email,
        "full_name": user.full_name,
        "role": user.role,
        "is_active": user.is_active,
    }


def credentials(user: User) -> Credentials:
    """What login needs of a user."""
    return Credentials(
        id=user.id,
        email=user.email,
        role=Role(user.role),
        is_active=user.is_active,
        password_hash=user.password_hash,
    )


class UserService:
    """Create, read, change and deactivate accounts; every change is audited.

    Built by `build_user_service`; auth's pieces arrive behind `PasswordPolicy` and
    `SessionEnder`, so this module imports nothing of auth.
    """

    def __init__(
        self,
        *,
        session: AsyncSession,
        audit: AuditService,
        passwords: PasswordPolicy,
        sessions: SessionEnder,
        password_checks: PasswordConfirmer,
    ) -> None:
        self.session = session
        self.repository = UserRepository(session)
        self.audit = audit
        self.passwords = passwords
        self.sessions = sessions
        self.password_checks = password_checks

    async def create(self, *, data: UserCreate, registered: bool = False) -> User:
        """Create an account; `registered` marks a self-service sign-up."""
        # The policy check and the hash run before the existence check, so a taken email
        # costs the same work and fails no earlier than a free one.
        password_hash = await self.passwords.hash_new(password=data.password, email=data.email)
        if await self.repository.email_taken(email=data.email):
            raise EmailTaken("An account with this email already exists.")
        user = User(
            id=uuid.uuid4(),
            email=data.email,
            full_name=data.full_name,
            role=data.role.value,
            is_active=True,
            password_hash=password_hash,
            version=1,
        )
        try:
            # A savepoint turns the race with a concurrent sign-up into `EmailTaken`, not a crash.
            async with self.session.begin_nested():
                await self.repository.add(user=user)
        except IntegrityError as exc:
            raise EmailTaken("An account with this email already exists.") from exc
        action = AuditAction.USER_REGISTERED if registered else AuditAction.USER_CREATED
        await self.audit.record(
            action=action, entity_type=AuditEntity.USER, entity_id=user.id, after=snapshot(user)
        )
        return user

    async def get(self, *, user_id: uuid.UUID) -> User:
        """Load a user, or raise `UserNotFound`."""
        user = await self.repository.get(user_id=user_id)
        if user is None:
            raise UserNotFound(f"No user has id {user_id}.")
        return user

    async def list_users(
        self, *, filters: UserFilter, page: PageRequest
    ) -> tuple[list[UserRead], tuple[SortValue, uuid.UUID] | None]:
        """One page of users matching the filters, newest first."""
        rows, next_key = await self.repository.list_page(filters=filters, page=page)
        return [UserRead.model_validate(row) for row in rows], next_key

    async def credentials_for(self, *, email: str) -> Credentials | None:
        """Login data of the account with this email, or None."""
        user = await self.repository.get_by_email(email=email)
        return None if user is None else credentials(user)

    async def credentials(self, *, user_id: uuid.UUID) -> Credentials:
        """Login data of an account, unlocked (`UserNotFound`)."""
        return credentials(await self.get(user_id=user_id))

    async def lock_credentials(self, *, user_id: uuid.UUID) -> Credentials:
        """Login data of an account, its row locked until the transaction ends (`UserNotFound`)."""
        user = await self.repository.get(user_id=user_id, for_update=True)
        if user is None:
            raise UserNotFound(f"No user has id {user_id}.")
        return credentials(user)

    async def update_self(
        self, *, user_id: uuid.UUID, expected_versions: frozenset[int], data: SelfUpdate
    ) -> User:
        """Change one's own name or email; a new email needs the current password.

        The user must be at one of `expected_versions` (`StaleVersion` otherwise).
        """
        user = await self.get(user_id=user_id)
        check_version(current=user.version, expected_versions=expected_versions, resource="user")
        values: dict[str, Any] = {}
        if data.full_name is not None and data.full_name != user.full_name:
            values["full_name"] = data.full_name
        if data.email is not None and data.email != user.email:
            await self._confirm_password(user=user, password=data.current_password)
            if await self.repository.email_taken(email=data.email):
                raise EmailTaken("An account with this email already exists.")
            values["email"] = data.email
        return await self._apply(user=user, values=values)

    async def update_by_admin(
        self, *, user_id: uuid.UUID, expected_versions: frozenset[int], data: AdminUpdate
    ) -> User:
        """Change a user's name, role or active flag, keeping at least one active admin."""
        user = await self.get(user_id=user_id)
        check_version(current=user.version, expected_versions=expected_versions, resource="user")
        values: dict[str, Any] = {}
        if data.full_name is not None and data.full_name != user.full_name:
            values["full_name"] = data.full_name
        if data.role is not None and data.role.value != user.role:
            values["role"] = data.role.value
        if data.is_active is not None and data.is_active != user.is_active:
            values["is_active"] = data.is_active
        if (
            user.role == Role.ADMIN
            and user.is_active
            and ("role" in values or "is_active" in values)
        ):
            await self._keep_an_admin(user_id=user.id)
        return await self._apply(user=user, values=values)

    async def deactivate(self, *, user_id: uuid.UUID, expected_versions: frozenset[int]) -> User:
        """Deactivate an account (never deleted); ends every session of it."""
        return await self.update_by_admin(
            user_id=user_id, expected_versions=expected_versions, data=AdminUpdate(is_active=False)
        )

    async def store_password(self, *, user_id: uuid.UUID, password_hash: str) -> None:
        """Replace a user's password hash (made from a policy-checked password by the caller)."""
        await self.repository.update(user_id=user_id, values={"password_hash": password_hash})
        await self.audit.record(
            action=AuditAction.USER_PASSWORD_CHANGED,
            entity_type=AuditEntity.USER,
            entity_id=user_id,
        )

    async def store_rehash(self, *, user_id: uuid.UUID, password_hash: str) -> None:
        """Keep a hash recomputed with the current parameters at login."""
        await self.repository.update(user_id=user_id, values={"password_hash": password_hash})
        await self.audit.record(
            action=AuditAction.USER_PASSWORD_REHASHED,
            entity_type=AuditEntity.USER,
            entity_id=user_id,
        )

    async def record_login(self, *, user_id: uuid.UUID) -> None:
        """Stamp the last successful login."""
        await self.repository.stamp_login(user_id=user_id)

    async def any_admin(self) -> bool:
        """Whether an admin account exists at all (bootstrap runs only when none does)."""
        return await self.repository.any_admin()

    async def _confirm_password(self, *, user: User, password: str | None) -> None:
        if password is None:
            raise ValidationFailed(
                [
                    {
                        "field": "current_password",
                        "message": "Changing the email needs the current password.",
                        "type": "missing",
                    }
                ]
            )
        await self.password_checks.confirm(
            user_id=user.id,
            password_hash=user.password_hash,
            password=password,
            purpose="email_change",
        )

    async def _keep_an_admin(self, *, user_id: uuid.UUID) -> None:
        admins = await self.repository.lock_active_admins()
        if admins == [user_id]:
            raise LastAdmin("At least one active admin must remain.")

    async def _apply(self, *, user: User, values: dict[str, Any]) -> User:
        if not values:
            return user
        before = snapshot(user)
        updated = await self._update_versioned(user=user, values=values)
        if updated is None:
            raise StaleVersion("The user was changed concurrently; read it again.")
        if "is_active" in values and not updated.is_active:
            # Deactivation ends every session now; the guard also checks the flag. Sessions
            # are locked before the first audit entry takes the audit head: every writer
            # locks users, then sessions, then the head, so a refresh cannot deadlock this.
            await self.sessions.end_deactivated(user_id=updated.id)
        await self._audit_changes(before=before, user=updated, values=values)
        return updated

    async def _update_versioned(self, *, user: User, values: dict[str, Any]) -> User | None:
        if "email" not in values:
            return await self.repository.update_versioned(
                user_id=user.id, version=user.version, values=values
            )
        try:
            # Another account may take the address between the check and this write: the
            # savepoint turns the unique violation into `EmailTaken` and keeps the request usable.
            async with self.session.begin_nested():
                return await self.repository.update_versioned(
                    user_id=user.id, version=user.version, values=values
                )
        except IntegrityError as exc:
            raise EmailTaken("An account with this email already exists.") from exc

    async def _audit_changes(
        self, *, before: dict[str, Any], user: User, values: dict[str, Any]
    ) -> None:
        after = snapshot(user)
        for field, action in FIELD_ACTIONS.items():
            if field not in values:
                continue
            reactivated = field == "is_active" and user.is_active
            await self.audit.record(
                action=AuditAction.USER_REACTIVATED if reactivated else action,
                entity_type=AuditEntity.USER,
                entity_id=user.id,
                before={field: before[field]},
                after={field: after[field]},
            )


def build_user_service(
    session: AsyncSession,
    *,
    audit: AuditService,
    passwords: PasswordPolicy,
    sessions: SessionEnder,
    password_checks: PasswordConfirmer,
) -> UserService:
    """The user service on a session, sharing the unit of work's audit and session services."""
    return UserService(
        session=session,
        audit=audit,
        passwords=passwords,
        sessions=sessions,
        password_checks=password_checks,
    )
