"""OpenTelemetry tracing: one request is one trace with its SQL and Redis spans, ids in the logs."""

import json
import sys
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastapi import FastAPI
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, format_trace_id
from pydantic import SecretStr

from app.core.config import LogSettings, RateLimitSettings, Settings, TracingSettings
from app.core.tracing import DEFAULT_SERVICE_NAME, Tracing, TracingUnavailable, start_tracing
from app.factory import create_app
from tests.conftest import GENEROUS_LIMIT, make_settings
from tests.core.support import captured_logs, client_for, serve

REDIS_URL = "redis://127.0.0.1:6379/0"
LOGIN = "/api/v1/auth/login"


@pytest.fixture
def no_export(monkeypatch: pytest.MonkeyPatch) -> None:
    """No OTLP exporter: the test reads spans from memory."""
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)


@pytest.fixture
async def traced(
    database_url: str, no_export: None
) -> AsyncIterator[tuple[FastAPI, InMemorySpanExporter]]:
    """An app with tracing on, rate limits in Redis, spans kept in memory, JSON logs."""
    settings = make_settings(
        database_url,
        tracing=TracingSettings(enabled=True),
        log=LogSettings(json_format=True),
        rate_limit=RateLimitSettings(
            storage_url=SecretStr(REDIS_URL),
            key_prefix=f"roombook-test-{uuid.uuid4().hex}",
            auth_per_ip=GENEROUS_LIMIT,
            credentials_per_ip=GENEROUS_LIMIT,
        ),
    )
    app = create_app(settings)
    tracing: Tracing = app.state.tracing
    exporter = InMemorySpanExporter()
    tracing.provider.add_span_processor(SimpleSpanProcessor(exporter))
    async with serve(app):
        yield app, exporter
    await app.state.rate_limiter.storage.reset()


def attribute(span: ReadableSpan, *names: str) -> Any:
    """The first of these attributes the span has (semantic conventions renamed some)."""
    attributes = span.attributes or {}
    return next((attributes[name] for name in names if name in attributes), None)


def json_lines(text: str) -> list[dict[str, Any]]:
    """Each JSON log line of a capture."""
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


async def test_one_request_is_one_trace_with_its_database_and_redis_spans(
    traced: tuple[FastAPI, InMemorySpanExporter],
) -> None:
    app, exporter = traced
    async with client_for(app) as client:
        exporter.clear()
        with captured_logs() as logs:
            response = await client.post(
                LOGIN, data={"username": "nobody.traced@example.com", "password": "x" * 20}
            )
    assert response.status_code == 401

    spans = exporter.get_finished_spans()
    assert {span.context.trace_id for span in spans} == {spans[0].context.trace_id}
    [root] = [span for span in spans if span.parent is None]
    assert root.kind is SpanKind.SERVER
    assert attribute(root, "http.route") == LOGIN
    assert root.name == f"POST {LOGIN}"
    ids = {span.context.span_id for span in spans}
    assert all(span.parent.span_id in ids for span in spans if span.parent is not None)
    systems = [attribute(span, "db.system.name", "db.system") for span in spans]
    assert "postgresql" in systems
    assert "redis" in systems

    trace_id = format_trace_id(root.context.trace_id)
    [access] = [line for line in json_lines(logs.getvalue()) if line["event"] == "request"]
    assert access["trace_id"] == trace_id
    assert access["request_id"] == response.headers["x-request-id"]


async def test_probes_and_scrapes_are_not_traced(
    traced: tuple[FastAPI, InMemorySpanExporter],
) -> None:
    app, exporter = traced
    async with client_for(app) as client:
        exporter.clear()
        assert (await client.get("/health/live")).status_code == 200
        assert (await client.get("/health/ready")).status_code == 200
    assert exporter.get_finished_spans() == ()


async def test_calendar_feeds_are_not_traced_so_no_span_holds_a_feed_token(
    traced: tuple[FastAPI, InMemorySpanExporter],
) -> None:
    app, exporter = traced
    token = "feed-token-that-must-stay-secret"
    async with client_for(app) as client:
        exporter.clear()
        assert (await client.get(f"/api/v1/calendar/{token}.ics")).status_code == 404
        # A traced request shows the exporter works in this very client.
        await client.get("/api/v1/users/me")
    spans = exporter.get_finished_spans()
    assert spans != ()
    assert token not in repr([dict(span.attributes or {}) for span in spans])
    assert all(span.name != "GET /api/v1/calendar/{token}.ics" for span in spans)


async def test_tracing_is_off_by_default(settings: Settings) -> None:
    assert settings.tracing.enabled is False
    app = create_app(settings)
    assert app.state.tracing is None
    async with serve(app) as client:
        with captured_logs() as logs:
            await client.get("/api/v1/users/me")
    assert "/api/v1/users/me" in logs.getvalue()
    assert "trace_id" not in logs.getvalue()


def test_the_service_is_named_roombook_unless_otel_names_it(
    no_export: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    unnamed = start_tracing(enabled=True)
    assert unnamed is not None
    assert unnamed.provider.resource.attributes["service.name"] == DEFAULT_SERVICE_NAME
    monkeypatch.setenv("OTEL_SERVICE_NAME", "roombook-eu")
    named = start_tracing(enabled=True)
    assert named is not None
    assert named.provider.resource.attributes["service.name"] == "roombook-eu"


def test_an_unknown_exporter_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "zipkin")
    with pytest.raises(TracingUnavailable, match="OTEL_TRACES_EXPORTER='zipkin'"):
        start_tracing(enabled=True)


def test_tracing_on_without_the_extra_names_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A module set to None in sys.modules cannot be imported, as when it is not installed.
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk.trace", None)
    with pytest.raises(TracingUnavailable, match="otel` extra"):
        start_tracing(enabled=True)
    assert start_tracing(enabled=False) is None
