"""Walk the route table: every non-public route needs a token, every role guard holds.

A route added without a guard, or with a looser one than its `require_role`, fails here.
"""

import re
import uuid
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from httpx import AsyncClient

from app.auth.dependencies import Principal, RoleGuard, require_role
from app.core.errors import AppError
from app.users.schemas import Role

API = "/api/v1"
PUBLIC = frozenset(
    {
        ("POST", f"{API}/auth/register"),
        ("POST", f"{API}/auth/login"),
        ("POST", f"{API}/auth/refresh"),
    }
)
"""The only routes an anonymous caller may reach; everything else must answer 401."""
PATH_PARAM = re.compile(r"\{[^}]+\}")


def api_routes(app: FastAPI) -> Iterator[tuple[str, str, RouteContext]]:
    """Every (method, path, route as included) under the API prefix."""
    for route in iter_route_contexts(app.routes):
        path = route.path or ""
        if isinstance(route.original_route, APIRoute) and path.startswith(API):
            for method in sorted(route.methods or ()):
                yield method, path, route


def guarded_roles(dependant: Dependant) -> frozenset[Role] | None:
    """The roles a route admits through `require_role` guards, or None without any."""
    roles: frozenset[Role] | None = None
    for dependency in dependant.dependencies:
        if isinstance(dependency.call, RoleGuard):
            roles = dependency.call.roles if roles is None else roles & dependency.call.roles
        inner = guarded_roles(dependency)
        if inner is not None:
            roles = inner if roles is None else roles & inner
    return roles


def concrete(path: str) -> str:
    """Fill every path parameter with a random UUID."""
    return PATH_PARAM.sub(lambda _: str(uuid.uuid4()), path)


def test_the_public_allow_list_names_real_routes(app: FastAPI) -> None:
    routes = {(method, path) for method, path, _ in api_routes(app)}
    assert routes >= PUBLIC


def test_role_guards_are_found_on_the_admin_routes(app: FastAPI) -> None:
    admin_only = {
        path
        for _, path, route in api_routes(app)
        if guarded_roles(route.dependant) == frozenset({Role.ADMIN})
    }
    assert {f"{API}/users", f"{API}/users/{{user_id}}"} <= admin_only


async def test_every_non_public_route_rejects_anonymous_callers(
    app: FastAPI, client: AsyncClient
) -> None:
    checked = []
    for method, path, _ in api_routes(app):
        if (method, path) in PUBLIC:
            continue
        response = await client.request(method, concrete(path))
        assert response.status_code == 401, (method, path, response.status_code)
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["code"] == "not-authenticated"
        checked.append((method, path))
    assert ("GET", f"{API}/users/me") in checked


@pytest.mark.parametrize("role", [Role.MEMBER, Role.MANAGER])
async def test_role_guarded_routes_reject_lesser_roles(
    app: FastAPI,
    client: AsyncClient,
    member_headers: dict[str, str],
    manager_headers: dict[str, str],
    role: Role,
) -> None:
    headers = member_headers if role is Role.MEMBER else manager_headers
    refused = []
    for method, path, route in api_routes(app):
        roles = guarded_roles(route.dependant)
        if roles is None or role in roles:
            continue
        response = await client.request(method, concrete(path), headers=headers)
        assert response.status_code == 403, (method, path, response.status_code)
        assert response.json()["code"] == "role-forbidden"
        refused.append((method, path))
    assert ("GET", f"{API}/users") in refused


async def test_require_role_admits_listed_roles_only() -> None:
    guard = require_role(Role.MANAGER, Role.ADMIN)
    principal = Principal(
        id=uuid.uuid4(), role=Role.MANAGER, session_id=uuid.uuid4(), email="m@x.io"
    )
    assert await guard(principal) is principal
    with pytest.raises(AppError) as refused:
        await guard(
            Principal(id=uuid.uuid4(), role=Role.MEMBER, session_id=uuid.uuid4(), email="m@x.io")
        )
    assert refused.value.status == 403
