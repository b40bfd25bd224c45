"""Prometheus metrics: names and labels, route templates, bounded labels, the allow-list."""

import re
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import fastapi.routing
import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from httpx import ASGITransport, AsyncClient
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr, ValidationError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.routing import BaseRoute
from starlette.types import Scope

from app.core.config import (
    AuditSettings,
    DatabaseSettings,
    HttpSettings,
    MetricsSettings,
    SecuritySettings,
    Settings,
)
from app.core.db import create_engine
from app.core.metrics import (
    KNOWN_METHODS,
    OTHER_METHOD,
    UNMATCHED_ROUTE,
    BookingMetrics,
    RequestMetrics,
    open_event_stream,
)
from app.factory import create_app
from app.users.router import get_me
from app.users.schemas import Role
from tests.conftest import AuthHeaders, CreateUser, make_settings
from tests.core.support import serve

SCRAPER = "10.20.30.40"
PROXY = "10.0.0.2"
GOOD_SECRET = "a-production-signing-secret-that-is-long-enough"
GOOD_CHAIN_KEY = "a-production-audit-chain-key-that-is-long-enough"
UUID_TEXT = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def route_templates(routes: Sequence[BaseRoute]) -> set[str]:
    """Every route template of an app, as FastAPI lists them (building every route)."""
    templates: set[str] = set()
    for context in iter_route_contexts(routes):
        if context.path_format is not None:
            templates.add(context.path_format)
    return templates


def sample(name: str, **labels: str) -> float:
    """The current value of one series in this process (0 when it does not exist yet)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def metrics_settings(database_url: str, **overrides: Any) -> Settings:
    """Test settings with `/metrics` on for `SCRAPER`, behind `PROXY`."""
    return make_settings(
        database_url,
        metrics=MetricsSettings(enabled=True, allowed_clients=[SCRAPER, "192.0.2.0/24"]),
        http=HttpSettings(trusted_proxies=[PROXY]),
        **overrides,
    )


@pytest.fixture
async def metered(database_url: str, db_session: AsyncSession) -> AsyncIterator[FastAPI]:
    """An app with metrics on, its requests inside the test's transaction."""
    application = create_app(metrics_settings(database_url))
    async with serve(application):
        application.state.session_factory = async_sessionmaker(
            bind=db_session.bind, expire_on_commit=False, join_transaction_mode="create_savepoint"
        )
        yield application


def client_from(app: FastAPI, address: str) -> AsyncClient:
    """A client whose requests come from `address`."""
    return AsyncClient(
        transport=ASGITransport(app=app, client=(address, 40000)), base_url="http://testserver"
    )


async def scrape(app: FastAPI, address: str = SCRAPER) -> str:
    """GET /metrics from an address and return the text (asserting a 200)."""
    async with client_from(app, address) as client:
        response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


def label_values(exposition: str, label: str) -> dict[str, set[str]]:
    """Every value each metric family uses for `label`."""
    found: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(exposition):
        for metric in family.samples:
            if label in metric.labels:
                found.setdefault(family.name, set()).add(metric.labels[label])
    return found


async def test_requests_are_counted_and_timed_by_route_template(
    metered: FastAPI,
    create_user: CreateUser,
    auth_headers: AuthHeaders,
) -> None:
    admin = await auth_headers(await create_user(role=Role.ADMIN))
    member_id = await create_user()
    template = "/api/v1/users/{user_id}"
    labels = {"method": "GET", "route": template, "status_class": "2xx"}
    before = sample("roombook_http_requests_total", **labels)
    timed_before = sample("roombook_http_request_duration_seconds_count", **labels)
    missing_before = sample(
        "roombook_http_requests_total", method="GET", route=UNMATCHED_ROUTE, status_class="4xx"
    )

    async with client_from(metered, "127.0.0.1") as client:
        for _ in range(3):
            response = await client.get(f"/api/v1/users/{member_id}", headers=admin)
            assert response.status_code == 200
        assert (await client.get(f"/no/such/{uuid.uuid4()}")).status_code == 404

    assert sample("roombook_http_requests_total", **labels) == before + 3
    assert sample("roombook_http_request_duration_seconds_count", **labels) == timed_before + 3
    assert sample(
        "roombook_http_requests_total", method="GET", route=UNMATCHED_ROUTE, status_class="4xx"
    ) == (missing_before + 1)
    exposition = await scrape(metered)
    assert f'route="{template}"' in exposition
    assert str(member_id) not in exposition


