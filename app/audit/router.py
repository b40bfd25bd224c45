"""Admin-only HTTP access to the audit trail: list, fetch, export as NDJSON, verify the chain."""

import uuid
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.responses import StreamingResponse
from pydantic_core import to_json
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.audit.actions import AuditAction, AuditEntity
from app.audit.dependencies import AuditServiceDep
from app.audit.schemas import AuditEventRead, AuditFilter, ChainReport
from app.audit.service import build_audit_service
from app.auth.dependencies import AdminUser
from app.core.config import Settings
from app.core.errors import ValidationFailed
from app.core.openapi import problem_responses
from app.core.pagination import Page, PageRequestDep
from app.core.routing import DomainRouter
from app.core.types import MAX_YEAR, MIN_YEAR, BoundedDatetime, SingleLine

NDJSON = "application/x-ndjson"
YEARS = f"with a timezone, years {MIN_YEAR} to {MAX_YEAR} in UTC"
ACTION_PATTERN = r"^[a-z_]+\.([a-z_]+)?$"
ACTION_FILTERS = frozenset(
    value for action in AuditAction for value in (action.value, action.partition(".")[0] + ".")
)
"""Every action of the vocabulary and every `<entity>.` prefix of one."""

router = DomainRouter(prefix="/audit", tags=["audit"])


async def get_audit_filter(
    *,
    actor_id: uuid.UUID | None = None,
    action: Annotated[
        SingleLine | None,
        Query(
            max_length=64,
            pattern=ACTION_PATTERN,
            description="An exact action, or a prefix ending with `.` such as `booking.`.",
            # The vocabulary is closed: the document lists it, so clients see every choice.
            json_schema_extra={"enum": sorted(ACTION_FILTERS)},
        ),
    ] = None,
    entity_type: AuditEntity | None = None,
    entity_id: Annotated[SingleLine | None, Query(max_length=128)] = None,
    since: Annotated[
        BoundedDatetime | None, Query(description=f"Inclusive lower bound; {YEARS}.")
    ] = None,
    until: Annotated[
        BoundedDatetime | None, Query(description=f"Exclusive upper bound; {YEARS}.")
    ] = None,
) -> AuditFilter:
    """Read and check the event filters from the query string."""
    errors = []
    # The vocabulary is closed, so a name or prefix outside it is a mistake, not an empty result.
    if action is not None and action not in ACTION_FILTERS:
        errors.append({"field": "action", "message": "Unknown action or prefix.", "type": "enum"})
    if since is not None and until is not None and since >= until:
        errors.append({"field": "until", "message": "Must be after `since`.", "type": "range"})
    if errors:
        raise ValidationFailed(errors)
    return AuditFilter(
        actor_id=actor_id,
        action=action,
        entity_type=entity_type,
        entity_id=entity_id,
        since=since,
        until=until,
    )


AuditFilterDep = Annotated[AuditFilter, Depends(get_audit_filter)]


@router.get(
    "/events",
    name="list",
    summary="List audit events, newest first",
    responses=problem_responses(401, 403),
)
async def list_events(
    _: AdminUser, service: AuditServiceDep, filters: AuditFilterDep, page: PageRequestDep
) -> Page[AuditEventRead]:
    """Return one page of the events matching every given filter."""
    rows, next_key = await service.list_events(filters=filters, page=page)
    return Page(
        items=[AuditEventRead.model_validate(row) for row in rows],
        next_cursor=page.cursor_after(next_key),
    )


@router.get(
    "/events/export",
    name="export",
    summary="Export audit events as NDJSON",
    response_class=StreamingResponse,
    responses={
        200: {"content": {NDJSON: {}}, "description": "One JSON event per line, newest first."},
        **problem_responses(401, 403),
    },
)
async def export_events(
    _: AdminUser, filters: AuditFilterDep, request: Request
) -> StreamingResponse:
    """Stream every matching event, one JSON document per line, in constant memory."""
    factory: async_sessionmaker[AsyncSession] = request.app.state.session_factory
    return StreamingResponse(
        _ndjson(factory, filters, settings=request.app.state.settings), media_type=NDJSON
    )


async def _ndjson(
    factory: async_sessionmaker[AsyncSession], filters: AuditFilter, *, settings: Settings
) -> AsyncIterator[bytes]:
    # The body streams after the handler returned, when the request's session has already
    # committed and closed; the server-side cursor needs a session and transaction that live
    # exactly as long as the stream, so the generator opens its own.
    async with factory() as session:
        audit = build_audit_service(session, settings=settings)
        async for batch in audit.stream_events(filters=filters):
            # One body chunk per batch of rows: few ASGI messages, bounded size.
            # Rows are serialised as they come from the table, skipping per-row model
            # validation; a test holds each line equal to the event's JSON elsewhere in the API.
            yield b"".join(to_json(row._asdict()) + b"\n" for row in batch)


@router.get(
    "/events/{event_id}",
    name="get",
    summary="Fetch one audit event",
    responses=problem_responses(401, 403, 404),
)
async def get_event(_: AdminUser, service: AuditServiceDep, event_id: uuid.UUID) -> AuditEventRead:
    """Return the event with this id."""
    return AuditEventRead.model_validate(await service.get_event(event_id=event_id))


@router.get(
    "/verify",
    name="verify",
    summary="Verify the audit hash chain",
    responses=problem_responses(401, 403),
)
async def verify_chain(_: AdminUser, service: AuditServiceDep) -> ChainReport:
    """Walk the chain and report `ok`, or the first entry where it breaks."""
    return await service.verify()
