"""Every query on the `users` table."""

import uuid
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import Row, Select, bindparam, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.db import LIKE_ESCAPE, contains_pattern, update_bumping_version
from app.core.pagination import PageRequest, SortValue, fetch_prebuilt_page, keyset_statement
from app.users.models import User
from app.users.schemas import Role, UserFilter, UserRead

READ_COLUMNS = tuple(User.__table__.c[name] for name in UserRead.model_fields)
"""The columns of `UserRead`: a list reads them as plain rows, not as tracked ORM objects."""


@lru_cache(maxsize=32)
def users_page_statement(
    *, by_role: bool, by_active: bool, by_text: bool, after: bool
) -> Select[Any]:
    """A page of users' public columns, newest first, for one combination of filters.

    Core rows: nothing on a page is changed, so the identity map would only add work.
    """
    statement = select(*READ_COLUMNS)
    if by_role:
        statement = statement.where(User.role == bindparam("role"))
    if by_active:
        statement = statement.where(User.is_active == bindparam("active"))
    if by_text:
        pattern = bindparam("pattern", type_=User.email.type)
        statement = statement.where(
            or_(
                User.email.ilike(pattern, escape=LIKE_ESCAPE),
                User.full_name.ilike(pattern, escape=LIKE_ESCAPE),
            )
        )
    return keyset_statement(statement, sort_column=User.created_at, id_column=User.id, after=after)


class UserRepository:
    """Reads and writes users in the caller's session."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, *, user_id: uuid.UUID, for_update: bool = False) -> User | None:
        """Load one user by id; `for_update` locks the row and reads its latest state."""
        if for_update:
            # FOR NO KEY UPDATE, as the UPDATE that follows takes: inserts of rows that
            # point at the user (sessions at login) need not wait for it.
            return await self.session.get(
                User, user_id, with_for_update={"key_share": True}, populate_existing=True
            )
        return await self.session.get(User, user_id)

    async def get_by_email(self, *, email: str) -> User | None:
        """Load one user by email (case-insensitive through citext)."""
        return await self.session.scalar(select(User).where(User.email == email))

    async def email_taken(self, *, email: str) -> bool:
        """Whether any account, active or not, uses this email."""
        found = await self.session.scalar(select(User.id).where(User.email == email))
        return found is not None

    async def add(self, *, user: User) -> User:
        """Insert a user and read back its server-set columns."""
        self.session.add(user)
        await self.session.flush()
        return user

    async def list_page(
        self, *, filters: UserFilter, page: PageRequest
    ) -> tuple[Sequence[Row[Any]], tuple[SortValue, uuid.UUID] | None]:
        """One page of matching users' public columns, newest first."""
        statement = users_page_statement(
            by_role=filters.role is not None,
            by_active=filters.active is not None,
            by_text=bool(filters.q),
            after=page.after is not None,
        )
        parameters: dict[str, Any] = {
            "role": None if filters.role is None else filters.role.value,
            "active": filters.active,
            "pattern": contains_pattern(filters.q) if filters.q else None,
        }
        return await fetch_prebuilt_page(
            self.session,
            statement=statement,
            parameters=parameters,
            sort_key="created_at",
            id_key="id",
            page=page,
        )

    async def update_versioned(
        self, *, user_id: uuid.UUID, version: int, values: Mapping[str, Any]
    ) -> User | None:
        """Apply `values` only if the row still has `version`; None when it moved on.

        The version test and bump happen in one UPDATE: of two writers holding the same
        version, the second waits on the row lock, re-reads it, no longer matches, and
        updates nothing.
        """
        return await update_bumping_version(
            self.session,
            User,
            where=(
                User.id == user_id,
                User.version == version,
            ),
            values=values,
        )

    async def update(self, *, user_id: uuid.UUID, values: Mapping[str, Any]) -> User | None:
        """Apply `values` whatever the version (internal bookkeeping), bumping it."""
        return await update_bumping_version(
            self.session, User, where=(User.id == user_id,), values=values
        )

    async def stamp_login(self, *, user_id: uuid.UUID) -> None:
        """Set the last successful login to the database clock (a change of the representation)."""
        await self.update(user_id=user_id, values={"last_login_at": func.now()})

    async def lock_active_admins(self) -> list[uuid.UUID]:
        """Lock every active admin row until the transaction ends and return their ids.

        Two admins demoting each other at once would each see the other still active;
        locking the set first makes the second wait and then count again.
        """
        statement = (
            select(User.id)
            .where(User.role == Role.ADMIN.value, User.is_active.is_(True))
            .order_by(User.id)
            .with_for_update()
        )
        return list((await self.session.scalars(statement)).all())

    async def any_admin(self) -> bool:
        """Whether an admin account exists, active or not."""
        found = await self.session.scalar(
            select(User.id).where(User.role == Role.ADMIN.value).limit(1)
        )
        return found is not None
