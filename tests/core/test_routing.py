"""Domain routers rule themselves out of foreign paths, and still answer their own."""

import pytest
from fastapi import APIRouter, FastAPI
from httpx import ASGITransport, AsyncClient
from starlette.routing import Match
from starlette.types import Scope

from app.core.routing import API_PREFIX, DomainRouter


def scope_for(path: str) -> Scope:
    """A bare HTTP scope for `path`."""
    return {"type": "http", "method": "GET", "path": path, "root_path": ""}


def shelf_app() -> tuple[FastAPI, DomainRouter]:
    """An app with two domain routers whose prefixes share a beginning."""
    shelves = DomainRouter(prefix="/shelves")
    books = DomainRouter(prefix="/shelves/books")

    @shelves.get("/{shelf_id:int}")
    async def get_shelf(shelf_id: int) -> dict[str, int]:
        return {"shelf": shelf_id}

    @books.get("")
    async def list_books() -> list[str]:
        return ["a", "b"]

    app = FastAPI()
    app.include_router(books, prefix=API_PREFIX)
    app.include_router(shelves, prefix=API_PREFIX)
    return app, shelves


@pytest.mark.parametrize(
    ("path", "tried"),
    [
        ("/api/v1/users/me", False),
        ("/api/v1/shelve", False),
        ("/shelves/1", False),
        ("/", False),
        ("/api/v1/shelves", True),
        ("/api/v1/shelves/1", True),
        ("/roombook/api/v1/shelves/1", True),
    ],
)
def test_only_paths_under_the_prefix_are_tried_against_the_routes(
    monkeypatch: pytest.MonkeyPatch, path: str, tried: bool
) -> None:
    _, shelves = shelf_app()
    seen: list[str] = []

    def fastapi_matching(self: APIRouter, scope: Scope) -> tuple[Match, Scope]:
        seen.append(scope["path"])
        return Match.NONE, {}

    monkeypatch.setattr(APIRouter, "matches", fastapi_matching)
    assert shelves.matches(scope_for(path))[0] is Match.NONE
    assert seen == ([path] if tried else [])


async def test_routes_under_the_prefix_still_answer() -> None:
    app, _ = shelf_app()
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://test") as client:
        assert (await client.get("/api/v1/shelves/7")).json() == {"shelf": 7}
        assert (await client.get("/api/v1/shelves/books")).json() == ["a", "b"]
        assert (await client.get("/api/v1/shelves/x")).status_code == 404
        assert (await client.post("/api/v1/shelves/7")).status_code == 405


async def test_behind_a_root_path_routes_still_answer() -> None:
    app, _ = shelf_app()
    transport = ASGITransport(app=app, root_path="/roombook")
    async with AsyncClient(transport=transport, base_url="http://test") as client:
        assert (await client.get("/roombook/api/v1/shelves/7")).json() == {"shelf": 7}
