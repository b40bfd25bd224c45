"""OpenAPI conventions: stable operation ids, documented problems, and what the edge enforces."""

from http import HTTPStatus
from typing import Any

from fastapi.routing import APIRoute
from pydantic import BaseModel, Field

from app.core.idempotency import KEY_HEADER, REPLAYED_HEADER


class FieldError(BaseModel):
    """One invalid field in a 422 problem."""

    field: str
    message: str
    type: str


class Problem(BaseModel):
    """An RFC 9457 problem document, as every error of the API is returned."""

    type: str = Field(examples=["https://roombook.dev/problems/not-found"])
    title: str
    status: int
    detail: str
    instance: str
    code: str
    request_id: str | None
    errors: list[FieldError] | None = None
    errors_omitted: int | None = Field(
        default=None, description="Field errors beyond the first 50, not listed in `errors`."
    )


PROBLEM_SCHEMA_REF = "#/components/schemas/Problem"
POLICY_MIN_LENGTH = "x-password-policy"
"""Marks a field that sets a password; the document takes its `minLength` from settings."""
BODY_PROBLEMS = (413, 415)
"""What any operation with a body may answer before its own code runs (size, media type)."""
IDEMPOTENCY_PROBLEMS = (409, 422)
"""What an operation taking `Idempotency-Key` may answer for the key (in progress, reused)."""


def problem_responses(
    *statuses: int, model: type[Problem] = Problem
) -> dict[int | str, dict[str, Any]]:
    """Document problem responses for the given statuses, as `model` (a `Problem` subclass)."""
    # `model` registers the schema, but FastAPI files it under application/json only; the
    # media type the API really answers with names the schema explicitly.
    schema = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {
        status: {"model": model, "content": {"application/problem+json": {"schema": schema}}}
        for status in statuses
    }


COMMON_PROBLEMS = problem_responses(400, 422, 500, 503)


def operation_id(route: APIRoute) -> str:
    """Name an operation `<tag>-<route name>`, e.g. `bookings-create`."""
    return f"{route.tags[0]}-{route.name}" if route.tags else route.name


def complete_document(document: dict[str, Any], *, password_min_length: int) -> dict[str, Any]:
    """Add what the edge enforces and routes cannot declare: body problems, password length,
    and what an `Idempotency-Key` adds to an operation."""
    for item in document.get("paths", {}).values():
        for operation in item.values():
            if isinstance(operation, dict) and "requestBody" in operation:
                for status in BODY_PROBLEMS:
                    operation["responses"].setdefault(str(status), _problem_response(status))
            if isinstance(operation, dict) and _takes_idempotency_key(operation):
                _document_idempotency(operation["responses"])
    for schema in document.get("components", {}).get("schemas", {}).values():
        for prop in schema.get("properties", {}).values():
            if prop.get(POLICY_MIN_LENGTH):
                prop["minLength"] = password_min_length
    return document


def _takes_idempotency_key(operation: dict[str, Any]) -> bool:
    return any(
        parameter.get("in") == "header" and parameter.get("name") == KEY_HEADER
        for parameter in operation.get("parameters", [])
    )


def _document_idempotency(responses: dict[str, Any]) -> None:
    # A retry while the first request runs is a 409; a key reused for another request a 422.
    for problem in IDEMPOTENCY_PROBLEMS:
        responses.setdefault(str(problem), _problem_response(problem))
    for status, response in responses.items():
        if status.startswith("2"):
            response.setdefault("headers", {})[REPLAYED_HEADER] = {
                "description": "`true` when this is the stored answer to an earlier request "
                "with the same `Idempotency-Key` (absent on a first answer).",
                "schema": {"type": "string", "enum": ["true"]},
            }


def _problem_response(status: int) -> dict[str, Any]:
    return {
        "description": HTTPStatus(status).phrase,
        "content": {"application/problem+json": {"schema": {"$ref": PROBLEM_SCHEMA_REF}}},
    }
