"""The OpenAPI document: metadata, prefixes, operation ids, documented problems, docs switch."""

import json
import re
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from httpx import AsyncClient
from pydantic import SecretStr

from app.core.config import HttpSettings, SecuritySettings
from app.core.openapi import operation_id, problem_responses
from app.core.routing import API_PREFIX
from app.factory import create_app
from tests.conftest import make_settings
from tests.core.support import assert_problem, serve
from tests.core.test_settings import run_python

METHODS = {"get", "post", "put", "patch", "delete"}
OPERATION_ID = re.compile(r"^[a-z][a-z0-9]*-[a-z][a-z0-9-]*$")
PRODUCTION_SECRET = "a-production-signing-secret-that-is-long-enough"


@pytest.fixture(scope="module")
def document(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document of the application."""
    return app.openapi()


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """Every (path, method, operation) of the document."""
    return [
        (path, method, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


async def test_document_is_served_with_metadata(client: AsyncClient) -> None:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["info"]["title"] == "Roombook API"
    assert document["info"]["version"] == "0.1.0"
    assert "application/problem+json" in document["info"]["description"]
    assert document["openapi"].startswith("3.")


def test_every_tag_used_is_declared_with_a_description(document: dict[str, Any]) -> None:
    declared = {tag["name"]: tag.get("description") for tag in document["tags"]}
    assert "health" in declared
    assert all(declared.values())
    used = {operation["tags"][0] for _, _, operation in operations(document)}
    assert used <= set(declared)


def test_api_routes_live_under_the_version_prefix(document: dict[str, Any]) -> None:
    assert API_PREFIX == "/api/v1"
    for path in document["paths"]:
        assert path.startswith((f"{API_PREFIX}/", "/health/")), path
    assert set(document["paths"]) >= {"/health/live", "/health/ready"}


def test_operation_ids_are_tag_dash_name_and_unique(document: dict[str, Any]) -> None:
    ids = [operation["operationId"] for _, _, operation in operations(document)]
    assert len(ids) == len(set(ids))
    for path, method, operation in operations(document):
        assert OPERATION_ID.fullmatch(operation["operationId"]), (path, method)
        assert operation["operationId"].startswith(f"{operation['tags'][0]}-"), (path, method)
    assert "health-live" in ids
    assert "health-ready" in ids


def test_problem_responses_are_documented(document: dict[str, Any]) -> None:
    problem = document["components"]["schemas"]["Problem"]
    assert set(problem["required"]) >= {
        "type",
        "title",
        "status",
        "detail",
        "instance",
        "code",
        "request_id",
    }
    assert "errors" in problem["properties"]
    for path, method, operation in operations(document):
        for status in ("400", "422", "500", "503"):
            content = operation["responses"][status]["content"]
            ref = content["application/problem+json"]["schema"]["$ref"]
            # `Problem`, or a domain's extension of it (a refused booking's `BookingProblem`).
            schema = document["components"]["schemas"][ref.rsplit("/", 1)[1]]
            assert set(schema["required"]) >= set(problem["required"]), (path, method, status)
            assert schema["properties"].keys() >= problem["properties"].keys()
        assert "HTTPValidationError" not in json.dumps(operation["responses"])


def test_route_level_problem_statuses_are_added() -> None:
    responses = problem_responses(404, 409)
    assert set(responses) == {404, 409}
    assert responses[404]["content"]["application/problem+json"]["schema"] == {
        "$ref": "#/components/schemas/Problem"
    }


def test_operation_id_falls_back_to_the_name_without_tags() -> None:
    async def endpoint() -> None:
        return None

    assert operation_id(APIRoute("/x", endpoint, name="thing")) == "thing"
    assert operation_id(APIRoute("/x", endpoint, name="list", tags=["rooms"])) == "rooms-list"


def production_settings(database_url: str, **http: Any) -> Any:
    """Settings that pass the production checks."""
    return make_settings(
        database_url,
        environment="production",
        security=SecuritySettings(jwt_secret=SecretStr(PRODUCTION_SECRET)),
        # Production refuses a wildcard Host; the test client is `testserver`.
        http=HttpSettings(**({"allowed_hosts": ["testserver"]} | http)),
    )


async def test_docs_are_off_in_production(database_url: str) -> None:
    async with serve(create_app(production_settings(database_url))) as client:
        for path in ("/docs", "/redoc", "/openapi.json", "/static-offline-docs/swagger-ui.css"):
            response = await client.get(path)
            assert_problem(response, status=404, code="not-found", instance=path)


async def test_docs_can_be_enabled_in_production(database_url: str) -> None:
    settings = production_settings(database_url, docs_enabled=True)
    async with serve(create_app(settings)) as client:
        docs = await client.get("/docs")
        document = await client.get("/openapi.json")
    assert docs.status_code == 200
    assert "swagger-ui-bundle.js" in docs.text
    assert document.json()["info"]["title"] == "Roombook API"


def test_cli_writes_the_document(tmp_path: Path, document: dict[str, Any]) -> None:
    target = tmp_path / "openapi.json"
    result = run_python(tmp_path, "-m", "app.cli", "openapi", "-o", str(target))
    assert result.returncode == 0, result.stderr
    written = json.loads(target.read_text())
    assert written["info"]["title"] == "Roombook API"
    assert written["paths"].keys() == document["paths"].keys()