async def test_the_scrape_names_every_metric_with_its_labels(metered: FastAPI) -> None:
    async with client_from(metered, "127.0.0.1") as client:
        assert (await client.get("/health/live")).status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(await scrape(metered))}

    expected = {
        "roombook_http_requests": ("counter", {"method", "route", "status_class"}),
        "roombook_http_request_duration_seconds": (
            "histogram",
            {"method", "route", "status_class"},
        ),
        "roombook_http_requests_in_flight": ("gauge", set()),
        "roombook_db_pool_checked_out": ("gauge", set()),
        "roombook_db_pool_overflow": ("gauge", set()),
        "roombook_db_pool_wait_seconds": ("histogram", set()),
        "roombook_auth_logins": ("counter", {"outcome"}),
        "roombook_auth_refreshes": ("counter", {"outcome"}),
        "roombook_rate_limit_rejections": ("counter", {"policy"}),
        "roombook_bookings": ("counter", {"outcome"}),
        "roombook_booking_violations": ("counter", {"code"}),
        "roombook_audit_append_seconds": ("histogram", set()),
        "roombook_event_streams_open": ("gauge", set()),
    }
    for name, (kind, labels) in expected.items():
        assert name in families, name
        assert families[name].type == kind, name
        for metric in families[name].samples:
            assert set(metric.labels) - {"le"} <= labels, (name, metric.labels)
    outcomes = label_values(await scrape(metered), "outcome")
    assert outcomes["roombook_auth_logins"] == {"success", "failure", "throttled"}
    assert outcomes["roombook_auth_refreshes"] == {
        "success",
        "grace_replay",
        "rejected",
        "reuse_detected",
    }
    assert outcomes["roombook_bookings"] == {"created", "refused"}


async def test_no_label_holds_ids_emails_paths_or_made_up_methods(
    metered: FastAPI, create_user: CreateUser, auth_headers: AuthHeaders
) -> None:
    email = f"metrics.{uuid.uuid4().hex}@example.com"
    user_id = await create_user(email=email)
    headers = await auth_headers(user_id)
    random_paths = [f"/api/v1/users/{uuid.uuid4()}", f"/x-{uuid.uuid4().hex}", "/api/v1/../etc"]
    # Other tests' apps in this process have routes of their own: look at what this one adds.
    routes_before = label_values(await scrape(metered), "route")["roombook_http_requests"]
    async with client_from(metered, "127.0.0.1") as client:
        await client.get("/api/v1/users/me", headers=headers)
        await client.patch(
            "/api/v1/users/me",
            json={"full_name": email},
            headers={**headers, "If-Match": '"1"'},
        )
        for path in random_paths:
            await client.get(path, headers=headers)
        await client.request("BREW", f"/coffee/{uuid.uuid4().hex}")
        await client.request("PROPFIND", "/api/v1/users/me")
        await client.post("/api/v1/auth/login", data={"username": email, "password": "x" * 20})

    exposition = await scrape(metered)

    assert email not in exposition
    assert str(user_id) not in exposition
    assert not UUID_TEXT.search(exposition)
    for path in random_paths:
        assert path not in exposition
    templates = route_templates(metered.routes) | {UNMATCHED_ROUTE}
    added = label_values(exposition, "route")["roombook_http_requests"] - routes_before
    assert added <= templates, added - templates
    for family, values in label_values(exposition, "method").items():
        assert values <= KNOWN_METHODS | {OTHER_METHOD}, family
    assert OTHER_METHOD in label_values(exposition, "method")["roombook_http_requests"]
    for family, values in label_values(exposition, "status_class").items():
        assert values <= {"1xx", "2xx", "3xx", "4xx", "5xx"}, family


async def test_only_clients_on_the_allow_list_get_metrics(metered: FastAPI) -> None:
    assert "roombook_http_requests_total" in await scrape(metered, SCRAPER)
    assert "roombook_http_requests_total" in await scrape(metered, "192.0.2.77")
    for outsider in ("127.0.0.1", "10.20.30.41", "203.0.113.5"):
        async with client_from(metered, outsider) as client:
            refused = await client.get("/metrics")
        # Exactly what any unknown path answers: the endpoint does not show.
        assert refused.status_code == 404
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["code"] == "not-found"


async def test_forwarded_addresses_count_only_from_trusted_proxies(metered: FastAPI) -> None:
    async with client_from(metered, PROXY) as via_proxy:
        # The proxy is not on the list itself; the client it forwards for is.
        allowed = await via_proxy.get("/metrics", headers={"X-Forwarded-For": SCRAPER})
        public = await via_proxy.get("/metrics", headers={"X-Forwarded-For": "203.0.113.5"})
    async with client_from(metered, "203.0.113.5") as outsider:
        spoofed = await outsider.get("/metrics", headers={"X-Forwarded-For": SCRAPER})
    assert allowed.status_code == 200
    assert public.status_code == 404
    assert spoofed.status_code == 404


async def test_metrics_off_serves_nothing_even_to_the_allow_list(database_url: str) -> None:
    settings = make_settings(
        database_url, metrics=MetricsSettings(enabled=False, allowed_clients=[SCRAPER])
    )
    app = create_app(settings)
    async with serve(app), client_from(app, SCRAPER) as client:
        assert (await client.get("/metrics")).status_code == 404


async def test_the_pool_reports_checkouts_overflow_and_waits(database_url: str) -> None:
    engine = create_engine(DatabaseSettings(pool_size=1, max_overflow=1), url=database_url)
    waits_before = sample("roombook_db_pool_wait_seconds_count")
    try:
        async with engine.connect() as first, engine.connect() as second:
            await first.execute(text("SELECT 1"))
            await second.execute(text("SELECT 1"))
            assert sample("roombook_db_pool_checked_out") == 2
            assert sample("roombook_db_pool_overflow") == 1
        assert sample("roombook_db_pool_checked_out") == 0
        assert sample("roombook_db_pool_overflow") == 0
        assert sample("roombook_db_pool_wait_seconds_count") == waits_before + 2
    finally:
        await engine.dispose()


