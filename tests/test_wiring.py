"""One wiring shape: every request dependency is async, and a request builds each service once."""

import inspect
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from httpx import AsyncClient

from app.audit.service import AuditService
from app.auth.service import AuthService, SessionService
from app.users.service import UserService
from tests.auth.conftest import ME, bearer, login
from tests.conftest import CreateUser

EMAIL = "wiring.user@example.com"


def dependencies(dependant: Dependant) -> Iterator[Any]:
    """Every callable in a route's dependency graph."""
    for dependency in dependant.dependencies:
        yield dependency.call
        yield from dependencies(dependency)


def runs_on_the_loop(call: Any) -> bool:
    """Whether FastAPI awaits this dependency instead of sending it to the thread pool."""
    if inspect.isfunction(call) or inspect.ismethod(call):
        return inspect.iscoroutinefunction(call) or inspect.isasyncgenfunction(call)
    return inspect.iscoroutinefunction(type(call).__call__)


def test_every_request_dependency_is_async(app: FastAPI) -> None:
    sync = {
        f"{call.__module__}.{call.__qualname__}"
        for route in iter_route_contexts(app.routes)
        if isinstance(route.original_route, APIRoute)
        for call in dependencies(route.dependant)
        if not runs_on_the_loop(call)
    }

    assert not sync, f"make these async (no thread-pool hop per request): {sorted(sync)}"


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """How many of each service were constructed since the fixture started counting."""
    counts: Counter[str] = Counter()
    for service in (AuditService, SessionService, UserService, AuthService):
        original = service.__init__

        def counting(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> None:
            counts[type(self).__name__] += 1
            _original(self, *args, **kwargs)

        monkeypatch.setattr(service, "__init__", counting)
    return counts


async def test_a_login_builds_each_service_once(
    client: AsyncClient, create_user: CreateUser, built: Counter[str]
) -> None:
    await create_user(email=EMAIL)
    built.clear()

    response = await login(client, EMAIL)

    assert response.status_code == 200
    assert built == {"AuditService": 1, "SessionService": 1, "UserService": 1, "AuthService": 1}


async def test_a_guarded_request_shares_the_guards_services(
    client: AsyncClient, create_user: CreateUser, built: Counter[str]
) -> None:
    await create_user(email=EMAIL)
    token = (await login(client, EMAIL)).json()["access_token"]
    built.clear()

    response = await client.patch(
        ME, json={"full_name": "Wired"}, headers={**bearer(token), "If-Match": '"2"'}
    )

    assert response.status_code == 200, response.text
    # The guard's session service is the one UserService ends sessions with.
    assert built == {"AuditService": 1, "SessionService": 1, "UserService": 1}
