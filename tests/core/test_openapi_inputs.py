"""Every text input the API documents refuses control characters, as the core types enforce."""

import re
import typing
import uuid
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from httpx import AsyncClient

from app.core.config import AuthSettings
from app.core.types import RequestBody
from app.factory import create_app
from tests.conftest import make_settings
from tests.core.test_openapi import operations

NOT_TEXT_FORMATS = {"uuid", "date-time"}
PATH_PARAM = re.compile(r"\{[^}]+\}")


@pytest.fixture(scope="module")
def document(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document of the application."""
    return app.openapi()


def resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """Follow a `$ref` to its component schema."""
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def text_schemas(
    document: dict[str, Any], schema: dict[str, Any], where: str
) -> list[tuple[str, dict[str, Any]]]:
    """Every string schema inside a schema (through refs, unions and properties)."""
    schema = resolve(document, schema)
    found: list[tuple[str, dict[str, Any]]] = []
    for option in schema.get("anyOf", []):
        found += text_schemas(document, option, where)
    for name, prop in schema.get("properties", {}).items():
        found += text_schemas(document, prop, f"{where}.{name}")
    if schema.get("type") == "string":
        found.append((where, schema))
    return found


def inputs(document: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every text input of every operation: query, path and cookie parameters and bodies."""
    found: list[tuple[str, dict[str, Any]]] = []
    for path, method, operation in operations(document):
        for parameter in operation.get("parameters", []):
            # Header values cannot carry control characters through an HTTP server.
            if parameter["in"] != "header":
                where = f"{method} {path} {parameter['in']} {parameter['name']}"
                found += text_schemas(document, parameter["schema"], where)
        for media, content in operation.get("requestBody", {}).get("content", {}).items():
            found += text_schemas(document, content["schema"], f"{method} {path} {media}")
    return found


def test_the_walk_finds_the_text_inputs(document: dict[str, Any]) -> None:
    found = [where for where, _ in inputs(document)]
    assert "get /api/v1/users query q" in found
    assert "get /api/v1/audit/events/export query entity_id" in found
    assert "post /api/v1/auth/login application/x-www-form-urlencoded.username" in found
    assert "post /api/v1/auth/register application/json.full_name" in found
    assert "patch /api/v1/users/me application/json.current_password" in found


def test_every_text_input_refuses_control_characters(document: dict[str, Any]) -> None:
    for where, schema in inputs(document):
        if schema.get("format") in NOT_TEXT_FORMATS or "enum" in schema:
            continue
        pattern = schema.get("pattern")
        assert pattern is not None, where
        for character in ("\x00", "\x01", "\x1f"):
            assert re.search(pattern, f"a{character}b") is None, (where, pattern)


def test_every_json_body_is_a_strict_request_body(app: FastAPI) -> None:
    routes = [context.original_route for context in iter_route_contexts(app.routes)]
    bodies = [
        route.body_field.field_info.annotation
        for route in routes
        if isinstance(route, APIRoute) and route.body_field is not None
    ]
    json_models = {
        option
        for body in bodies
        for option in typing.get_args(body) or (body,)
        # Form bodies (`Body_<operation>`) are FastAPI's own models of form parameters.
        if isinstance(option, type) and option is not type(None)
        if not option.__name__.startswith("Body_")
    }
    assert len(json_models) >= 6
    for model in json_models:
        assert issubclass(model, RequestBody), model
        assert model.model_config["strict"] is True


async def test_405_lists_every_method_of_every_path(
    client: AsyncClient, document: dict[str, Any]
) -> None:
    for path, item in document["paths"].items():
        url = PATH_PARAM.sub(str(uuid.uuid4()), path)
        response = await client.request("PUT", url)
        assert response.status_code == 405, path
        assert response.headers["allow"] == ", ".join(sorted(m.upper() for m in item)), path


@pytest.mark.parametrize("method", ["DELETE", "OPTIONS"])
async def test_users_me_is_not_also_a_user_id(client: AsyncClient, method: str) -> None:
    response = await client.request(method, "/api/v1/users/me")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, PATCH"


def test_operations_with_a_body_document_413_and_415(document: dict[str, Any]) -> None:
    with_body = [
        (path, method, operation)
        for path, method, operation in operations(document)
        if "requestBody" in operation
    ]
    assert len(with_body) >= 7
    for path, method, operation in with_body:
        for status in ("413", "415"):
            schema = operation["responses"][status]["content"]["application/problem+json"]
            assert schema == {"schema": {"$ref": "#/components/schemas/Problem"}}, (path, method)


@pytest.mark.parametrize("minimum", [15, 20])
async def test_new_passwords_document_the_minimum_of_the_settings(
    database_url: str, minimum: int
) -> None:
    settings = make_settings(database_url, auth=AuthSettings(password_min_length=minimum))
    schemas = create_app(settings).openapi()["components"]["schemas"]
    for model, field in [
        ("RegisterRequest", "password"),
        ("UserCreate", "password"),
        ("PasswordChange", "new_password"),
    ]:
        assert schemas[model]["properties"][field]["minLength"] == minimum, model
    # Proving who one is needs no minimum: older passwords may be shorter.
    assert schemas["PasswordChange"]["properties"]["current_password"]["minLength"] == 1
    assert schemas["Body_auth-login"]["properties"]["password"].get("minLength") is None
