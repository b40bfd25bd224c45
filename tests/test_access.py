"""The app's route access table, walked: every route of every domain, every guard, every role.

A route added without an entry in `ACCESS` fails here, and so does a route whose guards
(found in its dependency graph and tried over HTTP) are looser or stricter than declared.
"""

import re
import uuid
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from httpx import AsyncClient
from starlette.routing import Mount

from app.auth.dependencies import RoleGuard, get_current_user
from app.users.schemas import Role
from tests.conftest import AuthHeaders, CreateUser

API = "/api/v1"
ANYONE: frozenset[Role] | None = None
"""No token needed."""
SIGNED_IN = frozenset(Role)
"""Any valid access token of a live session, whatever the role."""
ADMIN = frozenset({Role.ADMIN})
MANAGER = frozenset({Role.MANAGER, Role.ADMIN})

ACCESS: dict[tuple[str, str], frozenset[Role] | None] = {
    ("GET", "/openapi.json"): ANYONE,
    ("GET", "/docs"): ANYONE,
    ("GET", "/docs/oauth2-redirect"): ANYONE,
    ("GET", "/redoc"): ANYONE,
    ("GET", "/health/live"): ANYONE,
    ("GET", "/health/ready"): ANYONE,
    ("POST", f"{API}/auth/register"): ANYONE,
    ("POST", f"{API}/auth/login"): ANYONE,
    ("POST", f"{API}/auth/refresh"): ANYONE,
    ("POST", f"{API}/auth/logout"): SIGNED_IN,
    ("GET", f"{API}/auth/sessions"): SIGNED_IN,
    ("DELETE", f"{API}/auth/sessions/{{session_id}}"): SIGNED_IN,
    ("POST", f"{API}/auth/password"): SIGNED_IN,
    ("GET", f"{API}/users/me"): SIGNED_IN,
    ("PATCH", f"{API}/users/me"): SIGNED_IN,
    ("GET", f"{API}/users"): ADMIN,
    ("POST", f"{API}/users"): ADMIN,
    ("GET", f"{API}/users/{{user_id:uuid}}"): ADMIN,
    ("PATCH", f"{API}/users/{{user_id:uuid}}"): ADMIN,
    ("DELETE", f"{API}/users/{{user_id:uuid}}"): ADMIN,
    ("GET", f"{API}/audit/events"): ADMIN,
    ("GET", f"{API}/audit/events/export"): ADMIN,
    ("GET", f"{API}/audit/events/{{event_id}}"): ADMIN,
    ("GET", f"{API}/audit/verify"): ADMIN,
    ("GET", f"{API}/rooms"): SIGNED_IN,
    ("POST", f"{API}/rooms"): MANAGER,
    ("GET", f"{API}/rooms/{{room_id:uuid}}"): SIGNED_IN,
    ("PATCH", f"{API}/rooms/{{room_id:uuid}}"): MANAGER,
    ("POST", f"{API}/rooms/{{room_id:uuid}}/deactivate"): MANAGER,
    ("POST", f"{API}/rooms/{{room_id:uuid}}/reactivate"): MANAGER,
    ("POST", f"{API}/rooms/{{room_id:uuid}}/blackouts"): MANAGER,
    ("GET", f"{API}/rooms/{{room_id:uuid}}/blackouts"): SIGNED_IN,
    ("DELETE", f"{API}/rooms/{{room_id:uuid}}/blackouts/{{blackout_id:uuid}}"): MANAGER,
    ("GET", f"{API}/rooms/available"): SIGNED_IN,
    ("GET", f"{API}/rooms/{{room_id:uuid}}/availability"): SIGNED_IN,
    ("POST", f"{API}/bookings"): SIGNED_IN,
    ("POST", f"{API}/bookings/check"): SIGNED_IN,
    ("GET", f"{API}/bookings"): SIGNED_IN,
    ("GET", f"{API}/bookings/{{booking_id:uuid}}"): SIGNED_IN,
    ("PATCH", f"{API}/bookings/{{booking_id:uuid}}"): SIGNED_IN,
    ("POST", f"{API}/bookings/{{booking_id:uuid}}/cancel"): SIGNED_IN,
    ("POST", f"{API}/bookings/{{booking_id:uuid}}/approve"): MANAGER,
    ("POST", f"{API}/bookings/{{booking_id:uuid}}/reject"): MANAGER,
    ("POST", f"{API}/bookings/events/ticket"): SIGNED_IN,
    # No access token: the single-use `?ticket=` is the credential (401 without a valid one,
    # tests/bookings/test_events.py), since a browser's EventSource cannot send a header.
    ("GET", f"{API}/bookings/events"): ANYONE,
    ("POST", f"{API}/bookings/series"): SIGNED_IN,
    ("GET", f"{API}/bookings/series/{{series_id:uuid}}"): SIGNED_IN,
    ("PATCH", f"{API}/bookings/series/{{series_id:uuid}}"): SIGNED_IN,
    ("POST", f"{API}/bookings/series/{{series_id:uuid}}/cancel"): SIGNED_IN,
    ("POST", f"{API}/users/me/calendar-token"): SIGNED_IN,
    ("DELETE", f"{API}/users/me/calendar-token"): SIGNED_IN,
    ("GET", f"{API}/calendar/{{feed_token}}.ics"): ANYONE,
    ("GET", f"{API}/calendar/{{feed_token}}/rooms/{{room_id:uuid}}.ics"): ANYONE,
}
"""Who may call each route. A new route must be added here, with the guard it really has."""
PUBLIC_MOUNTS = frozenset({"/static-offline-docs"})
"""Mounted sub-applications (static files) nobody needs a token for."""
PATH_PARAM = re.compile(r"\{[^}]+\}")


