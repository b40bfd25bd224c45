"""Every error is an RFC 9457 problem: routing, validation, body size, domain, unexpected."""

from collections.abc import AsyncIterator
from typing import Annotated

import pytest
from fastapi import FastAPI, Query
from httpx import AsyncClient
from pydantic import BaseModel, ConfigDict, EmailStr, Field
from starlette.exceptions import HTTPException

from app.core.config import HttpSettings, LogSettings, Settings
from app.core.errors import (
    MAX_FIELD_ERRORS,
    AppError,
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    PreconditionFailed,
    PreconditionRequired,
    RateLimited,
    ServiceUnavailable,
    Unauthorized,
    ValidationFailed,
    problem_body,
)
from app.core.logging import configure_logging
from app.factory import create_app
from tests.conftest import make_settings
from tests.core.support import assert_problem, captured_logs, serve

SECRET_PASSWORD = "hunter2-do-not-echo"


class Signup(BaseModel):
    """A request model as the domains write them."""

    model_config = ConfigDict(extra="forbid")
    email: EmailStr
    password: str = Field(min_length=15)


class BrokenDetail(RuntimeError):
    """An exception whose text must never reach the client."""


def add_routes(app: FastAPI) -> None:
    """Test-only routes that fail in every way the API can."""

    @app.post("/signup", status_code=201)
    async def signup(body: Signup) -> dict[str, str]:
        return {"email": body.email}

    @app.get("/items/{item_id}")
    async def item(item_id: int, limit: Annotated[int, Query(ge=1)] = 10) -> dict[str, int]:
        return {"item_id": item_id, "limit": limit}

    @app.post("/upload")
    async def upload(payload: dict[str, str]) -> dict[str, int]:
        return {"keys": len(payload)}

    @app.get("/numbers")
    async def numbers(n: Annotated[list[int], Query()]) -> list[int]:
        return n

    @app.get("/things")
    async def list_things() -> list[str]:
        return []

    @app.post("/things")
    async def add_thing() -> None:
        return None

    @app.get("/boom")
    async def boom() -> None:
        raise BrokenDetail("connection to postgres://app:s3cr3t@db/roombook lost, secret=abc")

    @app.get("/raise/{kind}")
    async def raise_domain(kind: str) -> None:
        raise DOMAIN_ERRORS[kind]

    @app.get("/http/{status}")
    async def raise_http(status: int) -> None:
        raise HTTPException(status_code=status, detail="From the HTTP layer.")


DOMAIN_ERRORS: dict[str, AppError] = {
    "bad-request": BadRequest("The request is malformed."),
    "unauthorized": Unauthorized("Token expired."),
    "forbidden": Forbidden("Admins only."),
    "not-found": NotFound("No such booking."),
    "conflict": Conflict("The room is booked then."),
    "precondition-failed": PreconditionFailed("The booking changed meanwhile."),
    "precondition-required": PreconditionRequired("Send If-Match."),
    "rate-limited": RateLimited("Slow down.", headers={"Retry-After": "30"}),
    "service-unavailable": ServiceUnavailable("Try again soon.", retry_after_s=7),
    "validation-failed": ValidationFailed(
        [{"field": "starts_at", "message": "Must be in the future.", "type": "past"}]
    ),
}
EXPECTED_STATUS = {
    "bad-request": 400,
    "unauthorized": 401,
    "forbidden": 403,
    "not-found": 404,
    "conflict": 409,
    "precondition-failed": 412,
    "precondition-required": 428,
    "rate-limited": 429,
    "service-unavailable": 503,
    "validation-failed": 422,
}


@pytest.fixture(scope="module")
async def small_client(database_url: str) -> AsyncIterator[AsyncClient]:
    """A client of an app with test routes and a 1 KiB body limit."""
    settings: Settings = make_settings(database_url, http=HttpSettings(max_body_bytes=1024))
    app = create_app(settings)
    add_routes(app)
    async with serve(app) as client:
        yield client


async def test_unknown_route_is_404_problem(small_client: AsyncClient) -> None:
    response = await small_client.get("/nowhere", headers={"X-Request-ID": "req-404"})
    body = assert_problem(
        response, status=404, code="not-found", instance="/nowhere", title="Not found"
    )
    assert body["request_id"] == "req-404"
    assert body["detail"] == "Not Found"


async def test_wrong_method_is_405_problem_with_allow(small_client: AsyncClient) -> None:
    response = await small_client.delete("/signup")
    assert_problem(
        response,
        status=405,
        code="method-not-allowed",
        instance="/signup",
        title="Method not allowed",
    )
    assert response.headers["allow"] == "POST"


