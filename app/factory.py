"""Application factory and lifespan; tests build fresh apps from here."""

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI
from starlette.types import ASGIApp

from app.audit.router import router as audit_router
from app.auth.bootstrap import bootstrap_admin
from app.auth.ratelimit import RateLimiter
from app.auth.router import router as auth_router
from app.bookings.events_router import events_router
from app.bookings.feed_router import calendar_router
from app.bookings.hub import build_event_hub
from app.bookings.room_router import rooms_router
from app.bookings.router import bookings_router
from app.bookings.series_router import series_router
from app.core.clock import utc_now
from app.core.config import ServerSettings, Settings, get_settings
from app.core.db import create_engine, create_session_factory
from app.core.db_errors import DatabaseErrorMiddleware
from app.core.docs import mount_offline_docs
from app.core.handlers import install_exception_handlers
from app.core.health import router as health_router
from app.core.logging import configure_logging
from app.core.media import require_body_media_type
from app.core.metrics import MetricsEndpoint, RequestMetrics, process_exiting
from app.core.middleware import (
    EdgeMiddleware,
    ProxyTrust,
)
from app.core.openapi import COMMON_PROBLEMS, complete_document, operation_id
from app.core.pagination import CursorCodec
from app.core.routing import API_PREFIX
from app.core.security import TRIM_FROM_KIB, PasswordHasher, TokenCodec, share_one_malloc_arena
from app.core.tracing import NO_TELEMETRY, Tracing, start_tracing
from app.core.verified_tokens import VerifiedTokens
from app.users.router import router as users_router

EVENT_STREAM_PATH = f"{API_PREFIX}/bookings/events"
DESCRIPTION = (
    "Roombook books rooms for time ranges. Members book, managers run rooms and their "
    "rules, admins run accounts, and every change is audited. Errors are "
    "`application/problem+json` (RFC 9457)."
)
TAGS = [
    {"name": "health", "description": "Liveness and readiness probes."},
    {
        "name": "auth",
        "description": (
            "Roombook's first-party login, refresh-token rotation, logout, sessions and "
            "password changes. Rate-limited per client IP."
        ),
    },
    {
        "name": "users",
        "description": "Your own account, and account administration for admins (`If-Match`).",
    },
    {
        "name": "audit",
        "description": (
            "The append-only, hash-chained record of every change: search, export as "
            "NDJSON and verify the chain. Admins only."
        ),
    },
    {
        "name": "rooms",
        "description": (
            "Rooms with their equipment, time zone and booking policy, their blackouts and "
            "availability. Anyone signed in reads them; managers and admins run them."
        ),
    },
    {
        "name": "bookings",
        "description": (
            "Book rooms under their rules; refusals list every broken rule and offer free "
            "alternatives. Members manage their own bookings, managers and admins any."
        ),
    },
    {
        "name": "calendar",
        "description": (
            "iCalendar feeds calendar apps subscribe to, opened by a personal feed token "
            "instead of a bearer header: one's own bookings, and rooms' for managers and admins."
        ),
    },
]


class DatabaseNotConfigured(RuntimeError):
    """Raised at startup when no database URL was given."""


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Open the database pool for the app's lifetime; nothing connects at import time."""
    settings: Settings = app.state.settings
    if settings.database.url is None:
        raise DatabaseNotConfigured(
            "DATABASE__URL is not set: start with `make run`, which provides a database"
        )
    engine = create_engine(settings.database, url=settings.database.url.get_secret_value())
    tracing: Tracing | None = app.state.tracing
    if tracing is not None:
        tracing.instrument(engine=engine)
    app.state.engine = engine
    app.state.session_factory = create_session_factory(engine)
    app.state.event_hub = build_event_hub(
        settings=settings, session_factory=lambda: app.state.session_factory
    )
    try:
        await bootstrap_admin(
            app.state.session_factory, hasher=app.state.password_hasher, settings=settings
        )
        yield
    finally:
        await app.state.event_hub.close()
        app.state.password_hasher.close()
        await engine.dispose()
        process_exiting()
        if tracing is not None:
            tracing.shutdown()


