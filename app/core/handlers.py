"""The one place that turns every exception into an RFC 9457 problem response."""

import functools
import re
from http import HTTPStatus
from typing import cast

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException
from starlette.responses import Response

from app.core.errors import (
    MAX_FIELD_ERRORS,
    AppError,
    BadRequest,
    Conflict,
    Forbidden,
    InternalError,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    PreconditionFailed,
    PreconditionRequired,
    RateLimited,
    ServiceUnavailable,
    Unauthorized,
    UnsupportedMediaType,
    ValidationFailed,
    problem_response,
)
from app.core.idempotency import IdempotentReplay

_BY_STATUS: dict[int, type[AppError]] = {
    error.status: error
    for error in (
        BadRequest,
        Unauthorized,
        Forbidden,
        NotFound,
        MethodNotAllowed,
        Conflict,
        PreconditionFailed,
        PayloadTooLarge,
        UnsupportedMediaType,
        PreconditionRequired,
        RateLimited,
        InternalError,
        ServiceUnavailable,
    )
}


@functools.cache
def error_for_status(status: int) -> type[AppError]:
    """The error class of an HTTP status; statuses no domain class covers get one made."""
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    try:
        title = HTTPStatus(status).phrase
    except ValueError:  # a status without a standard reason phrase
        title = f"HTTP {status}"
    code = re.sub(r"[^a-z0-9]+", "-", title.lower().replace("'", "")).strip("-")
    return cast(
        type[AppError],
        type(f"HTTPError{status}", (AppError,), {"status": status, "code": code, "title": title}),
    )


def _respond(request: Request, error: AppError) -> Response:
    return problem_response(
        error, instance=request.url.path, request_id=getattr(request.state, "request_id", None)
    )


def field_path(location: tuple[int | str, ...]) -> str:
    """Name a field by its dotted path, without the `body`/`query` prefix."""
    parts = [str(p) for p in location]
    if len(parts) > 1 and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:]
    return ".".join(parts)


async def handle_app_error(request: Request, exc: Exception) -> Response:
    """Render a domain or HTTP-layer `AppError`."""
    assert isinstance(exc, AppError)
    return _respond(request, exc)


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at the request's path."""
    methods: set[str] = set()
    for route in iter_route_contexts(request.app.routes):
        if route.methods and route.path_regex.match(request.scope["path"]):
            methods |= route.methods
    return sorted(methods)


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    """Render Starlette's routing errors (404, 405, …) and other HTTP errors as problems."""
    assert isinstance(exc, HTTPException)
    error = error_for_status(exc.status_code)(str(exc.detail))
    response = _respond(request, error)
    if exc.headers:
        response.headers.update(exc.headers)
    if exc.status_code == 405:
        # Starlette names only the methods of the first route matching the path; a path
        # served by several routes (GET and POST /users) must list them all.
        response.headers["Allow"] = ", ".join(allowed_methods(request))
    return response


async def handle_validation_error(request: Request, exc: Exception) -> Response:
    """Name each invalid field; never echo the rejected input back."""
    assert isinstance(exc, RequestValidationError)
    raw = exc.errors()
    errors = [
        {"field": field_path(tuple(e["loc"])), "message": e["msg"], "type": e["type"]}
        for e in raw[:MAX_FIELD_ERRORS]
    ]
    return _respond(request, ValidationFailed(errors, omitted=len(raw) - len(errors)))


async def handle_replay(request: Request, exc: Exception) -> Response:
    """Answer a retry with the stored answer of its key (not an error: the first answer)."""
    assert isinstance(exc, IdempotentReplay)
    return exc.response()


async def handle_unexpected(request: Request, exc: Exception) -> Response:
    """Answer 500 without any detail of the exception; the edge middleware logs it."""
    return _respond(request, InternalError("An unexpected error occurred."))


def install_exception_handlers(app: FastAPI) -> None:
    """Register the problem renderers on an app."""
    app.add_exception_handler(AppError, handle_app_error)
    app.add_exception_handler(HTTPException, handle_http_exception)
    app.add_exception_handler(RequestValidationError, handle_validation_error)
    app.add_exception_handler(IdempotentReplay, handle_replay)
    app.add_exception_handler(Exception, handle_unexpected)
