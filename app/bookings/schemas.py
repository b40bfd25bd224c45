"""Request and response shapes of bookings, and the filters of the booking list."""

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from app.bookings.models import BookingStatus
from app.bookings.rules import Violation, ViolationCode
from app.core.openapi import Problem
from app.core.types import (
    BoundedDatetime,
    JsonInteger,
    JsonStringForm,
    MultiLine,
    RequestBody,
    SingleLine,
)


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


UtcInstant = Annotated[datetime, AfterValidator(_utc)]
"""An instant as the API answers it: UTC, serialised with `Z`."""
Title = Annotated[
    SingleLine, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)
]
Note = Annotated[MultiLine, StringConstraints(max_length=2000)]
Reason = Annotated[
    MultiLine, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)
]
Attendees = Annotated[
    int,
    Field(ge=1, le=10_000),
    JsonInteger,
    Field(description="People expected, at most the room's capacity."),
]
OverrideRules = Annotated[
    bool,
    Field(
        description=(
            "Managers and admins only: book even where the room's rules say no (never over "
            "another booking or a blackout, never in a deactivated room). Members get 403."
        )
    ),
]


def ends_after_start(ends_at: datetime | None, info: ValidationInfo) -> datetime | None:
    """Refuse an `ends_at` not after the `starts_at` validated before it."""
    starts_at = info.data.get("starts_at")
    if starts_at is not None and ends_at is not None and starts_at >= ends_at:
        raise PydanticCustomError("time_range", "ends_at must come after starts_at.")
    return ends_at


class BookingCreate(RequestBody):
    """A booking to make (or to judge at `/bookings/check`): a room for `[starts_at, ends_at)`."""

    room_id: Annotated[uuid.UUID, JsonStringForm]
    title: Title
    note: Note | None = None
    attendees: Attendees = 1
    starts_at: BoundedDatetime = Field(description="First instant, any offset; stored in UTC.")
    ends_at: BoundedDatetime = Field(description="First instant after the booking (exclusive).")
    override_rules: OverrideRules = False

    _range = field_validator("ends_at")(ends_after_start)


class BookingUpdate(RequestBody):
    """Changes to a booking; an absent field stays as it is, `note: null` clears the note.

    A new time, room or attendee count is judged by the same rules as a new booking.
    """

    title: Title | None = None
    note: Note | None = None
    attendees: Attendees | None = None
    starts_at: BoundedDatetime | None = None
    ends_at: BoundedDatetime | None = None
    room_id: Annotated[uuid.UUID, JsonStringForm] | None = None
    override_rules: OverrideRules = False

    _range = field_validator("ends_at")(ends_after_start)


class CancelRequest(RequestBody):
    """Why a booking is cancelled."""

    reason: Reason


class RejectRequest(RequestBody):
    """Why a pending booking is rejected (kept in the audit trail)."""

    reason: Reason | None = None


class BookingRead(BaseModel):
    """A booking as the API shows it to its owner, managers and admins; `version` is its ETag."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    room_id: uuid.UUID
    owner_id: uuid.UUID
    title: str
    note: str | None
    attendees: int
    starts_at: UtcInstant
    ends_at: UtcInstant
    status: BookingStatus
    version: int
    created_at: UtcInstant
    updated_at: UtcInstant
    cancelled_by: uuid.UUID | None
    cancelled_at: UtcInstant | None
    cancel_reason: str | None
    decided_by: uuid.UUID | None
    decided_at: UtcInstant | None
    rules_overridden: bool = Field(
        description="A manager or admin made or moved it outside the room's rules."
    )
    series_id: uuid.UUID | None = Field(
        description="The recurring series it is an occurrence of (`/bookings/series/{id}`)."
    )


class ViolationRead(BaseModel):
    """One reason a booking is refused: a stable code and a message for people."""

    code: ViolationCode
    message: str

    @classmethod
    def of(cls, violation: Violation) -> "ViolationRead":
        """The API form of a rule engine violation."""
        return cls(code=violation.code, message=violation.message)


class SlotRead(BaseModel):
    """A free time in the requested room, as long as the requested booking."""

    starts_at: UtcInstant
    ends_at: UtcInstant


class RoomOption(BaseModel):
    """Another room free for the whole requested time that holds the attendees."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    building: str
    floor: str | None
    capacity: int
    time_zone: str


class Alternatives(BaseModel):
    """What to book instead when the time is taken; both lists are empty otherwise."""

    slots: list[SlotRead] = Field(
        default_factory=list, description="Nearest free times in the same room, nearest first."
    )
    rooms: list[RoomOption] = Field(
        default_factory=list, description="Other active rooms free then, smallest fitting first."
    )


class BookingVerdict(BaseModel):
    """What `POST /bookings` would answer to the same body, without booking anything."""

    ok: bool = Field(description="Whether the booking would be made.")
    status: BookingStatus | None = Field(
        description="The status it would get (`pending` where the room needs approval)."
    )
    violations: list[ViolationRead] = Field(description="Every reason it would be refused.")
    overridden: list[ViolationRead] = Field(
        description="Rules `override_rules` would set aside (managers and admins)."
    )
    alternatives: Alternatives


@dataclass(frozen=True, slots=True)
class BookingFilter:
    """List filters; unset fields do not filter."""

    room_id: uuid.UUID | None = None
    status: BookingStatus | None = None
    starts_from: datetime | None = None
    """Inclusive lower bound on `starts_at`."""
    starts_before: datetime | None = None
    """Exclusive upper bound on `starts_at`."""
    owner_id: uuid.UUID | None = None


class BookingProblem(Problem):
    """A problem about a booking; a refused one lists why and what to book instead."""

    violations: list[ViolationRead] | None = Field(
        default=None, description="Every rule the booking breaks (refusals only)."
    )
    alternatives: Alternatives | None = Field(
        default=None, description="Free times and rooms instead of a taken time (refusals only)."
    )


class CalendarTokenRead(BaseModel):
    """A new calendar feed token, shown once: keep the URL, Roombook keeps only a hash."""

    token: str
    """The secret in the feed's address; anyone holding it can read the feed."""
    feed_url: str
    """The personal feed to subscribe to (`GET /calendar/{token}.ics`)."""
    created_at: UtcInstant
    """When the token was issued; the previous one stopped working then."""
