"""`/rooms`: anyone signed in lists and reads rooms; managers and admins run them."""

from typing import Annotated

from fastapi import Query, Request, Response, status

from app.auth.dependencies import CurrentUser, IdempotencyDep, ManagerUser
from app.bookings.dependencies import (
    AmenitiesQuery,
    AvailabilityServiceDep,
    BlackoutForUpdate,
    BlackoutServiceDep,
    MinCapacity,
    RoomFilterDep,
    RoomForRead,
    RoomForUpdate,
    RoomServiceDep,
)
from app.bookings.models import Room
from app.bookings.room_schemas import (
    AvailabilityRead,
    BlackoutCreate,
    BlackoutProblem,
    BlackoutRead,
    BusyRead,
    IntervalRead,
    RoomCreate,
    RoomRead,
    RoomUpdate,
)
from app.bookings.room_service import RoomService
from app.core.openapi import problem_responses
from app.core.pagination import Page, PageRequestDep
from app.core.preconditions import IfMatch, etag, required_versions
from app.core.routing import DomainRouter
from app.core.types import BoundedDatetime

rooms_router = DomainRouter(prefix="/rooms", tags=["rooms"], responses=problem_responses(401))
CHANGE_PROBLEMS = problem_responses(403, 404, 412, 428)
BLACKOUT_CONFLICT = problem_responses(409, model=BlackoutProblem)


def _read(room: Room, rooms: RoomService, response: Response) -> RoomRead:
    response.headers["ETag"] = etag(room.version)
    return rooms.read(room=room)


@rooms_router.get("", name="list")
async def list_rooms(
    _: CurrentUser, rooms: RoomServiceDep, filters: RoomFilterDep, page: PageRequestDep
) -> Page[RoomRead]:
    """Rooms by name, active or not, filtered by capacity, equipment, building and text."""
    rows, next_key = await rooms.list_rooms(filters=filters, page=page)
    return Page(
        items=[rooms.read(room=row) for row in rows], next_cursor=page.cursor_after(next_key)
    )


@rooms_router.get("/available", name="available")
async def available_rooms(
    *,
    _: CurrentUser,
    availability: AvailabilityServiceDep,
    rooms: RoomServiceDep,
    page: PageRequestDep,
    start: Annotated[BoundedDatetime, Query(description="First instant needed, any offset.")],
    end: Annotated[BoundedDatetime, Query(description="First instant no longer needed.")],
    min_capacity: MinCapacity = None,
    amenities: AmenitiesQuery = None,
) -> Page[RoomRead]:
    """Active rooms, by name, open and free for the whole of `[start, end)`, buffers included."""
    found, next_key = await availability.free_rooms(
        starts_at=start,
        ends_at=end,
        min_capacity=min_capacity,
        amenities=tuple(amenities or ()),
        page=page,
    )
    return Page(
        items=[rooms.read(room=room) for room in found], next_cursor=page.cursor_after(next_key)
    )


@rooms_router.post(
    "",
    name="create",
    status_code=status.HTTP_201_CREATED,
    response_model=RoomRead,
    responses=problem_responses(403, 409),
)
async def create_room(
    _: ManagerUser,
    data: RoomCreate,
    rooms: RoomServiceDep,
    idempotency: IdempotencyDep,
    request: Request,
    response: Response,
) -> Response:
    """Create a room (409 `room-name-taken` when another has the name, in any case).

    Honours `Idempotency-Key`.
    """
    room = await rooms.create(data=data)
    response.headers["Location"] = f"{request.url.path.rstrip('/')}/{room.id}"
    return await idempotency.respond(_read(room, rooms, response))


@rooms_router.get("/{room_id:uuid}", name="get", responses=problem_responses(404))
async def get_room(room: RoomForRead, rooms: RoomServiceDep, response: Response) -> RoomRead:
    """One room with its effective policy; the `ETag` is needed to change it."""
    return _read(room, rooms, response)


