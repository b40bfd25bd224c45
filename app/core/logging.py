"""structlog set-up: one pipeline for our logs and stdlib ones, with secrets redacted."""

import logging
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import structlog
from opentelemetry import trace
from structlog.types import EventDict, Processor, WrappedLogger

from app.core.config import LogSettings

REDACTED = "[redacted]"
SENSITIVE_KEY = re.compile(
    r"pass(word)?|secret|token|authorization|cookie|api[_-]?key|credential|hash", re.I
)
SENSITIVE_TEXT = [
    (re.compile(r"(?i)(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"), r"\1 " + REDACTED),
    (re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), REDACTED),
    (re.compile(r"\$argon2[a-z]*\$[^\s'\"]+"), REDACTED),
    # `password=x`, and `'password': 'x y'` as in the reprs inside exception messages.
    (
        re.compile(
            r"""(?i)(\b\w*(?:password|secret|token)\w*['"]?\s*[:=]\s*)"""
            r"""('[^']*'|"[^"]*"|[^\s&'",}]+)"""
        ),
        r"\1" + REDACTED,
    ),
    # Calendar feed tokens are the path segment after `/calendar/` (URL-safe, no dots).
    (re.compile(r"(/calendar/)[A-Za-z0-9_~%-]+"), r"\1" + REDACTED),
    # Credentials in any URL: the database, and Redis (whose user part is often empty).
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s]+@"), r"\1" + REDACTED + "@"),
]

SENSITIVE_HINT = re.compile(r"bearer|basic|eyJ|\$argon2|password|secret|token|/calendar/|://", re.I)
"""Text without any of these cannot match a pattern of SENSITIVE_TEXT: one search skips six."""


@lru_cache(maxsize=1024)
def is_sensitive_key(key: str) -> bool:
    """Whether a log field's name says it holds a secret (the names repeat: cached)."""
    return SENSITIVE_KEY.search(key) is not None


def redact_value(key: str, value: Any) -> Any:
    """Mask a value when its key names a secret, and scrub secret-looking text."""
    if is_sensitive_key(key):
        return REDACTED
    if isinstance(value, Mapping):
        return {k: redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(key, v) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


def redact_text(text: str) -> str:
    """Replace tokens, hashes and credentials found inside free text."""
    if SENSITIVE_HINT.search(text) is None:
        return text
    for pattern, replacement in SENSITIVE_TEXT:
        text = pattern.sub(replacement, text)
    return text


def redact_secrets(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """structlog processor: no secret leaves through any log line."""
    return {key: redact_value(key, value) for key, value in event_dict.items()}


def drop_color_message(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Remove uvicorn's ANSI-coloured duplicate of the message."""
    event_dict.pop("color_message", None)
    return event_dict


def add_trace_ids(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """structlog processor: the current trace and span ids, beside the request id."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event_dict["trace_id"] = trace.format_trace_id(context.trace_id)
        event_dict["span_id"] = trace.format_span_id(context.span_id)
    return event_dict


def configure_logging(settings: LogSettings, *, production: bool, tracing: bool = False) -> None:
    """Route structlog and stdlib logging (uvicorn, SQLAlchemy) through one formatter.

    With tracing on, every line logged inside a span carries its trace and span ids.
    """
    json_format = production if settings.json_format is None else settings.json_format
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        *([add_trace_ids] if tracing else []),
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.stdlib.ExtraAdder(),
        drop_color_message,
    ]
    renderer: Processor = (
        structlog.processors.JSONRenderer()
        if json_format
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            redact_secrets,
            renderer,
        ],
    )
    handler = logging.StreamHandler()
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(settings.level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "sqlalchemy", "alembic"):
        stdlib_logger = logging.getLogger(name)
        stdlib_logger.handlers = []
        stdlib_logger.propagate = True
    logging.getLogger("uvicorn.access").disabled = True
