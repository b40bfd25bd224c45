"""`/bookings`: members book and manage their own bookings; managers and admins any."""

from fastapi import Request, Response, status

from app.auth.dependencies import IdempotencyDep, ManagerUser
from app.bookings.dependencies import (
    ActorDep,
    BookingFilterDep,
    BookingInPath,
    BookingServiceDep,
)
from app.bookings.models import Booking
from app.bookings.schemas import (
    BookingCreate,
    BookingProblem,
    BookingRead,
    BookingUpdate,
    BookingVerdict,
    CancelRequest,
    RejectRequest,
)
from app.core.openapi import problem_responses
from app.core.pagination import Page, PageRequestDep
from app.core.preconditions import IfMatch, etag, required_versions
from app.core.routing import DomainRouter

bookings_router = DomainRouter(
    prefix="/bookings", tags=["bookings"], responses=problem_responses(401)
)
REFUSALS = problem_responses(409, 422, model=BookingProblem)
"""A refused booking: 409 when the time is taken, 422 when only the rules say no."""
CHANGE_PROBLEMS = {**problem_responses(403, 404, 412, 428), **REFUSALS}


def _read(booking: Booking, response: Response) -> BookingRead:
    response.headers["ETag"] = etag(booking.version)
    return BookingRead.model_validate(booking)


@bookings_router.post(
    "",
    name="create",
    status_code=status.HTTP_201_CREATED,
    response_model=BookingRead,
    responses={**problem_responses(403), **REFUSALS},
)
async def create_booking(
    *,
    actor: ActorDep,
    data: BookingCreate,
    bookings: BookingServiceDep,
    idempotency: IdempotencyDep,
    request: Request,
    response: Response,
) -> Response:
    """Book a room: `pending` where the room needs approval, else `confirmed`.

    Refused with every rule broken: 409 `booking-refused` when the time is taken (with
    `alternatives`), else 422 `booking-rules-violated`. Honours `Idempotency-Key`.
    """
    booking = await bookings.create(actor=actor, data=data)
    response.headers["Location"] = f"{request.url.path.rstrip('/')}/{booking.id}"
    return await idempotency.respond(_read(booking, response))


@bookings_router.post("/check", name="check", responses=problem_responses(403))
async def check_booking(
    actor: ActorDep, data: BookingCreate, bookings: BookingServiceDep
) -> BookingVerdict:
    """Judge a booking as `POST /bookings` would, time taken included, without booking it."""
    return await bookings.check(actor=actor, data=data)


@bookings_router.get("", name="list", responses=problem_responses(403))
async def list_bookings(
    actor: ActorDep, bookings: BookingServiceDep, filters: BookingFilterDep, page: PageRequestDep
) -> Page[BookingRead]:
    """Bookings by start, earliest first: a member's own, or anyone's for managers and admins."""
    rows, next_key = await bookings.list_bookings(actor=actor, filters=filters, page=page)
    return Page(
        items=[BookingRead.model_validate(row) for row in rows],
        next_cursor=page.cursor_after(next_key),
    )


@bookings_router.get("/{booking_id:uuid}", name="get", responses=problem_responses(404))
async def get_booking(booking: BookingInPath, response: Response) -> BookingRead:
    """One booking (its owner, managers and admins); the `ETag` is needed to change it."""
    return _read(booking, response)


@bookings_router.patch("/{booking_id:uuid}", name="update", responses=CHANGE_PROBLEMS)
async def update_booking(
    *,
    actor: ActorDep,
    booking: BookingInPath,
    data: BookingUpdate,
    bookings: BookingServiceDep,
    response: Response,
    if_match: IfMatch = None,
) -> BookingRead:
    """Change title, note, attendees, time or room; a move is judged as a new booking."""
    updated = await bookings.update(
        actor=actor, booking=booking, expected_versions=required_versions(if_match), data=data
    )
    return _read(updated, response)


@bookings_router.post(
    "/{booking_id:uuid}/cancel",
    name="cancel",
    response_model=BookingRead,
    responses=CHANGE_PROBLEMS,
)
async def cancel_booking(
    *,
    actor: ActorDep,
    booking: BookingInPath,
    data: CancelRequest,
    bookings: BookingServiceDep,
    idempotency: IdempotencyDep,
    response: Response,
    if_match: IfMatch = None,
) -> Response:
    """Cancel a pending or confirmed booking (members: their own, before the cut-off).

    Honours `Idempotency-Key`, as approve and reject do.
    """
    updated = await bookings.cancel(
        actor=actor,
        booking=booking,
        expected_versions=required_versions(if_match),
        reason=data.reason,
    )
    return await idempotency.respond(_read(updated, response))


@bookings_router.post(
    "/{booking_id:uuid}/approve",
    name="approve",
    response_model=BookingRead,
    responses=CHANGE_PROBLEMS,
)
async def approve_booking(
    *,
    _: ManagerUser,
    actor: ActorDep,
    booking: BookingInPath,
    bookings: BookingServiceDep,
    idempotency: IdempotencyDep,
    response: Response,
    if_match: IfMatch = None,
) -> Response:
    """Confirm a pending booking."""
    updated = await bookings.approve(
        actor=actor, booking=booking, expected_versions=required_versions(if_match)
    )
    return await idempotency.respond(_read(updated, response))


@bookings_router.post(
    "/{booking_id:uuid}/reject",
    name="reject",
    response_model=BookingRead,
    responses=CHANGE_PROBLEMS,
)
async def reject_booking(
    *,
    _: ManagerUser,
    actor: ActorDep,
    booking: BookingInPath,
    bookings: BookingServiceDep,
    idempotency: IdempotencyDep,
    response: Response,
    data: RejectRequest | None = None,
    if_match: IfMatch = None,
) -> Response:
    """Turn down a pending booking, optionally saying why; the room is free again."""
    updated = await bookings.reject(
        actor=actor,
        booking=booking,
        expected_versions=required_versions(if_match),
        reason=None if data is None else data.reason,
    )
    return await idempotency.respond(_read(updated, response))
