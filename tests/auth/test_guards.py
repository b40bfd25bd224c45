"""The role guard itself: `require_role` admits the listed roles and refuses the rest."""

import uuid

import pytest

from app.auth.dependencies import Principal, RoleGuard, require_role
from app.core.errors import AppError
from app.users.schemas import Role


async def test_require_role_admits_listed_roles_only() -> None:
    guard = require_role(Role.MANAGER, Role.ADMIN)
    assert guard == RoleGuard(frozenset({Role.MANAGER, Role.ADMIN}))
    principal = Principal(id=uuid.uuid4(), role=Role.MANAGER, session_id=uuid.uuid4())
    assert await guard(principal) is principal
    with pytest.raises(AppError) as refused:
        await guard(Principal(id=uuid.uuid4(), role=Role.MEMBER, session_id=uuid.uuid4()))
    assert refused.value.status == 403
    assert refused.value.code == "role-forbidden"