@pytest.mark.parametrize("method", ["DELETE", "PUT", "OPTIONS"])
async def test_405_allows_every_method_of_the_path(small_client: AsyncClient, method: str) -> None:
    response = await small_client.request(method, "/things")
    assert_problem(response, status=405, code="method-not-allowed", instance="/things")
    assert response.headers["allow"] == "GET, POST"


async def test_422_lists_the_first_50_errors_and_counts_the_rest(
    small_client: AsyncClient,
) -> None:
    response = await small_client.get("/numbers", params={"n": ["x"] * 120})
    body = assert_problem(response, status=422, code="validation-failed", instance="/numbers")
    assert len(body["errors"]) == MAX_FIELD_ERRORS == 50
    assert body["errors"][0] == {
        "field": "n.0",
        "message": "Input should be a valid integer, unable to parse string as an integer",
        "type": "int_parsing",
    }
    assert body["errors_omitted"] == 70


async def test_422_without_omissions_has_no_count(small_client: AsyncClient) -> None:
    response = await small_client.get("/numbers", params={"n": ["x"] * 50})
    body = assert_problem(response, status=422, code="validation-failed", instance="/numbers")
    assert len(body["errors"]) == 50
    assert "errors_omitted" not in body


def test_validation_failed_caps_errors_from_any_producer() -> None:
    error = ValidationFailed([{"field": f"f{i}", "message": "bad", "type": "t"} for i in range(60)])
    assert [e["field"] for e in error.extensions()["errors"]] == [f"f{i}" for i in range(50)]
    assert error.extensions()["errors_omitted"] == 10


async def test_validation_422_names_fields_and_never_echoes_input(
    small_client: AsyncClient,
) -> None:
    response = await small_client.post(
        "/signup",
        json={"email": "not-an-email", "password": SECRET_PASSWORD[:10], "role": "admin"},
    )
    body = assert_problem(
        response,
        status=422,
        code="validation-failed",
        instance="/signup",
        title="Validation failed",
        detail="The request contains invalid fields.",
    )
    fields = {e["field"]: e for e in body["errors"]}
    assert set(fields) == {"email", "password", "role"}
    assert fields["password"] == {
        "field": "password",
        "message": "String should have at least 15 characters",
        "type": "string_too_short",
    }
    assert fields["role"]["type"] == "extra_forbidden"
    assert fields["email"]["type"] == "value_error"
    assert all(set(e) == {"field", "message", "type"} for e in body["errors"])
    assert SECRET_PASSWORD[:10] not in response.text
    assert "not-an-email" not in response.text
    assert "admin" not in response.text


async def test_invalid_json_is_422_without_the_document(small_client: AsyncClient) -> None:
    response = await small_client.post(
        "/signup",
        content=b'{"email": "a@example.com", "password": "' + SECRET_PASSWORD.encode(),
        headers={"content-type": "application/json"},
    )
    body = assert_problem(response, status=422, code="validation-failed", instance="/signup")
    assert body["errors"][0]["type"] == "json_invalid"
    assert SECRET_PASSWORD not in response.text


async def test_query_and_path_errors_name_the_parameter(small_client: AsyncClient) -> None:
    response = await small_client.get("/items/abc", params={"limit": 0})
    body = assert_problem(response, status=422, code="validation-failed", instance="/items/abc")
    assert {(e["field"], e["type"]) for e in body["errors"]} == {
        ("item_id", "int_parsing"),
        ("limit", "greater_than_equal"),
    }


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml", None]
)
async def test_json_endpoint_refuses_other_media_types_with_415(
    small_client: AsyncClient, content_type: str | None
) -> None:
    document = b'{"email": "a@example.com", "password": "' + SECRET_PASSWORD.encode() + b'"}'
    headers = {"content-type": content_type} if content_type else {}
    response = await small_client.post("/signup", content=document, headers=headers)
    assert_problem(
        response,
        status=415,
        code="unsupported-media-type",
        instance="/signup",
        detail="Send the body as application/json.",
    )
    assert SECRET_PASSWORD not in response.text


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=utf-8", "application/x+json"]
)
async def test_json_endpoint_takes_json_media_types(
    small_client: AsyncClient, content_type: str
) -> None:
    document = b'{"email": "a@example.com", "password": "' + SECRET_PASSWORD.encode() + b'"}'
    accepted = await small_client.post(
        "/signup", content=document, headers={"content-type": content_type}
    )
    assert accepted.status_code == 201
    assert accepted.json() == {"email": "a@example.com"}


async def test_a_missing_body_is_still_a_422(small_client: AsyncClient) -> None:
    response = await small_client.post("/signup")
    body = assert_problem(response, status=422, code="validation-failed", instance="/signup")
    assert [e["field"] for e in body["errors"]] == ["body"]


