"""How requests get the bookings services, the acting caller, and the booking or room of a path."""

import uuid
from typing import Annotated

from fastapi import Depends, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.dependencies import audit_service_for
from app.auth.dependencies import MANAGER_ROLES, CurrentUser, ManagerUser
from app.bookings.availability import AvailabilityService, build_availability_service
from app.bookings.blackout_service import BlackoutService, build_blackout_service
from app.bookings.feeds import CalendarFeedService, build_calendar_feed_service
from app.bookings.hub import EventHub
from app.bookings.models import Booking, BookingStatus, Room
from app.bookings.room_schemas import MAX_AMENITIES, Amenity, RoomFilter
from app.bookings.room_service import RoomService, build_room_service
from app.bookings.schemas import BookingFilter
from app.bookings.service import Actor, BookingService, build_booking_service
from app.core.clock import Clock, ClockDep
from app.core.config import EventSettings
from app.core.db import SessionDep, shared_in_unit_of_work
from app.core.types import BoundedDatetime, SingleLine


def booking_service_for(request: Request, session: AsyncSession, clock: Clock) -> BookingService:
    """The unit of work's one BookingService, which the series service books through."""
    return shared_in_unit_of_work(
        session,
        BookingService,
        lambda: build_booking_service(
            session,
            audit=audit_service_for(request, session),
            settings=request.app.state.settings.bookings,
            clock=clock,
        ),
    )


async def get_booking_service(
    request: Request, session: SessionDep, clock: ClockDep
) -> BookingService:
    """The request's BookingService."""
    return booking_service_for(request, session, clock)


BookingServiceDep = Annotated[BookingService, Depends(get_booking_service)]


async def get_actor(principal: CurrentUser) -> Actor:
    """The signed-in caller as the bookings domain sees them: own bookings, or all of them."""
    return Actor(id=principal.id, manages=principal.role in MANAGER_ROLES)


ActorDep = Annotated[Actor, Depends(get_actor)]


async def booking_in_path(
    booking_id: uuid.UUID, actor: ActorDep, bookings: BookingServiceDep
) -> Booking:
    """The booking `{booking_id}` names if the caller may see it; `BookingNotFound` otherwise."""
    return await bookings.visible(actor=actor, booking_id=booking_id)


BookingInPath = Annotated[Booking, Depends(booking_in_path)]
"""The path's booking, loaded once; routes list a role guard before it, so a caller without
the role gets 403 whether or not the booking exists."""


async def get_booking_filter(
    *,
    room_id: uuid.UUID | None = None,
    status: BookingStatus | None = None,
    starts_from: Annotated[
        BoundedDatetime | None,
        Query(alias="from", description="Bookings starting at or after this instant."),
    ] = None,
    starts_before: Annotated[
        BoundedDatetime | None,
        Query(alias="to", description="Bookings starting before this instant."),
    ] = None,
    owner_id: Annotated[
        uuid.UUID | None,
        Query(description="Managers and admins: one person's bookings. Members: 403 unless self."),
    ] = None,
) -> BookingFilter:
    """Read the booking list's filters from the query string."""
    return BookingFilter(
        room_id=room_id,
        status=status,
        starts_from=starts_from,
        starts_before=starts_before,
        owner_id=owner_id,
    )


BookingFilterDep = Annotated[BookingFilter, Depends(get_booking_filter)]


async def get_room_service(request: Request, session: SessionDep) -> RoomService:
    """The request's RoomService."""
    return build_room_service(
        session,
        audit=audit_service_for(request, session),
        settings=request.app.state.settings.bookings,
    )


RoomServiceDep = Annotated[RoomService, Depends(get_room_service)]


async def room_for_read(room_id: uuid.UUID, _: CurrentUser, rooms: RoomServiceDep) -> Room:
    """The room `{room_id}` names, active or not, for anyone signed in; `RoomNotFound` otherwise."""
    return await rooms.get(room_id=room_id)


RoomForRead = Annotated[Room, Depends(room_for_read)]


async def room_for_update(room_id: uuid.UUID, _: ManagerUser, rooms: RoomServiceDep) -> Room:
    """The room `{room_id}` names, for managers and admins to change; `RoomNotFound` otherwise."""
    return await rooms.get(room_id=room_id)


RoomForUpdate = Annotated[Room, Depends(room_for_update)]
"""The path's room, loaded once after the role guard: a member gets 403 whether or not the
room exists."""


MinCapacity = Annotated[
    int | None, Query(ge=1, le=10_000, description="Rooms holding at least this many.")
]
AmenitiesQuery = Annotated[
    list[Amenity] | None,
    Query(max_length=MAX_AMENITIES, description="Tags the room must all have (repeat it)."),
]


async def get_room_filter(
    *,
    min_capacity: MinCapacity = None,
    amenities: AmenitiesQuery = None,
    location: Annotated[
        SingleLine | None,
        Query(min_length=1, max_length=100, description="The building, in any case."),
    ] = None,
    q: Annotated[
        SingleLine | None,
        Query(min_length=1, max_length=100, description="Text in the name or description."),
    ] = None,
) -> RoomFilter:
    """Read the room list's filters from the query string."""
    return RoomFilter(
        min_capacity=min_capacity,
        amenities=tuple(amenities or ()),
        location=location,
        q=q,
    )


RoomFilterDep = Annotated[RoomFilter, Depends(get_room_filter)]


async def get_blackout_service(
    request: Request, session: SessionDep, clock: ClockDep
) -> BlackoutService:
    """The request's BlackoutService."""
    return build_blackout_service(session, audit=audit_service_for(request, session), clock=clock)


BlackoutServiceDep = Annotated[BlackoutService, Depends(get_blackout_service)]


async def blackout_for_update(
    blackout_id: uuid.UUID, room: RoomForUpdate, blackouts: BlackoutServiceDep
) -> Booking:
    """The path's blackout in force in the path's room, for managers and admins to lift."""
    return await blackouts.get(room=room, blackout_id=blackout_id)


BlackoutForUpdate = Annotated[Booking, Depends(blackout_for_update)]


async def get_availability_service(request: Request, session: SessionDep) -> AvailabilityService:
    """The request's AvailabilityService."""
    return build_availability_service(session, settings=request.app.state.settings.bookings)


AvailabilityServiceDep = Annotated[AvailabilityService, Depends(get_availability_service)]


async def event_hub_with_room(request: Request) -> EventHub:
    """The process's event hub, refusing (503) once it holds as many streams as allowed.

    Checked before the ticket is used up, so a refused client can retry with the same one.
    """
    hub: EventHub = request.app.state.event_hub
    hub.admit()
    return hub


EventHubWithRoom = Annotated[EventHub, Depends(event_hub_with_room)]


async def get_event_settings(request: Request) -> EventSettings:
    """The `EVENTS__` settings of this app."""
    settings: EventSettings = request.app.state.settings.events
    return settings


EventSettingsDep = Annotated[EventSettings, Depends(get_event_settings)]


async def get_calendar_feed_service(
    request: Request, session: SessionDep, clock: ClockDep
) -> CalendarFeedService:
    """The request's CalendarFeedService."""
    return build_calendar_feed_service(
        session,
        audit=audit_service_for(request, session),
        settings=request.app.state.settings.calendar,
        clock=clock,
        manager_roles=MANAGER_ROLES,
    )


CalendarFeedServiceDep = Annotated[CalendarFeedService, Depends(get_calendar_feed_service)]