@rooms_router.patch(
    "/{room_id:uuid}", name="update", responses={**CHANGE_PROBLEMS, **problem_responses(409)}
)
async def update_room(
    room: RoomForUpdate,
    data: RoomUpdate,
    rooms: RoomServiceDep,
    response: Response,
    if_match: IfMatch = None,
) -> RoomRead:
    """Change a room; `If-Match` required. Bookings already made stay as they are."""
    updated = await rooms.update(
        room=room, expected_versions=required_versions(if_match), data=data
    )
    return _read(updated, rooms, response)


@rooms_router.post("/{room_id:uuid}/deactivate", name="deactivate", responses=CHANGE_PROBLEMS)
async def deactivate_room(
    room: RoomForUpdate, rooms: RoomServiceDep, response: Response, if_match: IfMatch = None
) -> RoomRead:
    """Take a room out of use: no new bookings; its bookings and history stay."""
    updated = await rooms.set_active(
        room=room, expected_versions=required_versions(if_match), active=False
    )
    return _read(updated, rooms, response)


@rooms_router.post("/{room_id:uuid}/reactivate", name="reactivate", responses=CHANGE_PROBLEMS)
async def reactivate_room(
    room: RoomForUpdate, rooms: RoomServiceDep, response: Response, if_match: IfMatch = None
) -> RoomRead:
    """Put a deactivated room back in use."""
    updated = await rooms.set_active(
        room=room, expected_versions=required_versions(if_match), active=True
    )
    return _read(updated, rooms, response)


@rooms_router.post(
    "/{room_id:uuid}/blackouts",
    name="add-blackout",
    status_code=status.HTTP_201_CREATED,
    response_model=BlackoutRead,
    responses={**problem_responses(403, 404), **BLACKOUT_CONFLICT},
)
async def add_blackout(
    principal: ManagerUser,
    room: RoomForUpdate,
    data: BlackoutCreate,
    blackouts: BlackoutServiceDep,
    idempotency: IdempotencyDep,
) -> Response:
    """Close the room for a time; 409 `blackout-conflict` lists what holds it then.

    Honours `Idempotency-Key`.
    """
    blackout = await blackouts.add(room=room, actor_id=principal.id, data=data)
    return await idempotency.respond(BlackoutRead.model_validate(blackout))


@rooms_router.get(
    "/{room_id:uuid}/blackouts", name="list-blackouts", responses=problem_responses(404)
)
async def list_blackouts(
    room: RoomForRead, blackouts: BlackoutServiceDep, page: PageRequestDep
) -> Page[BlackoutRead]:
    """The room's blackouts in force, past ones included, by start."""
    rows, next_key = await blackouts.list_blackouts(room=room, page=page)
    return Page(
        items=[BlackoutRead.model_validate(row) for row in rows],
        next_cursor=page.cursor_after(next_key),
    )


@rooms_router.delete(
    "/{room_id:uuid}/blackouts/{blackout_id:uuid}",
    name="remove-blackout",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(403, 404),
)
async def remove_blackout(
    principal: ManagerUser, blackout: BlackoutForUpdate, blackouts: BlackoutServiceDep
) -> Response:
    """Lift a blackout; the room takes bookings in its time again."""
    await blackouts.remove(blackout=blackout, actor_id=principal.id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@rooms_router.get(
    "/{room_id:uuid}/availability", name="availability", responses=problem_responses(404)
)
async def room_availability(
    *,
    principal: CurrentUser,
    room: RoomForRead,
    availability: AvailabilityServiceDep,
    window_start: Annotated[
        BoundedDatetime, Query(alias="from", description="Start of the window, any offset.")
    ],
    window_end: Annotated[
        BoundedDatetime,
        Query(
            alias="to", description="End of the window; at most BOOKINGS__AVAILABILITY_MAX_DAYS."
        ),
    ],
) -> AvailabilityRead:
    """The room's free time and what holds it in the window, in UTC, with the room's zone."""
    result = await availability.of_room(
        room=room, window_start=window_start, window_end=window_end, viewer_id=principal.id
    )
    return AvailabilityRead(
        room_id=room.id,
        time_zone=room.time_zone,
        window_start=result.window_start,
        window_end=result.window_end,
        free=[IntervalRead(starts_at=start, ends_at=end) for start, end in result.free],
        busy=[BusyRead.model_validate(busy) for busy in result.busy],
    )
