"""OpenTelemetry tracing: optional (the `otel` extra), off unless `TRACING__ENABLED` is on.

When on, FastAPI's own telemetry opens a server span per request, SQLAlchemy a span per
statement and the rate limiter's Redis client a span per command, all sent to one tracer
provider that the standard `OTEL_*` variables configure: `OTEL_SERVICE_NAME` and
`OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG`,
`OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT`, `_HEADERS` and `_TIMEOUT`, `OTEL_BSP_*`, and
`OTEL_SDK_DISABLED`. `OTEL_TRACES_EXPORTER` picks `otlp` (HTTP/protobuf, the default),
`console` or `none`.

When off, nothing of the SDK is imported and FastAPI's telemetry is switched off, so a
request pays nothing for it.
"""

import os
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi.telemetry import TelemetryConfig
from sqlalchemy.ext.asyncio import AsyncEngine

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.sampling import Sampler

DEFAULT_SERVICE_NAME = "roombook"
UNTRACED_PREFIXES = ("/health/", "/metrics", "/api/v1/calendar/")
"""Probes and scrapes arrive every few seconds and say nothing a trace would need; a
calendar feed's path is its secret token, which no span may carry."""
NO_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}
"""FastAPI's telemetry when tracing is off: none at all, whatever providers exist."""


class TracingUnavailable(RuntimeError):
    """Tracing is on, but its packages are missing or its exporter is unknown."""


def untraced(scope: MutableMapping[str, Any]) -> bool:
    """Whether FastAPI should leave a request out of tracing."""
    path: str = scope.get("path", "")
    return path.startswith(UNTRACED_PREFIXES)


@dataclass
class Tracing:
    """The tracer provider of one app, and the instrumentation it switches on and off."""

    provider: "TracerProvider"

    def telemetry(self) -> TelemetryConfig:
        """FastAPI's telemetry settings: server spans only, to this provider."""
        # Metrics are Prometheus's job and logs structlog's: FastAPI sends only traces.
        return {
            "tracer_provider": self.provider,
            "tracing": True,
            "metrics": False,
            "logs": False,
            "exclude": untraced,
        }

    def instrument(self, *, engine: AsyncEngine) -> None:
        """Trace the engine's statements and every Redis command, until `shutdown`."""
        from opentelemetry.instrumentation.redis import RedisInstrumentor
        from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

        # The instrumentation declares SQLAlchemy < 2.1, yet 2.1 has the engine events it
        # uses; tests/core/test_tracing.py checks that the statements' spans arrive.
        SQLAlchemyInstrumentor().instrument(
            engine=engine.sync_engine, tracer_provider=self.provider, skip_dep_check=True
        )
        RedisInstrumentor().instrument(tracer_provider=self.provider)

    def shutdown(self) -> None:
        """Undo the instrumentation and send the spans still buffered."""
        from opentelemetry.instrumentation.redis import RedisInstrumentor
        from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

        SQLAlchemyInstrumentor().uninstrument()
        RedisInstrumentor().uninstrument()
        self.provider.shutdown()


def start_tracing(*, enabled: bool) -> Tracing | None:
    """A tracer provider configured from the `OTEL_*` variables, or None when tracing is off."""
    if not enabled:
        return None
    try:
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
    except ImportError as exc:
        raise TracingUnavailable(
            "TRACING__ENABLED is on but OpenTelemetry is not installed: "
            "install the `otel` extra (uv sync --extra otel)"
        ) from exc
    resource = Resource.create()
    # Without OTEL_SERVICE_NAME the SDK would report "unknown_service".
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE_NAME}))
    # The sampler comes from OTEL_TRACES_SAMPLER(_ARG) when none is passed.
    provider = TracerProvider(resource=resource)
    provider.sampler = requests_only(provider.sampler)
    _add_exporter(provider, os.environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower())
    return Tracing(provider=provider)


def requests_only(sampler: "Sampler") -> "Sampler":
    """`sampler` for traces a request starts; a span with no parent and no request is dropped.

    Readiness probes (not traced) and start-up work still run SQL: each statement would
    otherwise be a trace of its own, every few seconds, saying nothing.
    """
    from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
    from opentelemetry.trace import SpanKind, get_current_span

    class RequestsOnly(Sampler):
        def should_sample(self, parent_context: Any, *args: Any, **kwargs: Any) -> SamplingResult:
            kind = kwargs.get("kind", args[2] if len(args) > 2 else None)
            orphan = not get_current_span(parent_context).get_span_context().is_valid
            if orphan and kind is not SpanKind.SERVER:
                return SamplingResult(Decision.DROP)
            return sampler.should_sample(parent_context, *args, **kwargs)

        def get_description(self) -> str:
            return f"RequestsOnly{{{sampler.get_description()}}}"

    return RequestsOnly()


def _add_exporter(provider: "TracerProvider", name: str) -> None:
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    if name == "none":
        return
    if name == "console":
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
        return
    if name != "otlp":
        raise TracingUnavailable(
            f"OTEL_TRACES_EXPORTER={name!r} is not supported: use otlp, console or none"
        )
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    # Endpoint, headers, timeout and compression come from OTEL_EXPORTER_OTLP_*.
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
