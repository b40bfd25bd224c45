"""`/calendar`: iCalendar feeds for calendar apps, and `/users/me/calendar-token` to get one."""

import hashlib
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Request, Response, status

from app.auth.dependencies import CurrentUser
from app.bookings.dependencies import CalendarFeedServiceDep
from app.bookings.schemas import CalendarTokenRead
from app.core.openapi import problem_responses
from app.core.types import SingleLine

calendar_router = APIRouter(tags=["calendar"])

FeedToken = Annotated[
    SingleLine,
    Path(max_length=128, description="The token from `POST /users/me/calendar-token`."),
]
IfNoneMatch = Annotated[
    SingleLine | None,
    Header(max_length=1024, description="The `ETag` of the copy held; 304 while it is current."),
]
ICALENDAR = "text/calendar; charset=utf-8"
FEED_CACHING = "private, no-cache"
"""Calendar apps may keep a copy but must revalidate it (`ETag`); shared caches keep none,
since the address is a secret and the content personal."""
FEED_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The feed as iCalendar (RFC 5545).",
        "content": {"text/calendar": {"schema": {"type": "string"}}},
    },
    304: {"description": "The copy named by `If-None-Match` is still current."},
    **problem_responses(404),
}


@calendar_router.post(
    "/users/me/calendar-token",
    name="create-token",
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(401),
)
async def create_calendar_token(
    principal: CurrentUser, feeds: CalendarFeedServiceDep, request: Request
) -> CalendarTokenRead:
    """A new personal feed address (shown once); the previous one stops working at once."""
    issued = await feeds.issue(user_id=principal.id)
    feed_url = request.url_for("personal-feed", feed_token=issued.token)
    return CalendarTokenRead(
        token=issued.token, feed_url=str(feed_url), created_at=issued.created_at
    )


@calendar_router.delete(
    "/users/me/calendar-token",
    name="revoke-token",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401),
)
async def revoke_calendar_token(principal: CurrentUser, feeds: CalendarFeedServiceDep) -> None:
    """Revoke the personal feed address, if there is one; its feed answers 404 from now on."""
    await feeds.revoke(user_id=principal.id)


@calendar_router.get(
    "/calendar/{feed_token}.ics",
    name="personal-feed",
    response_class=Response,
    responses=FEED_RESPONSES,
)
async def personal_feed(
    feed_token: FeedToken, feeds: CalendarFeedServiceDep, if_none_match: IfNoneMatch = None
) -> Response:
    """The token holder's pending and confirmed bookings; no bearer header, the token is the key."""
    return _feed(await feeds.personal_feed(token=feed_token), if_none_match)


@calendar_router.get(
    "/calendar/{feed_token}/rooms/{room_id:uuid}.ics",
    name="room-feed",
    response_class=Response,
    responses=FEED_RESPONSES,
)
async def room_feed(
    feed_token: FeedToken,
    room_id: uuid.UUID,
    feeds: CalendarFeedServiceDep,
    if_none_match: IfNoneMatch = None,
) -> Response:
    """A room's pending and confirmed bookings, for the feed token of a manager or admin."""
    return _feed(await feeds.room_feed(token=feed_token, room_id=room_id), if_none_match)


def _feed(body: bytes, if_none_match: str | None) -> Response:
    tag = f'"{hashlib.sha256(body).hexdigest()[:32]}"'
    headers = {"ETag": tag, "Cache-Control": FEED_CACHING}
    if if_none_match is not None and _names(if_none_match, tag):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    return Response(body, media_type=ICALENDAR, headers=headers)


def _names(if_none_match: str, tag: str) -> bool:
    """Whether `If-None-Match` names the tag; weak comparison, as RFC 9110 13.1.2 asks."""
    offered = {part.strip().removeprefix("W/") for part in if_none_match.split(",")}
    return tag in offered or "*" in offered
