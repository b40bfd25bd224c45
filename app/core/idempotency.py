"""`Idempotency-Key` on POSTs: a retry gets the first answer again instead of a second change.

A route opts in by taking the request's `Idempotency` (`IdempotencyDep` in
`app.auth.dependencies`, which knows the caller) and returning `await
idempotency.respond(model)`. Before the route runs, a key already answered is replayed or
refused; the answer the route returns is stored in the request's own transaction.
"""

import hashlib
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Header, Request, Response
from pydantic import BaseModel
from pydantic_core import to_json
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import AppError, Conflict
from app.core.idempotency_store import IdempotencyStore, StoredAnswer

KEY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
KEY_PATTERN = r"^[\x20-\x7e]{1,255}$"
"""A key is 1 to 255 printable ASCII characters (a UUID is the usual choice)."""
KEPT_HEADERS = frozenset({"location", "content-location", "etag"})
"""Headers of an answer that a replay repeats; nothing else (no cookie, no rate budget) is kept."""
IN_FLIGHT_RETRY_AFTER_S = 1
JSON_MEDIA_TYPE = "application/json"

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias=KEY_HEADER,
        min_length=1,
        max_length=255,
        pattern=KEY_PATTERN,
        description=(
            "Makes a retry safe: the same key with the same request replays the first "
            f"committed answer (with `{REPLAYED_HEADER}: true`) instead of running it again."
        ),
    ),
]
"""The raw `Idempotency-Key` header; a malformed one is a 422 naming it."""


class IdempotencyKeyReused(AppError):
    """The key already answered a different request (another body, path or method)."""

    status = 422
    code = "idempotency-key-reused"
    title = "Idempotency key reused"


class IdempotencyKeyInFlight(Conflict):
    """The first request with this key is still running; retry once it has answered."""

    code = "idempotency-key-in-flight"
    title = "Request with this key in progress"

    def __init__(self, detail: str | None = None):
        super().__init__(detail, headers={"Retry-After": str(IN_FLIGHT_RETRY_AFTER_S)})


class IdempotentReplay(Exception):
    """Raised before the route runs to answer with the stored response instead.

    Raised rather than returned so that a route cannot forget to check for a replay and run
    the change a second time; `app/core/handlers.py` turns it into the stored answer.
    """

    def __init__(self, answer: StoredAnswer) -> None:
        super().__init__("replayed")
        self.answer = answer

    def response(self) -> Response:
        """The stored answer, byte for byte, marked as a replay."""
        answer = self.answer
        return Response(
            content=answer.body,
            status_code=answer.status_code,
            headers={**answer.headers, REPLAYED_HEADER: "true"},
            media_type=JSON_MEDIA_TYPE if answer.body else None,
        )


async def request_hash(request: Request) -> bytes:
    """SHA-256 of method, path, query and body: what a retry with the same key must repeat."""
    digest = hashlib.sha256()
    for part in (request.method.encode(), request.url.path.encode(), request.url.query.encode()):
        # Length-prefixed, so bytes moved from one part to the next change the hash.
        digest.update(len(part).to_bytes(8, "big") + part)
    digest.update(await canonical_body(request))
    return digest.digest()


async def canonical_body(request: Request) -> bytes:
    """A JSON body with sorted keys and no spaces; any other body as sent.

    So a retry that serialises the same document differently is the same request. FastAPI
    has parsed a JSON body already, and `request.json()` returns that parsed document.
    """
    try:
        document = await request.json()
    except ValueError:  # empty, or not JSON
        return await request.body()
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True, slots=True)
class HeldKey:
    """A key whose lock this request holds, and the hash of the request it stands for."""

    caller_id: uuid.UUID
    key: str
    request_hash: bytes


class Idempotency:
    """A request's idempotency: checked before the route runs, its answer stored at the end."""

    def __init__(
        self,
        *,
        store: IdempotencyStore,
        response: Response,
        route_status: int,
        held: HeldKey | None,
        ttl_s: int,
    ) -> None:
        self.store = store
        self.response = response
        self.route_status = route_status
        self.held = held
        """The key the answer is stored under; None when the request came without one."""
        self.ttl_s = ttl_s

    @classmethod
    async def begin(
        cls,
        *,
        session: AsyncSession,
        request: Request,
        response: Response,
        caller_id: uuid.UUID,
        key: str | None,
        ttl_s: int,
    ) -> "Idempotency":
        """Replay (`IdempotentReplay`) or refuse a key already used; else hold it for this request.

        `response` is the request's own (FastAPI's injected `Response`): the headers the
        route sets on it are sent, and those in `KEPT_HEADERS` stored.
        """
        store = IdempotencyStore(session)
        route_status = getattr(request.scope.get("route"), "status_code", None) or 200
        if key is None:
            return cls(
                store=store, response=response, route_status=route_status, held=None, ttl_s=ttl_s
            )
        fingerprint = await request_hash(request)
        # A retry of a request still running must neither run it again nor wait for it
        # (waiting would hold a pooled connection for as long as the first one runs): the
        # lock is only tried, and no one ever queues on it. Transaction-scoped, it is
        # released by the COMMIT that stores the answer or by the rollback of a failure,
        # so a crashed request never leaves its key locked.
        locked = await store.try_lock(caller_id=caller_id, key=key)
        # Looked up after the lock, in a statement of its own: under READ COMMITTED it sees
        # the answer of a holder that committed before the lock was granted (a lookup in
        # the locking statement would read a snapshot taken before). Looked up even when
        # the lock is not granted: a stored answer is replayed while another retry holds it.
        stored = await store.find(caller_id=caller_id, key=key)
        if stored is not None:
            if stored.request_hash != fingerprint:
                raise IdempotencyKeyReused(
                    f"This {KEY_HEADER} was used for a different request; send a new key."
                )
            raise IdempotentReplay(stored)
        if not locked:
            raise IdempotencyKeyInFlight(
                f"A request with this {KEY_HEADER} is still in progress; retry shortly."
            )
        return cls(
            store=store,
            response=response,
            route_status=route_status,
            held=HeldKey(caller_id=caller_id, key=key, request_hash=fingerprint),
            ttl_s=ttl_s,
        )

    async def respond(self, content: BaseModel | None = None) -> Response:
        """The route's answer, serialised once; stored under the key in this transaction.

        The status is the route's (or one set on the injected `Response`), the headers
        those the route set on the injected `Response`.
        """
        body = b"" if content is None else to_json(content, by_alias=True)
        status_code = self.response.status_code or self.route_status
        if self.held is not None:
            await self.store.save(
                caller_id=self.held.caller_id,
                key=self.held.key,
                request_hash=self.held.request_hash,
                status_code=status_code,
                headers=_kept(self.response.headers.items()),
                body=body,
                ttl_s=self.ttl_s,
            )
        answer = Response(
            content=body,
            status_code=status_code,
            media_type=JSON_MEDIA_TYPE if body else None,
        )
        answer.headers.raw.extend(self.response.headers.raw)
        return answer


def _kept(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    return {name: value for name, value in headers if name in KEPT_HEADERS}
