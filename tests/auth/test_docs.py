"""The OpenAPI document: first-party login, the Authorize button, preconditions and problems."""

from typing import Any

from httpx import AsyncClient


async def _operations(client: AsyncClient) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    document = (await client.get("/openapi.json")).json()
    operations = {
        operation["operationId"]: operation
        for path in document["paths"].values()
        for operation in path.values()
    }
    return document, operations


async def test_login_is_documented_as_first_party_and_drives_the_authorize_button(
    client: AsyncClient,
) -> None:
    document, operations = await _operations(client)
    login = operations["auth-login"]
    assert "RFC 9700" in login["description"]
    assert "first-party" in login["description"]
    assert {"401", "403", "429"} <= login["responses"].keys()
    form = login["requestBody"]["content"]["application/x-www-form-urlencoded"]
    assert form["schema"]["$ref"].endswith("Body_auth-login")
    schemes = document["components"]["securitySchemes"]
    (scheme,) = schemes.values()
    assert scheme["flows"]["password"]["tokenUrl"] == "/api/v1/auth/login"
    assert "RFC 9700" in scheme["description"]


async def test_user_updates_document_if_match_and_its_problems(client: AsyncClient) -> None:
    _, operations = await _operations(client)
    for name in ("users-update", "users-deactivate", "users-update-me"):
        operation = operations[name]
        headers = {p["name"]: p for p in operation["parameters"] if p["in"] == "header"}
        assert "`*` is refused" in headers["If-Match"]["description"], name
        assert {"412", "428"} <= operation["responses"].keys(), name
        problem = operation["responses"]["412"]["content"]["application/problem+json"]
        assert problem["schema"]["$ref"] == "#/components/schemas/Problem"
