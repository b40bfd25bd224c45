"""`/bookings/events`: the live stream of booking changes, and the ticket that opens it."""

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Header, Query, status
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.background import BackgroundTask

from app.auth.dependencies import CurrentUser, SessionServiceDep, StreamCaller
from app.bookings.dependencies import EventHubWithRoom, EventSettingsDep
from app.bookings.events import BookingEvent, EventTicketRead
from app.bookings.hub import EventHub, Subscriber
from app.core.metrics import open_event_stream
from app.core.openapi import problem_responses
from app.core.routing import DomainRouter
from app.core.types import SingleLine

SEND_TIMEOUT_S = 30.0
"""A client that takes no bytes for this long (gone without closing) loses its stream."""
BOOKING_EVENT = "booking"
MAX_EVENT_ID_LENGTH = 64
LastEventIdHeader = Annotated[
    SingleLine | None,
    Header(
        alias="Last-Event-ID",
        max_length=MAX_EVENT_ID_LENGTH,
        description="Sent by `EventSource` on reconnecting: resume after this event.",
    ),
]
LastEventIdQuery = Annotated[
    SingleLine | None,
    Query(
        alias="last_event_id",
        max_length=MAX_EVENT_ID_LENGTH,
        description=(
            "The same, for a new `EventSource` (which cannot send the header) opened with a "
            "new ticket; the header wins when both are sent."
        ),
    ),
]

events_router = DomainRouter(prefix="/bookings/events", tags=["bookings"])


@events_router.post(
    "/ticket",
    name="events-ticket",
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(401),
)
async def issue_event_ticket(
    principal: CurrentUser, sessions: SessionServiceDep, settings: EventSettingsDep
) -> EventTicketRead:
    """A single-use ticket, valid for `EVENTS__TICKET_TTL_S`, to open the event stream.

    `EventSource` cannot send the access token; the ticket goes in its URL instead, and is
    worth nothing once used. The stream belongs to this session and ends with it.
    """
    ticket = await sessions.issue_stream_ticket(
        user_id=principal.id, session_id=principal.session_id, ttl_s=settings.ticket_ttl_s
    )
    return EventTicketRead(ticket=ticket, expires_in=settings.ticket_ttl_s)


@events_router.get(
    "",
    name="events",
    response_class=EventSourceResponse,
    responses={
        200: {
            "description": (
                "`text/event-stream`: `booking` events (JSON: id, type, booking_id, room_id, "
                "kind, status, starts_at, ends_at), `reset` when missed events cannot be "
                "replayed, and keep-alive comments."
            ),
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
        **problem_responses(401),
    },
)
async def stream_events(
    hub: EventHubWithRoom,
    caller: StreamCaller,
    settings: EventSettingsDep,
    last_event_id: LastEventIdHeader = None,
    resume_after: LastEventIdQuery = None,
) -> EventSourceResponse:
    """Server-Sent Events telling of every booking change, in every room (no private details).

    Opened with `?ticket=` from `POST /bookings/events/ticket`, no `Authorization` header.
    Ends when the session ends or the user is deactivated; 503 when this server holds
    `EVENTS__MAX_STREAMS` streams already.
    """
    subscriber = await hub.subscribe(
        session_id=caller.session_id, last_event_id=last_event_id or resume_after
    )
    return EventSourceResponse(
        _sent(hub, subscriber),
        ping=settings.heartbeat_s,
        send_timeout=SEND_TIMEOUT_S,
        # Also when the body never runs (a HEAD request), the hub forgets the stream.
        background=BackgroundTask(hub.unsubscribe, subscriber),
    )


async def _sent(hub: EventHub, subscriber: Subscriber) -> AsyncIterator[ServerSentEvent]:
    try:
        with open_event_stream():
            async for item in subscriber.items():
                yield _encoded(item)
    finally:
        hub.unsubscribe(subscriber)


def _encoded(item: BookingEvent | str) -> ServerSentEvent:
    if isinstance(item, BookingEvent):
        return ServerSentEvent(data=item.model_dump_json(), event=BOOKING_EVENT, id=item.id)
    return ServerSentEvent(data="{}", event=item)
