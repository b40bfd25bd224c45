"""How requests get the series service and the series a path names."""

import uuid
from typing import Annotated

from fastapi import Depends, Request

from app.audit.dependencies import audit_service_for
from app.bookings.dependencies import ActorDep, booking_service_for
from app.bookings.series_models import BookingSeries
from app.bookings.series_service import SeriesService, build_series_service
from app.core.clock import ClockDep
from app.core.db import SessionDep


async def get_series_service(
    request: Request, session: SessionDep, clock: ClockDep
) -> SeriesService:
    """The request's SeriesService, on the request's booking service."""
    return build_series_service(
        session,
        audit=audit_service_for(request, session),
        settings=request.app.state.settings.bookings,
        clock=clock,
        bookings=booking_service_for(request, session, clock),
    )


SeriesServiceDep = Annotated[SeriesService, Depends(get_series_service)]


async def series_in_path(
    series_id: uuid.UUID, actor: ActorDep, series: SeriesServiceDep
) -> BookingSeries:
    """The series `{series_id}` names if the caller may see it; `SeriesNotFound` otherwise."""
    return await series.visible(actor=actor, series_id=series_id)


SeriesInPath = Annotated[BookingSeries, Depends(series_in_path)]
"""The path's series, loaded once."""
