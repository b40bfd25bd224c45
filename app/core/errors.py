"""The `AppError` hierarchy and its RFC 9457 problem+json rendering."""

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from starlette.responses import JSONResponse

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_BASE = "https://roombook.dev/problems/"
MAX_FIELD_ERRORS = 50
"""A 422 lists at most this many field errors and counts the rest in `errors_omitted`."""


class AppError(Exception):
    """A failure the API reports to its caller as a problem document."""

    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad-request"
    title: ClassVar[str] = "Bad request"

    def __init__(self, detail: str | None = None, *, headers: Mapping[str, str] | None = None):
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.headers = dict(headers or {})

    @classmethod
    def type_uri(cls) -> str:
        """Stable URI naming this kind of problem."""
        return PROBLEM_BASE + cls.code

    def extensions(self) -> dict[str, Any]:
        """Extra members for the problem body."""
        return {}


class BadRequest(AppError):
    """The request is malformed in a way validation does not cover."""


class ValidationFailed(AppError):
    """Input failed validation; `errors` names each field (the first 50 of them)."""

    status = 422
    code = "validation-failed"
    title = "Validation failed"

    def __init__(
        self,
        errors: Sequence[Mapping[str, str]],
        detail: str | None = None,
        *,
        omitted: int = 0,
    ):
        super().__init__(detail or "The request contains invalid fields.")
        # A body of 100,000 unknown keys is 100,000 errors: the answer stays small.
        self.errors = [dict(e) for e in errors[:MAX_FIELD_ERRORS]]
        self.omitted = omitted + max(len(errors) - MAX_FIELD_ERRORS, 0)

    def extensions(self) -> dict[str, Any]:
        """Carry the per-field errors, and how many more there were."""
        return {"errors": self.errors} | ({"errors_omitted": self.omitted} if self.omitted else {})


class Unauthorized(AppError):
    """Credentials are missing or invalid."""

    status = 401
    code = "unauthorized"
    title = "Unauthorized"

    def __init__(self, detail: str | None = None, *, headers: Mapping[str, str] | None = None):
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer", **(headers or {})})


class Forbidden(AppError):
    """The caller is known but may not do this."""

    status = 403
    code = "forbidden"
    title = "Forbidden"


class NotFound(AppError):
    """The resource does not exist or is not visible to the caller."""

    status = 404
    code = "not-found"
    title = "Not found"


class MethodNotAllowed(AppError):
    """The resource exists but not with this method."""

    status = 405
    code = "method-not-allowed"
    title = "Method not allowed"


class Conflict(AppError):
    """The request clashes with the current state."""

    status = 409
    code = "conflict"
    title = "Conflict"


class PreconditionFailed(AppError):
    """`If-Match` names a version that is no longer current."""

    status = 412
    code = "precondition-failed"
    title = "Precondition failed"


class PayloadTooLarge(AppError):
    """The request body exceeds the configured limit."""

    status = 413
    code = "payload-too-large"
    title = "Payload too large"


class UnsupportedMediaType(AppError):
    """The body is not in a media type the endpoint accepts."""

    status = 415
    code = "unsupported-media-type"
    title = "Unsupported media type"


class PreconditionRequired(AppError):
    """The update needs `If-Match`."""

    status = 428
    code = "precondition-required"
    title = "Precondition required"


class RateLimited(AppError):
    """Too many requests; `Retry-After` says when to come back."""

    status = 429
    code = "rate-limited"
    title = "Too many requests"

    def __init__(
        self,
        detail: str | None = None,
        *,
        retry_after_s: int | None = None,
        headers: Mapping[str, str] | None = None,
    ):
        # Services say how long to wait; the header that carries it is the edge's business.
        wait = {} if retry_after_s is None else {"Retry-After": str(retry_after_s)}
        super().__init__(detail, headers={**(headers or {}), **wait})


class InternalError(AppError):
    """Something failed that the caller cannot fix; details stay in the logs."""

    status = 500
    code = "internal-error"
    title = "Internal server error"


class ServiceUnavailable(AppError):
    """A dependency such as the database is unavailable; retry later."""

    status = 503
    code = "service-unavailable"
    title = "Service unavailable"

    def __init__(self, detail: str | None = None, *, retry_after_s: int = 5):
        super().__init__(detail, headers={"Retry-After": str(retry_after_s)})


def problem_body(error: AppError, *, instance: str, request_id: str | None) -> dict[str, Any]:
    """Build the problem document for an error."""
    body: dict[str, Any] = {
        "type": error.type_uri(),
        "title": error.title,
        "status": error.status,
        "detail": error.detail,
        "instance": instance,
        "code": error.code,
        "request_id": request_id,
    }
    body.update(error.extensions())
    return body


def problem_response(error: AppError, *, instance: str, request_id: str | None) -> JSONResponse:
    """Render an error as an `application/problem+json` response."""
    return JSONResponse(
        problem_body(error, instance=instance, request_id=request_id),
        status_code=error.status,
        headers=error.headers,
        media_type=PROBLEM_MEDIA_TYPE,
    )
