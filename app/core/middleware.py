"""Pure ASGI middleware at the HTTP edge: request ids, access log, headers, hosts, body size."""

import re
import time
import uuid
from ipaddress import ip_address, ip_network

import structlog
from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware.cors import CORSMiddleware as StarletteCORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.admission import Admission
from app.core.context import RequestContext, start_context
from app.core.errors import (
    AppError,
    BadRequest,
    ServiceUnavailable,
    problem_response,
)
from app.core.metrics import RequestMetrics

REQUEST_ID_HEADER = "x-request-id"
REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
DOCS_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self' 'unsafe-inline'; worker-src 'self' blob:; frame-ancestors 'none'"
)
API_CSP = "default-src 'none'; frame-ancestors 'none'"
DOCS_PATHS = ("/docs", "/redoc", "/static-offline-docs")
HEALTH_PREFIX = "/health/"
LIVENESS_PATH = "/health/live"
OVERLOAD_RETRY_AFTER_S = 1

access_log = structlog.get_logger("roombook.access")
error_log = structlog.get_logger("roombook.error")


class ProxyTrust:
    """Which peers may speak for the client through `X-Forwarded-For` and `-Proto`.

    This is the only place that reads forwarded headers (uvicorn's own proxy handling is
    off): with no trusted proxies, no forwarded header is believed from anyone.
    """

    def __init__(self, trusted_proxies: list[str]) -> None:
        self.networks = [ip_network(p, strict=False) for p in trusted_proxies]

    def trusts(self, address: str | None) -> bool:
        """Whether an address is one of the trusted proxies."""
        try:
            return address is not None and any(ip_address(address) in n for n in self.networks)
        except ValueError:
            return False

    def client_ip(self, scope: Scope) -> str | None:
        """The caller's address: the rightmost hop no trusted proxy vouches for."""
        peer = scope["client"][0] if scope.get("client") else None
        if not self.trusts(peer):
            return peer
        forwarded = Headers(scope=scope).get("x-forwarded-for", "")
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        for hop in reversed(hops):
            if not self.trusts(hop):
                return hop
        return hops[0] if hops else peer

    def scheme(self, scope: Scope) -> str:
        """The scheme the client used: the nearest trusted proxy's `X-Forwarded-Proto`."""
        own: str = scope.get("scheme", "http")
        peer = scope["client"][0] if scope.get("client") else None
        if not self.trusts(peer):
            return own
        claimed = Headers(scope=scope).get("x-forwarded-proto", "").split(",")[-1].strip()
        return claimed.lower() if claimed.lower() in ("http", "https") else own


