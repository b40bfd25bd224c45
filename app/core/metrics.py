"""Prometheus metrics: what Roombook records, and `/metrics` for the scrapers on the allow-list.

Every metric is a module-level `prometheus_client` object. Under `make serve` with metrics
on, `app.cli` points `PROMETHEUS_MULTIPROC_DIR` at a shared directory before this module
is imported, so each worker writes its values to files there and a scrape of any worker
reads the sum of all of them.

No label ever holds a user id, an email, a raw path or another unbounded value: routes
are templates taken from the matched route, methods outside the standard set are
`OTHER`, and every other label comes from a closed list in code.
"""

import asyncio
import os
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from enum import StrEnum
from ipaddress import ip_address, ip_network
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, multiprocess
from prometheus_client.exposition import choose_encoder
from sqlalchemy.pool import ConnectionPoolEntry
from starlette.datastructures import Headers
from starlette.routing import BaseRoute, Mount
from starlette.types import ASGIApp, Receive, Scope, Send

from app.core.config import MULTIPROC_ENV
from app.core.pool import FifoAsyncQueuePool

METRICS_PATH = "/metrics"
UNMATCHED_ROUTE = "unmatched"
"""Route label of requests no route took: unknown paths and those refused at the edge."""
OTHER_METHOD = "OTHER"
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER_VIOLATION = "other"
SHORT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
"""Buckets for waits and appends, which take milliseconds when all is well."""


class LoginOutcome(StrEnum):
    """How a login ended."""

    SUCCESS = "success"
    FAILURE = "failure"
    THROTTLED = "throttled"


class RefreshOutcome(StrEnum):
    """How a refresh-token exchange ended."""

    SUCCESS = "success"
    GRACE_REPLAY = "grace_replay"
    REJECTED = "rejected"
    REUSE_DETECTED = "reuse_detected"


class BookingOutcome(StrEnum):
    """How an attempt to book ended."""

    CREATED = "created"
    REFUSED = "refused"


REQUESTS = Counter(
    "roombook_http_requests",
    "HTTP requests answered, by method, route template and status class.",
    ["method", "route", "status_class"],
)
REQUEST_DURATION = Histogram(
    "roombook_http_request_duration_seconds",
    "Time from a request's arrival to the end of its answer.",
    ["method", "route", "status_class"],
)
IN_FLIGHT = Gauge(
    "roombook_http_requests_in_flight",
    "Requests being served right now.",
    multiprocess_mode="livesum",
)
POOL_CHECKED_OUT = Gauge(
    "roombook_db_pool_checked_out",
    "Database connections lent out of the pool right now.",
    multiprocess_mode="livesum",
)
POOL_OVERFLOW = Gauge(
    "roombook_db_pool_overflow",
    "Connections open beyond DATABASE__POOL_SIZE right now (at most DATABASE__MAX_OVERFLOW).",
    multiprocess_mode="livesum",
)
POOL_WAIT = Histogram(
    "roombook_db_pool_wait_seconds",
    "Time a checkout took to get a connection: waiting for a free one, or opening one.",
    buckets=SHORT_BUCKETS,
)
LOGINS = Counter("roombook_auth_logins", "Login attempts by outcome.", ["outcome"])
REFRESHES = Counter("roombook_auth_refreshes", "Refresh-token exchanges by outcome.", ["outcome"])
RATE_LIMITED = Counter(
    "roombook_rate_limit_rejections",
    "Requests refused with 429 by a per-IP rate-limit policy.",
    ["policy"],
)
BOOKINGS = Counter("roombook_bookings", "Attempts to book, by outcome.", ["outcome"])
BOOKING_VIOLATIONS = Counter(
    "roombook_booking_violations",
    "Rule violations of refused bookings, by violation code (one refusal may count several).",
    ["code"],
)
AUDIT_APPEND = Histogram(
    "roombook_audit_append_seconds",
    "Time to append a unit of work's audit entries to the chain, head lock included.",
    buckets=SHORT_BUCKETS,
)
EVENT_STREAMS = Gauge(
    "roombook_event_streams_open",
    "Server-sent event streams open right now.",
    multiprocess_mode="livesum",
)

