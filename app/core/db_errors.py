"""Map database failures to 503 or 422 problems; re-run requests hit by serialization failures.

The re-run needs the request body again, so the middleware reads the whole body first:
it is also where the body size limit applies.
"""

import asyncio
import enum

import structlog
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.context import current_context
from app.core.errors import AppError, PayloadTooLarge, ServiceUnavailable, ValidationFailed
from app.core.middleware import send_problem

RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})
# Statement and lock timeouts, shutdowns and too many connections: try again later.
UNAVAILABLE_SQLSTATES = frozenset({"57014", "55P03", "57P01", "57P02", "57P03", "53300"})

log = structlog.get_logger("roombook.db")


class DbFailure(enum.Enum):
    """How a database exception should be handled."""

    RETRY = "retry"
    UNAVAILABLE = "unavailable"
    INVALID_DATA = "invalid_data"
    OTHER = "other"


def sqlstate_of(exc: BaseException) -> str | None:
    """Return the SQLSTATE carried by a driver exception, if any."""
    orig = getattr(exc, "orig", None)
    for candidate in (orig, getattr(orig, "__cause__", None), exc):
        code = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)
        if isinstance(code, str):
            return code
    return None


def classify(exc: BaseException) -> DbFailure:
    """Decide whether an exception means retry, database unavailable, unusable data, or other."""
    if isinstance(exc, DBAPIError):
        state = sqlstate_of(exc)
        if state in RETRYABLE_SQLSTATES:
            return DbFailure.RETRY
        state_class = (state or "")[:2]
        if exc.connection_invalidated or state in UNAVAILABLE_SQLSTATES or state_class == "08":
            return DbFailure.UNAVAILABLE
        if state_class == "22":  # data exception: the value itself is unusable
            return DbFailure.INVALID_DATA
        return DbFailure.OTHER
    if isinstance(exc, PoolTimeoutError | TimeoutError | OSError):
        return DbFailure.UNAVAILABLE
    return DbFailure.OTHER


class DatabaseErrorMiddleware:
    """Re-run a request after a serialization failure or deadlock; answer 503 when the DB is down.

    A data exception (SQLSTATE class 22: a value PostgreSQL cannot store or convert) is the
    caller's input, so it answers 422; the input types should have refused it earlier.

    The body is read whole before the app runs, so a retry sees it again; a body above
    `max_body_bytes`, declared or streamed, gets a 413 problem before the app sees any of
    it. Each attempt gets a fresh session and transaction from the session dependency. A
    request that committed early is never re-run: it gets the 503 at once.
    """

    def __init__(self, app: ASGIApp, *, attempts: int, max_body_bytes: int) -> None:
        self.app = app
        self.attempts = attempts
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the request, retrying or mapping database failures."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body_messages = await self._read_body(scope, receive)
        if body_messages is None:
            too_large = f"The request body exceeds {self.max_body_bytes} bytes."
            await send_problem(scope, send, PayloadTooLarge(too_large))
            return
        for attempt in range(1, self.attempts + 1):
            started = False

            async def tracking_send(message: Message) -> None:
                nonlocal started
                if message["type"] == "http.response.start":
                    started = True
                await send(message)

            try:
                await self.app(scope, _replay(body_messages, receive), tracking_send)
                return
            except Exception as exc:
                failure = classify(exc)
                if started or failure is DbFailure.OTHER:
                    raise
                # A request that committed part of its work (`commit_early`) is not
                # idempotent: running it again would apply that part twice.
                rerun = not current_context().committed_early
                if failure is DbFailure.RETRY and attempt < self.attempts and rerun:
                    log.warning("transaction conflict, retrying", attempt=attempt)
                    await asyncio.sleep(0.01 * 2**attempt)
                    continue
                log.warning(
                    "database refused the request", error=type(exc).__name__, failure=failure.value
                )
                await send_problem(scope, send, _problem(failure, rerun=rerun))
                return

    async def _read_body(self, scope: Scope, receive: Receive) -> list[Message] | None:
        """The body's messages, or None once it passes the limit (declared or counted)."""
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            return None
        messages: list[Message] = []
        received = 0
        while True:
            message = await receive()
            messages.append(message)
            received += len(message.get("body", b""))
            if received > self.max_body_bytes:
                return None
            if message["type"] != "http.request" or not message.get("more_body", False):
                return messages


def _problem(failure: DbFailure, *, rerun: bool) -> AppError:
    if failure is DbFailure.INVALID_DATA:
        return ValidationFailed(
            [], detail="The request contains a value the database cannot store or compare."
        )
    if failure is DbFailure.RETRY and not rerun:
        return ServiceUnavailable("The request conflicted with a concurrent change; try again.")
    if failure is DbFailure.RETRY:
        return ServiceUnavailable("The request kept conflicting with concurrent changes.")
    return ServiceUnavailable("The database is unavailable.")


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replay_receive() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay_receive
