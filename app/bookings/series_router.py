"""`/bookings/series`: recurring bookings, made at once and changed one, following or all."""

from fastapi import Request, Response, status

from app.auth.dependencies import IdempotencyDep
from app.bookings.dependencies import ActorDep
from app.bookings.models import Booking
from app.bookings.schemas import BookingRead
from app.bookings.series_dependencies import SeriesInPath, SeriesServiceDep
from app.bookings.series_models import BookingSeries
from app.bookings.series_schemas import (
    SeriesCancel,
    SeriesChanged,
    SeriesCreate,
    SeriesCreated,
    SeriesDetail,
    SeriesProblem,
    SeriesRead,
    SeriesUpdate,
)
from app.core.openapi import problem_responses
from app.core.preconditions import IfMatch, etag, required_versions
from app.core.routing import DomainRouter

series_router = DomainRouter(
    prefix="/bookings/series", tags=["bookings"], responses=problem_responses(401)
)
REFUSED = problem_responses(409, model=SeriesProblem)
"""A refused series: 409 with every occurrence's outcome."""
CHANGE_PROBLEMS = problem_responses(403, 404, 409, 412, 422, 428)


def _changed(series: BookingSeries, changed: list[Booking], response: Response) -> SeriesChanged:
    response.headers["ETag"] = etag(series.version)
    return SeriesChanged(
        series=SeriesRead.model_validate(series),
        changed=[BookingRead.model_validate(booking) for booking in changed],
    )


@series_router.post(
    "",
    name="series-create",
    status_code=status.HTTP_201_CREATED,
    response_model=SeriesCreated,
    responses={**problem_responses(403), **REFUSED},
)
async def create_series(
    *,
    actor: ActorDep,
    data: SeriesCreate,
    series: SeriesServiceDep,
    idempotency: IdempotencyDep,
    request: Request,
    response: Response,
) -> Response:
    """Book a recurring series; each occurrence is a booking judged by the room's rules.

    `all_or_nothing`: any refused occurrence books none (409 `series-refused` reporting
    each). `skip_conflicts`: the refused ones are skipped and reported. Honours
    `Idempotency-Key`.
    """
    made, reports = await series.create(actor=actor, data=data)
    response.headers["Location"] = f"{request.url.path.rstrip('/')}/{made.id}"
    response.headers["ETag"] = etag(made.version)
    return await idempotency.respond(
        SeriesCreated(series=SeriesRead.model_validate(made), occurrences=reports)
    )


@series_router.get("/{series_id:uuid}", name="series-get", responses=problem_responses(404))
async def get_series(
    found: SeriesInPath, series: SeriesServiceDep, response: Response
) -> SeriesDetail:
    """A series and all its occurrences (its owner, managers and admins); `ETag` to change it."""
    response.headers["ETag"] = etag(found.version)
    occurrences = await series.occurrences(series=found)
    return SeriesDetail(
        series=SeriesRead.model_validate(found),
        occurrences=[BookingRead.model_validate(booking) for booking in occurrences],
    )


@series_router.patch("/{series_id:uuid}", name="series-update", responses=CHANGE_PROBLEMS)
async def update_series(
    *,
    actor: ActorDep,
    found: SeriesInPath,
    data: SeriesUpdate,
    series: SeriesServiceDep,
    response: Response,
    if_match: IfMatch = None,
) -> SeriesChanged:
    """Change title, note, attendees or local times of one occurrence, following, or all.

    Every occurrence is judged like a `PATCH` of it; one refusal refuses the operation.
    """
    updated, changed = await series.update(
        actor=actor, series=found, expected_versions=required_versions(if_match), data=data
    )
    return _changed(updated, changed, response)


@series_router.post(
    "/{series_id:uuid}/cancel",
    name="series-cancel",
    response_model=SeriesChanged,
    responses=CHANGE_PROBLEMS,
)
async def cancel_series(
    *,
    actor: ActorDep,
    found: SeriesInPath,
    data: SeriesCancel,
    series: SeriesServiceDep,
    idempotency: IdempotencyDep,
    response: Response,
    if_match: IfMatch = None,
) -> Response:
    """Cancel one occurrence, it and the following, or all not yet started.

    Honours `Idempotency-Key`.
    """
    updated, cancelled = await series.cancel(
        actor=actor, series=found, expected_versions=required_versions(if_match), data=data
    )
    return await idempotency.respond(_changed(updated, cancelled, response))