for _counter, _values in ((LOGINS, LoginOutcome), (REFRESHES, RefreshOutcome)):
    for _value in _values:
        # Each series exists from the start at 0, so rates and alerts see it before it moves.
        _counter.labels(_value.value)
for _outcome in BookingOutcome:
    BOOKINGS.labels(_outcome.value)


def record_login(outcome: LoginOutcome) -> None:
    """Count one login attempt."""
    LOGINS.labels(outcome.value).inc()


def record_refresh(outcome: RefreshOutcome) -> None:
    """Count one refresh-token exchange."""
    REFRESHES.labels(outcome.value).inc()


def record_rate_limited(*, policy: str) -> None:
    """Count one request refused by a rate-limit policy (a policy name fixed in code)."""
    RATE_LIMITED.labels(policy).inc()


def time_audit_append() -> AbstractContextManager[Any]:
    """Time one append of audit entries to the chain."""
    return AUDIT_APPEND.time()


@contextmanager
def open_event_stream() -> Iterator[None]:
    """Count an event stream as open while the block runs."""
    EVENT_STREAMS.inc()
    try:
        yield
    finally:
        EVENT_STREAMS.dec()


class BookingMetrics:
    """Booking outcomes, with violation codes from the closed list the bookings domain names.

    Core knows no domain, so the codes come in as strings; a code outside the list is
    counted as `other` rather than growing a new series.
    """

    def __init__(self, *, violation_codes: Collection[str]) -> None:
        self.codes = frozenset(violation_codes)
        for code in (*self.codes, OTHER_VIOLATION):
            BOOKING_VIOLATIONS.labels(code)

    def created(self) -> None:
        """Count one booking made."""
        BOOKINGS.labels(BookingOutcome.CREATED.value).inc()

    def refused(self, *, violation_codes: Iterable[str]) -> None:
        """Count one refused booking and each rule it broke."""
        BOOKINGS.labels(BookingOutcome.REFUSED.value).inc()
        for code in violation_codes:
            BOOKING_VIOLATIONS.labels(code if code in self.codes else OTHER_VIOLATION).inc()


def template_of(scope: Scope) -> str | None:
    """The template of the route that took the request (`/api/v1/users/{user_id}`), if any.

    The router leaves the matched route in the scope; its template lacks the prefixes it
    was included under, which are the part of the path before what the route matched.
    """
    route = scope.get("route")
    path_format: str | None = getattr(route, "path_format", None)
    path_regex = getattr(route, "path_regex", None)
    if path_format is None or path_regex is None:
        return None
    path: str = scope["path"]
    for cut, char in enumerate(path):
        if char == "/" and path_regex.fullmatch(path[cut:]):
            return path[:cut] + path_format
    return None


class RequestMetrics:
    """Counts and times each request by method, route template and status class.

    The edge middleware calls `started` and `finished` once per request. The template
    comes from the route the router chose, never from the raw path. Each route's template
    is worked out at its first request and kept, so the labels stay one per route; nothing
    is built up front (listing every route's template made FastAPI build the handlers of
    every route of the app before its first request).
    """

    def __init__(self, routes: Sequence[BaseRoute]) -> None:
        self.templates: dict[int, str] = {}
        # A mounted app (the docs' static files) leaves no route in the scope: by its app.
        self.mounts = {
            id(route.app): route.path_format for route in routes if isinstance(route, Mount)
        }
        self.series: dict[tuple[str, str, str], tuple[Any, Any]] = {}

    def started(self) -> None:
        """A request came in."""
        IN_FLIGHT.inc()

    def finished(self, scope: Scope, *, status: int, duration_s: float) -> None:
        """A request was answered (or failed) with `status` after `duration_s`."""
        IN_FLIGHT.dec()
        method: str = scope["method"]
        key = (
            method if method in KNOWN_METHODS else OTHER_METHOD,
            self.route_of(scope),
            f"{status // 100}xx",
        )
        series = self.series.get(key)
        if series is None:
            # Labelled children are looked up once per key: the lookup takes a lock.
            series = self.series[key] = (REQUESTS.labels(*key), REQUEST_DURATION.labels(*key))
        series[0].inc()
        series[1].observe(duration_s)

    def route_of(self, scope: Scope) -> str:
        """The template of the route that took the request, or `unmatched`."""
        endpoint = scope.get("endpoint")
        if endpoint is None:
            return UNMATCHED_ROUTE
        if id(endpoint) in self.mounts:
            return self.mounts[id(endpoint)]
        key = id(scope.get("route"))
        template = self.templates.get(key)
        if template is None:
            template = template_of(scope)
            if template is None:
                return UNMATCHED_ROUTE
            self.templates[key] = template
        return template