async def test_declared_oversized_body_is_413(small_client: AsyncClient) -> None:
    response = await small_client.post("/upload", json={"data": "x" * 2048})
    assert_problem(
        response,
        status=413,
        code="payload-too-large",
        instance="/upload",
        detail="The request body exceeds 1024 bytes.",
    )


async def chunks(count: int, size: int) -> AsyncIterator[bytes]:
    """A request body streamed in chunks, without Content-Length."""
    yield b'{"data": "'
    for _ in range(count):
        yield b"x" * size
    yield b'"}'


async def test_streamed_oversized_body_is_413(small_client: AsyncClient) -> None:
    response = await small_client.post(
        "/upload", content=chunks(4, 400), headers={"content-type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert_problem(response, status=413, code="payload-too-large", instance="/upload")
    # Answered from middleware, still inside the edge: security headers and request id.
    assert response.headers["x-content-type-options"] == "nosniff"
    assert (
        response.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
    )


async def test_streamed_body_under_the_limit_passes(small_client: AsyncClient) -> None:
    response = await small_client.post(
        "/upload", content=chunks(2, 400), headers={"content-type": "application/json"}
    )
    assert response.status_code == 200
    assert response.json() == {"keys": 1}


async def test_unhandled_exception_is_500_without_details_but_logged(
    small_client: AsyncClient,
) -> None:
    configure_logging(LogSettings(), production=False)
    with captured_logs() as logs:
        response = await small_client.get("/boom", headers={"X-Request-ID": "req-boom-1"})
    body = assert_problem(
        response,
        status=500,
        code="internal-error",
        instance="/boom",
        title="Internal server error",
        detail="An unexpected error occurred.",
        request_id="req-boom-1",
    )
    assert set(body) == {"type", "title", "status", "detail", "instance", "code", "request_id"}
    for leak in ("BrokenDetail", "Traceback", "postgres://", "s3cr3t", "lost"):
        assert leak not in response.text
    logged = logs.getvalue()
    assert "unhandled exception" in logged
    assert "Traceback (most recent call last)" in logged
    assert "BrokenDetail" in logged
    assert "req-boom-1" in logged
    assert "s3cr3t" not in logged
    assert "secret=abc" not in logged
    # Logged once by the edge middleware, not again by the server.
    assert logged.count("Traceback (most recent call last)") == 1


@pytest.mark.parametrize("kind", sorted(DOMAIN_ERRORS))
async def test_domain_errors_render_as_problems(small_client: AsyncClient, kind: str) -> None:
    response = await small_client.get(f"/raise/{kind}")
    error = DOMAIN_ERRORS[kind]
    body = assert_problem(
        response,
        status=EXPECTED_STATUS[kind],
        code=kind,
        instance=f"/raise/{kind}",
        title=error.title,
        detail=error.detail,
    )
    for header, value in error.headers.items():
        assert response.headers[header] == value
    if kind == "validation-failed":
        assert body["errors"] == [
            {"field": "starts_at", "message": "Must be in the future.", "type": "past"}
        ]


async def test_unauthorized_asks_for_a_bearer_token(small_client: AsyncClient) -> None:
    response = await small_client.get("/raise/unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["detail"] == "Token expired."


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, "bad-request"),
        (401, "unauthorized"),
        (403, "forbidden"),
        (409, "conflict"),
        (415, "unsupported-media-type"),
        (418, "im-a-teapot"),
        (429, "rate-limited"),
        (503, "service-unavailable"),
    ],
)
async def test_http_exceptions_keep_their_status(
    small_client: AsyncClient, status: int, code: str
) -> None:
    """fastapi.security and Starlette raise HTTPException; its status must survive."""
    response = await small_client.get(f"/http/{status}")
    assert_problem(
        response,
        status=status,
        code=code,
        instance=f"/http/{status}",
        detail="From the HTTP layer.",
    )


def test_problem_body_without_detail_uses_the_title() -> None:
    body = problem_body(Conflict(), instance="/x", request_id=None)
    assert body == {
        "type": "https://roombook.dev/problems/conflict",
        "title": "Conflict",
        "status": 409,
        "detail": "Conflict",
        "instance": "/x",
        "code": "conflict",
        "request_id": None,
    }


def test_subclassed_errors_get_their_own_type_uri() -> None:
    class LastAdmin(Conflict):
        code = "last-admin"
        title = "Last admin"

    error = LastAdmin("The last admin cannot be demoted.")
    assert error.status == 409
    assert LastAdmin.type_uri() == "https://roombook.dev/problems/last-admin"
    assert str(error) == "The last admin cannot be demoted."


async def test_http_exception_with_a_non_standard_status(small_client: AsyncClient) -> None:
    response = await small_client.get("/http/499")
    assert_problem(response, status=499, code="http-499", instance="/http/499", title="HTTP 499")
