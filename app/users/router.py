"""`/users`: one's own account, and account administration for admins."""

import uuid
from typing import Annotated

from fastapi import Depends, Query, Request, Response, status

from app.auth.dependencies import AdminUser, CurrentUser, IdempotencyDep, limit_credentials
from app.core.openapi import problem_responses
from app.core.pagination import Page, PageRequestDep
from app.core.preconditions import IfMatch, etag, required_versions
from app.core.routing import DomainRouter
from app.core.types import QueryFlag, SingleLine
from app.users.dependencies import UserServiceDep
from app.users.models import User
from app.users.schemas import AdminUpdate, Role, SelfUpdate, UserCreate, UserFilter, UserRead

router = DomainRouter(prefix="/users", tags=["users"], responses=problem_responses(401))
UPDATE_PROBLEMS = problem_responses(404, 409, 412, 428)


def _read(user: User, response: Response) -> UserRead:
    response.headers["ETag"] = etag(user.version)
    return UserRead.model_validate(user)


@router.get("/me", name="get-me")
async def get_me(principal: CurrentUser, response: Response) -> UserRead:
    """The caller's own account; the `ETag` is needed to change it."""
    # The guard's query already read the account in this transaction: no second SELECT.
    response.headers["ETag"] = etag(principal.account.version)
    return principal.account


@router.patch(
    "/me",
    name="update-me",
    # A new email is confirmed with the password: the same per-IP budget as other password
    # checks keeps a stolen access token from becoming a password-guessing oracle.
    dependencies=[Depends(limit_credentials)],
    responses=problem_responses(403, 409, 412, 428, 429),
)
async def update_me(
    principal: CurrentUser,
    data: SelfUpdate,
    users: UserServiceDep,
    response: Response,
    if_match: IfMatch = None,
) -> UserRead:
    """Change one's name or email; a new email needs `current_password` (403 when wrong)."""
    user = await users.update_self(
        user_id=principal.id, expected_versions=required_versions(if_match), data=data
    )
    return _read(user, response)


@router.get("", name="list", responses=problem_responses(403))
async def list_users(
    _: AdminUser,
    users: UserServiceDep,
    page: PageRequestDep,
    role: Role | None = None,
    active: QueryFlag | None = None,
    q: Annotated[SingleLine | None, Query(min_length=1, max_length=100)] = None,
) -> Page[UserRead]:
    """Accounts, newest first, filtered by role, active flag and `q` (in email or name)."""
    items, next_key = await users.list_users(
        filters=UserFilter(role=role, active=active, q=q), page=page
    )
    return Page(items=items, next_cursor=page.cursor_after(next_key))


@router.post(
    "",
    name="create",
    status_code=status.HTTP_201_CREATED,
    response_model=UserRead,
    responses=problem_responses(403, 409),
)
async def create_user(
    _: AdminUser,
    data: UserCreate,
    users: UserServiceDep,
    idempotency: IdempotencyDep,
    request: Request,
    response: Response,
) -> Response:
    """Create an account with a role and an initial password; honours `Idempotency-Key`."""
    user = await users.create(data=data)
    response.headers["Location"] = f"{request.url.path.rstrip('/')}/{user.id}"
    return await idempotency.respond(_read(user, response))


# `:uuid` keeps `/users/me` from also matching `/users/{user_id}`: a DELETE of `/users/me`
# is a 405 naming GET and PATCH, and a malformed id names no user (404).
@router.get("/{user_id:uuid}", name="get", responses=problem_responses(403, 404))
async def get_user(
    _: AdminUser, user_id: uuid.UUID, users: UserServiceDep, response: Response
) -> UserRead:
    """One account; the `ETag` is needed to change it."""
    return _read(await users.get(user_id=user_id), response)


@router.patch(
    "/{user_id:uuid}", name="update", responses={**UPDATE_PROBLEMS, **problem_responses(403)}
)
async def update_user(
    _: AdminUser,
    user_id: uuid.UUID,
    data: AdminUpdate,
    users: UserServiceDep,
    response: Response,
    if_match: IfMatch = None,
) -> UserRead:
    """Change name, role or active flag; the last active admin keeps role and access (409)."""
    user = await users.update_by_admin(
        user_id=user_id, expected_versions=required_versions(if_match), data=data
    )
    return _read(user, response)


@router.delete(
    "/{user_id:uuid}", name="deactivate", responses={**UPDATE_PROBLEMS, **problem_responses(403)}
)
async def deactivate_user(
    _: AdminUser,
    user_id: uuid.UUID,
    users: UserServiceDep,
    response: Response,
    if_match: IfMatch = None,
) -> UserRead:
    """Deactivate an account (never deleted) and end all its sessions at once."""
    user = await users.deactivate(user_id=user_id, expected_versions=required_versions(if_match))
    return _read(user, response)