class MeteredPool(FifoAsyncQueuePool):
    """The first-come, first-served pool, reporting connections lent out, overflow and waits."""

    # Log as the pool it extends, under `sqlalchemy` and its levels, not as app code.
    _sqla_logger_namespace = "sqlalchemy.pool.impl.AsyncAdaptedQueuePool"

    def _do_get(self) -> ConnectionPoolEntry:
        started = time.perf_counter()
        try:
            return super()._do_get()
        finally:
            POOL_WAIT.observe(time.perf_counter() - started)
            self._report()

    def _do_return_conn(self, record: ConnectionPoolEntry) -> None:
        super()._do_return_conn(record)
        self._report()

    def _report(self) -> None:
        POOL_CHECKED_OUT.set(self.checkedout())
        # `overflow()` starts at minus the pool size: only connections beyond it count.
        POOL_OVERFLOW.set(max(self.overflow(), 0))


def exposition(accept: str | None) -> tuple[bytes, str]:
    """The current values as Prometheus text (or OpenMetrics, if asked), and its media type."""
    encoder, media_type = choose_encoder(accept or "")
    directory = os.environ.get(MULTIPROC_ENV)
    if directory is None:
        return encoder(REGISTRY), media_type
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    return encoder(registry), media_type


def process_exiting() -> None:
    """Drop this worker's live gauges from the shared directory (multiprocess mode only)."""
    directory = os.environ.get(MULTIPROC_ENV)
    if directory is not None:
        multiprocess.mark_process_dead(os.getpid(), directory)  # type: ignore[no-untyped-call]


class MetricsEndpoint:
    """Answers `GET /metrics` to the clients on the allow-list; every other request passes on.

    It sits outside the edge middleware: a scrape is neither shed nor host-checked nor
    logged, and counts in no request metric. A client not on the list goes on to the
    app like any other request and gets its 404, so the endpoint does not show.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        allowed_clients: list[str],
        client_ip: Callable[[Scope], str | None],
    ) -> None:
        self.app = app
        self.networks = [ip_network(entry, strict=False) for entry in allowed_clients]
        self.client_ip = client_ip

    def allows(self, address: str | None) -> bool:
        """Whether a client address is on the allow-list."""
        try:
            return address is not None and any(ip_address(address) in n for n in self.networks)
        except ValueError:
            return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve a scrape from an allowed client, or pass the request on."""
        if (
            scope["type"] != "http"
            or scope["path"] != METRICS_PATH
            or scope["method"] not in ("GET", "HEAD")
            # The client address as the edge sees it: forwarded headers count only from
            # HTTP__TRUSTED_PROXIES, so a proxy's own address never lets the public in.
            or not self.allows(self.client_ip(scope))
        ):
            await self.app(scope, receive, send)
            return
        accept = Headers(scope=scope).get("accept")
        # Reading every worker's files is blocking I/O: off the event loop.
        body, media_type = await asyncio.to_thread(exposition, accept)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", media_type.encode()),
                    (b"cache-control", b"no-store"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send(
            {"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body}
        )