class EdgeMiddleware:
    """The outermost layer: request id and context, access log, security headers, shedding,
    and the `Host` check.

    One layer with one `send` wrapper does what four did, since every response passes
    through all of it. It wraps the whole app (outside Starlette's error middleware), so
    it also sees the 500s: they get the request id and the security headers too, and each
    unhandled exception is logged once, with traceback and request id.

    Security headers go on every response; responses under `no_store_prefix` (the API)
    also get `Cache-Control: no-store`.

    Load shedding: beyond `limit` requests in progress a request waits for a place up to
    `admission_wait_s`, then gets a 503 problem. Queueing more work than the pool and the
    hash threads can serve only makes every request slow; a 503 with `Retry-After` lets
    clients and balancers back off. The short wait keeps clients that retry at once from
    spending the core on 503s while the admitted requests starve.

    A `Host` that is not an allowed host gets a 400 problem; the health probes are not
    checked (container and load-balancer probes call by IP, and they reveal nothing).

    The liveness probe is never shed, so an overloaded process is not
    restarted for it. Nor are `long_lived_paths` (streams), counted or shed: open for
    hours, they would take the slots of short requests; they have a cap of their own.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        trusted_proxies: list[str],
        allowed_hosts: list[str],
        hsts: bool,
        no_store_prefix: str,
        limit: int,
        admission_wait_s: float,
        metrics: RequestMetrics,
        long_lived_paths: frozenset[str] = frozenset(),
    ) -> None:
        self.app = app
        self.long_lived_paths = long_lived_paths
        self.proxies = ProxyTrust(trusted_proxies)
        self.hosts = HostPolicy(allowed_hosts)
        self.hsts = hsts
        self.no_store_prefix = no_store_prefix
        self.admission = Admission(limit=limit, wait_s=admission_wait_s)
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run one request inside its own context and decorate its response."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        offered = headers.get(REQUEST_ID_HEADER, "")
        request_id = offered if REQUEST_ID_PATTERN.fullmatch(offered) else uuid.uuid4().hex
        context = RequestContext(
            request_id=request_id,
            client_ip=self.proxies.client_ip(scope),
            user_agent=headers.get("user-agent", "")[:256] or None,
        )
        start_context(context)
        # Behind a TLS-terminating proxy the URL (and the same-origin check) needs https.
        scope["scheme"] = self.proxies.scheme(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        path: str = scope["path"]
        docs = path.startswith(DOCS_PATHS)
        api = path.startswith(self.no_store_prefix)
        status = 500
        started = time.perf_counter()
        self.metrics.started()

        async def send_decorated(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                response_headers = MutableHeaders(scope=message)
                self._secure(response_headers, docs=docs, api=api)
                response_headers[REQUEST_ID_HEADER] = request_id
            await send(message)

        try:
            if path.startswith(HEALTH_PREFIX) or self.hosts.is_allowed(
                host_name(headers.get("host", ""))
            ):
                await self._admit(scope, receive, send_decorated)
            else:
                await send_problem(scope, send_decorated, BadRequest("Invalid host header."))
        except Exception:
            # The error middleware already answered with a problem document; log it once.
            error_log.exception("unhandled exception", path=path)
        finally:
            duration_s = time.perf_counter() - started
            self.metrics.finished(scope, status=status, duration_s=duration_s)
            access_log.info(
                "request",
                method=scope["method"],
                path=path,
                status=status,
                duration_ms=round(duration_s * 1000, 2),
                client_ip=context.client_ip,
                user_id=str(context.actor_id) if context.actor_id else None,
            )

    async def _admit(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] == LIVENESS_PATH or scope["path"] in self.long_lived_paths:
            await self.app(scope, receive, send)
            return
        if not await self.admission.enter():
            await send_problem(
                scope,
                send,
                ServiceUnavailable("The server is busy.", retry_after_s=OVERLOAD_RETRY_AFTER_S),
            )
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self.admission.leave()

    def _secure(self, headers: MutableHeaders, *, docs: bool, api: bool) -> None:
        headers["x-content-type-options"] = "nosniff"
        headers["x-frame-options"] = "DENY"
        headers["referrer-policy"] = "no-referrer"
        headers["cross-origin-opener-policy"] = "same-origin"
        headers["content-security-policy"] = DOCS_CSP if docs else API_CSP
        if self.hsts:
            headers["strict-transport-security"] = "max-age=63072000; includeSubDomains"
        if api and "cache-control" not in headers:
            # API answers carry personal data (accounts, sessions, audit): no browser or
            # shared cache may keep a copy. A route that sets its own rule (the calendar
            # feeds: private, revalidated by ETag) has weighed that itself.
            headers["cache-control"] = "no-store"


async def send_problem(scope: Scope, send: Send, error: AppError) -> None:
    """Answer directly from middleware with a problem document."""
    response = problem_response(
        error, instance=scope["path"], request_id=scope.get("state", {}).get("request_id")
    )
    await response({"type": "http"}, _no_receive, send)


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}


def host_name(header: str) -> str:
    """The host of a `Host` header without its port; IPv6 literals keep their brackets."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[: header.find("]") + 1] if "]" in header else header
    return header.split(":", 1)[0]


class HostPolicy:
    """Which `Host` headers the API answers: exact names and `*.domain` patterns."""

    def __init__(self, allowed_hosts: list[str]) -> None:
        self.allow_any = "*" in allowed_hosts
        self.allowed_hosts = [h.lower() for h in allowed_hosts]

    def is_allowed(self, host: str) -> bool:
        """Match a host against exact names and `*.domain` patterns."""
        if self.allow_any:
            return True
        for pattern in self.allowed_hosts:
            if host == pattern or (pattern.startswith("*.") and host.endswith(pattern[1:])):
                return True
        return False


class CORSMiddleware(StarletteCORSMiddleware):
    """Starlette's CORS, but requests from origins not allowed pass through without CORS headers.

    Starlette adds `Access-Control-Allow-Credentials` and the exposed headers to every
    response that carries an Origin, and answers foreign preflights itself.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Apply CORS only to allowed origins."""
        origin = Headers(scope=scope).get("origin") if scope["type"] == "http" else None
        # `Origin: null` and foreign origins get nothing that could read as a CORS grant.
        if origin is not None and not self.is_allowed_origin(origin=origin):
            await self.app(scope, receive, send)
            return
        await super().__call__(scope, receive, send)