def routes(app: FastAPI) -> Iterator[tuple[str, str, RouteContext]]:
    """Every (method, path, route as included) the app serves; HEAD goes with GET."""
    for route in iter_route_contexts(app.routes):
        for method in sorted(set(getattr(route.original_route, "methods", None) or ()) - {"HEAD"}):
            yield method, route.path or "", route


def guarded_roles(dependant: Dependant) -> frozenset[Role] | None:
    """The roles a route's dependency graph admits: None without any authentication."""
    roles: frozenset[Role] | None = None
    for dependency in dependant.dependencies:
        found: frozenset[Role] | None = None
        if isinstance(dependency.call, RoleGuard):
            found = dependency.call.roles
        elif dependency.call is get_current_user:
            found = SIGNED_IN
        inner = guarded_roles(dependency)
        for admitted in (found, inner):
            if admitted is not None:
                roles = admitted if roles is None else roles & admitted
    return roles


def concrete(path: str) -> str:
    """Fill every path parameter with a random UUID."""
    return PATH_PARAM.sub(lambda _: str(uuid.uuid4()), path)


def protected(app: FastAPI) -> Iterator[tuple[str, str, frozenset[Role]]]:
    """Every route that needs a token, with the roles it admits."""
    for method, path, _ in routes(app):
        roles = ACCESS.get((method, path))
        if roles is not None:
            yield method, path, roles


def test_every_route_is_in_the_access_table(app: FastAPI) -> None:
    served = {(method, path) for method, path, _ in routes(app)}
    unclassified = sorted(served - ACCESS.keys())
    assert not unclassified, f"add these routes to ACCESS with their guard: {unclassified}"
    assert not sorted(ACCESS.keys() - served), "ACCESS names routes the app does not serve"
    mounts = {
        r.path for r in iter_route_contexts(app.routes) if isinstance(r.original_route, Mount)
    }
    assert mounts <= PUBLIC_MOUNTS


def test_each_route_has_exactly_the_declared_guard(app: FastAPI) -> None:
    for method, path, route in routes(app):
        if isinstance(route.original_route, APIRoute):
            declared = ACCESS[(method, path)]
            assert guarded_roles(route.dependant) == declared, (method, path)


async def test_every_protected_route_rejects_anonymous_callers(
    app: FastAPI, client: AsyncClient
) -> None:
    checked = []
    for method, path, _ in protected(app):
        response = await client.request(method, concrete(path))
        assert response.status_code == 401, (method, path, response.status_code)
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["code"] == "not-authenticated"
        checked.append((method, path))
    assert ("GET", f"{API}/users/me") in checked
    assert ("GET", f"{API}/audit/verify") in checked


async def test_public_routes_never_ask_for_an_access_token(
    app: FastAPI, client: AsyncClient
) -> None:
    for method, path, _ in routes(app):
        if ACCESS[(method, path)] is ANYONE:
            response = await client.request(method, concrete(path))
            assert response.status_code != 403, (method, path)
            if response.status_code == 401:
                assert response.json()["code"] != "not-authenticated", (method, path)


@pytest.mark.parametrize("role", list(Role))
async def test_each_role_is_admitted_or_refused_as_declared(
    app: FastAPI,
    client: AsyncClient,
    create_user: CreateUser,
    auth_headers: AuthHeaders,
    role: Role,
) -> None:
    user_id = await create_user(role=role)
    refused, admitted = [], []
    for method, path, roles in protected(app):
        # A fresh session per call: logout and password change end sessions on the way.
        headers = await auth_headers(user_id)
        response = await client.request(method, concrete(path), headers=headers)
        if role in roles:
            assert response.status_code not in (401, 403), (method, path, response.text)
            admitted.append((method, path))
        else:
            assert response.status_code == 403, (method, path, response.status_code)
            assert response.json()["code"] == "role-forbidden"
            refused.append((method, path))
    assert ("GET", f"{API}/users/me") in admitted
    assert (("GET", f"{API}/users") in refused) is (role is not Role.ADMIN)