def test_booking_outcomes_keep_violation_codes_to_the_closed_list() -> None:
    bookings = BookingMetrics(violation_codes=["overlap", "too_long"])
    before = {
        key: sample("roombook_booking_violations_total", code=key)
        for key in ("overlap", "too_long", "other")
    }
    created = sample("roombook_bookings_total", outcome="created")
    refused = sample("roombook_bookings_total", outcome="refused")

    bookings.created()
    bookings.refused(violation_codes=["overlap", "user@example.com"])

    assert sample("roombook_bookings_total", outcome="created") == created + 1
    assert sample("roombook_bookings_total", outcome="refused") == refused + 1
    assert sample("roombook_booking_violations_total", code="overlap") == before["overlap"] + 1
    assert sample("roombook_booking_violations_total", code="other") == before["other"] + 1
    assert sample("roombook_booking_violations_total", code="too_long") == before["too_long"]
    assert (
        REGISTRY.get_sample_value("roombook_booking_violations_total", {"code": "user@example.com"})
        is None
    )


def test_an_event_stream_counts_as_open_while_it_runs() -> None:
    before = sample("roombook_event_streams_open")
    with open_event_stream():
        assert sample("roombook_event_streams_open") == before + 1
    with pytest.raises(RuntimeError), open_event_stream():
        raise RuntimeError
    assert sample("roombook_event_streams_open") == before


def production(metrics: MetricsSettings) -> Settings:
    """Production settings that pass every other check."""
    return Settings(
        _env_file=None,
        environment="production",
        security=SecuritySettings(jwt_secret=SecretStr(GOOD_SECRET)),
        http=HttpSettings(allowed_hosts=["api.roombook.dev"]),
        audit=AuditSettings(chain_key=SecretStr(GOOD_CHAIN_KEY)),
        metrics=metrics,
    )


@pytest.mark.parametrize(
    ("allowed", "message"),
    [
        ([], "METRICS__ALLOWED_CLIENTS is empty while METRICS__ENABLED is on"),
        (["10.0.0.5", "0.0.0.0/0"], "METRICS__ALLOWED_CLIENTS admits every address"),
        (["::/0"], "METRICS__ALLOWED_CLIENTS admits every address"),
    ],
)
def test_production_refuses_metrics_open_to_nobody_or_everybody(
    allowed: list[str], message: str
) -> None:
    with pytest.raises(ValidationError, match="unsafe production settings") as caught:
        production(MetricsSettings(enabled=True, allowed_clients=allowed))
    assert message in str(caught.value)


def test_production_takes_metrics_off_or_with_named_scrapers() -> None:
    assert not production(MetricsSettings()).metrics.enabled
    scrapers = production(MetricsSettings(enabled=True, allowed_clients=["10.0.0.5/32"]))
    assert scrapers.metrics.allowed_clients == ["10.0.0.5/32"]


def test_the_allow_list_takes_only_addresses_and_networks() -> None:
    with pytest.raises(ValidationError):
        MetricsSettings(allowed_clients=["prometheus.internal"])


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (f"/api/v1/users/{uuid.UUID(int=7)}", "/api/v1/users/{user_id}"),
        ("/api/v1/users/me", "/api/v1/users/me"),
        ("/health/live", "/health/live"),
        ("/static-offline-docs/swagger-ui.css", "/static-offline-docs/{path}"),
        ("/api/v1/no/such/route", UNMATCHED_ROUTE),
    ],
)
async def test_templates_carry_the_full_prefix_and_no_converters(
    app: FastAPI, client: AsyncClient, path: str, expected: str
) -> None:
    seen: list[str] = []
    route_of = RequestMetrics.route_of

    def recording(self: RequestMetrics, scope: Scope) -> str:
        seen.append(route_of(self, scope))
        return seen[-1]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(RequestMetrics, "route_of", recording)
        await client.get(path)
    assert seen == [expected]
    assert expected in route_templates(app.routes) | {UNMATCHED_ROUTE}
    assert ":" not in expected


async def test_starting_an_app_builds_no_route_it_was_not_asked_for(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Route labels are worked out per request: start-up leaves the API's routes unbuilt."""
    built: list[Any] = []
    get_dependant = fastapi.routing.get_dependant  # type: ignore[attr-defined]

    def recording(*args: Any, **kwargs: Any) -> Any:
        built.append(kwargs.get("call"))
        return get_dependant(*args, **kwargs)

    monkeypatch.setattr(fastapi.routing, "get_dependant", recording)
    async with serve(create_app(metrics_settings(database_url))) as client:
        assert (await client.get("/health/live")).status_code == 200
        assert get_me not in built
        assert (await client.get("/api/v1/users/me")).status_code == 401
    assert get_me in built