class RoombookAPI(FastAPI):
    """FastAPI with the edge layer (request context, headers, shedding) around everything.

    Starlette answers unhandled exceptions in its outermost middleware, so headers and
    request ids added with `add_middleware` would miss 500 responses; the edge layer wraps it.
    """

    def build_middleware_stack(self) -> ASGIApp:
        """Wrap the standard stack with the edge middleware, and that with `/metrics`."""
        settings: Settings = self.state.settings
        edge = EdgeMiddleware(
            super().build_middleware_stack(),
            trusted_proxies=settings.http.trusted_proxies,
            allowed_hosts=settings.http.allowed_hosts,
            hsts=settings.is_production,
            no_store_prefix=f"{API_PREFIX}/",
            limit=settings.concurrency_limit,
            admission_wait_s=settings.server.admission_wait_ms / 1000,
            # Event streams live for hours and hold no connection: EVENTS__MAX_STREAMS caps them.
            long_lived_paths=frozenset({EVENT_STREAM_PATH}),
            metrics=RequestMetrics(self.routes),
        )
        if not settings.metrics.enabled:
            return edge
        return MetricsEndpoint(
            edge,
            allowed_clients=settings.metrics.allowed_clients,
            client_ip=ProxyTrust(settings.http.trusted_proxies).client_ip,
        )

    def openapi(self) -> dict[str, Any]:
        """The generated document, completed with what the edge and settings enforce."""
        if self.openapi_schema is None:
            settings: Settings = self.state.settings
            self.openapi_schema = complete_document(
                super().openapi(), password_min_length=settings.auth.password_min_length
            )
        return self.openapi_schema


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build a Roombook app from settings (the process settings by default)."""
    settings = settings or get_settings()
    configure_logging(
        settings.log, production=settings.is_production, tracing=settings.tracing.enabled
    )
    tracing = start_tracing(enabled=settings.tracing.enabled)
    docs = settings.docs_enabled
    app = RoombookAPI(
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json" if docs else None,
        title="Roombook API",
        version="0.1.0",
        description=DESCRIPTION,
        openapi_tags=TAGS,
        lifespan=lifespan,
        generate_unique_id_function=operation_id,
        responses=COMMON_PROBLEMS,
        dependencies=[Depends(require_body_media_type)],
        telemetry=tracing.telemetry() if tracing is not None else NO_TELEMETRY,
    )
    app.state.settings = settings
    app.state.clock = utc_now
    app.state.tracing = tracing
    if settings.security.argon2_memory_kib >= TRIM_FROM_KIB:
        # Before the hashing threads start, so the memory their hashes free can be trimmed.
        share_one_malloc_arena()
    app.state.password_hasher = PasswordHasher.from_settings(settings.security)
    app.state.token_codec = TokenCodec(settings.security)
    app.state.verified_tokens = VerifiedTokens(app.state.token_codec)
    app.state.cursor_codec = CursorCodec(settings.security.jwt_secret.get_secret_value().encode())
    app.state.rate_limiter = RateLimiter(settings.rate_limit)
    _add_middleware(app, settings)
    install_exception_handlers(app)
    if docs:
        mount_offline_docs(app)
    app.include_router(health_router)
    # The prefix goes on the include: FastAPI checks an include without one by building
    # every route's handlers up front, and the first request builds them again (twice the
    # start-up work; the test suite builds dozens of apps). Each domain router is included
    # on the app itself: every level of nesting is walked again to match each request
    # (in-process, one level less took 3 % of the CPU of GET /users/me, 7 % of GET /users).
    for router in DOMAIN_ROUTERS:
        app.include_router(router, prefix=API_PREFIX)
    return app


def create_served_app() -> FastAPI:
    """The app `make run` and `make serve` start: built, then the collector set for serving."""
    app = create_app()
    settings: Settings = app.state.settings
    settle_collector(settings.server)
    return app


def settle_collector(server: ServerSettings) -> None:
    """Freeze what start-up built and widen the collector's young generation, before serving."""
    # Modules, routes, schemas and settings live as long as the process: frozen, the
    # collector stops re-scanning them (in-process, 2,000 GET /users/me: gen-1 pauses
    # 15.3 ms in all, longest 9.0 ms, before; 2.0 ms, longest 0.5 ms, after).
    gc.collect()
    gc.freeze()
    # Requests' objects die by reference counting, not by collection: a young generation
    # larger than a burst of them keeps the collector off the request path (at Python's
    # 700, `GET /users/me` at 64 connections spent 6-8 % of the worker's CPU collecting).
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(server.gc_young_threshold, older, oldest)


DOMAIN_ROUTERS = (
    auth_router,
    users_router,
    audit_router,
    rooms_router,
    events_router,
    bookings_router,
    series_router,
    calendar_router,
)
"""Every domain's router, each included on the app under `API_PREFIX`."""


def _add_middleware(app: FastAPI, settings: Settings) -> None:
    # Added innermost first: the last one added runs first.
    app.add_middleware(
        DatabaseErrorMiddleware,
        attempts=settings.database.retry_attempts,
        max_body_bytes=settings.http.max_body_bytes,
    )
    if settings.http.cors_origins:
        from app.core.middleware import CORSMiddleware

        explicit = "*" not in settings.http.cors_origins
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.http.cors_origins,
            # Credentials (the refresh cookie) only ever go to origins named one by one.
            allow_credentials=explicit,
            allow_methods=["GET", "POST", "PATCH", "PUT", "DELETE"],
            allow_headers=[
                "Authorization",
                "Content-Type",
                "If-Match",
                "Idempotency-Key",
                "Last-Event-ID",
                "X-Request-ID",
            ],
            expose_headers=[
                "ETag",
                "Location",
                "Idempotent-Replayed",
                "Retry-After",
                "X-Request-ID",
                "RateLimit",
                "RateLimit-Policy",
            ],
        )
