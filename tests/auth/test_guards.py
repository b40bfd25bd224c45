"""The role guard itself: `require_role` admits the listed roles and refuses the rest."""

import uuid
from datetime import UTC, datetime

import pytest

from app.auth.dependencies import Principal, RoleGuard, require_role
from app.core.errors import AppError
from app.users.schemas import Role, UserRead


def principal_with(role: Role) -> Principal:
    """A caller with `role`, as the guard would build it."""
    now = datetime.now(UTC)
    account = UserRead(
        id=uuid.uuid4(),
        email="someone@example.org",
        full_name="Someone",
        role=role,
        is_active=True,
        version=1,
        created_at=now,
        updated_at=now,
        last_login_at=None,
    )
    return Principal(id=account.id, role=role, session_id=uuid.uuid4(), account=account)


async def test_require_role_admits_listed_roles_only() -> None:
    guard = require_role(Role.MANAGER, Role.ADMIN)
    assert guard == RoleGuard(frozenset({Role.MANAGER, Role.ADMIN}))
    principal = principal_with(Role.MANAGER)
    assert await guard(principal) is principal
    with pytest.raises(AppError) as refused:
        await guard(principal_with(Role.MEMBER))
    assert refused.value.status == 403
    assert refused.value.code == "role-forbidden"
