"""Request and response shapes of recurring booking series and their per-occurrence reports."""

import uuid
from datetime import time
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from app.bookings.policy import ClockTime
from app.bookings.schemas import (
    Attendees,
    BookingRead,
    Note,
    OverrideRules,
    Reason,
    Title,
    UtcInstant,
    ViolationRead,
    ends_after_start,
)
from app.bookings.series import Recurrence, RecurrenceError, parse_recurrence
from app.core.openapi import Problem
from app.core.types import BoundedDatetime, JsonStringForm, RequestBody, SingleLine

MAX_EXDATES = 500
"""Most EXDATEs one series may list."""


def _recurrence(value: str) -> str:
    try:
        return parse_recurrence(value).text()
    except RecurrenceError as exc:
        raise PydanticCustomError("rrule", str(exc)) from exc


RRule = Annotated[
    SingleLine,
    Field(
        min_length=1,
        max_length=500,
        description=(
            "RFC 5545 RRULE subset: FREQ=DAILY|WEEKLY, INTERVAL, BYDAY (MO…SU), and COUNT or "
            "UNTIL (YYYYMMDD local date, YYYYMMDDTHHMMSS local, or YYYYMMDDTHHMMSSZ UTC)."
        ),
        examples=["FREQ=WEEKLY;BYDAY=MO,WE;COUNT=10"],
    ),
    AfterValidator(_recurrence),
]


class SeriesMode(StrEnum):
    """What to do when some occurrences cannot be booked."""

    ALL_OR_NOTHING = "all_or_nothing"
    SKIP_CONFLICTS = "skip_conflicts"


class SeriesScope(StrEnum):
    """Which occurrences an edit or cancellation touches."""

    ONE = "one"
    FOLLOWING = "following"
    ALL = "all"


class OccurrenceOutcome(StrEnum):
    """What became of one occurrence of a new series."""

    BOOKED = "booked"
    SKIPPED = "skipped"
    REFUSED = "refused"
    FREE = "free"
    """Would have been booked, but another occurrence was refused (all_or_nothing)."""


class SeriesCreate(RequestBody):
    """A recurring booking: the first occurrence's room, time and details, and the rule."""

    room_id: Annotated[uuid.UUID, JsonStringForm]
    title: Title
    note: Note | None = None
    attendees: Attendees = 1
    starts_at: BoundedDatetime = Field(
        description="DTSTART: the rule's first date and every occurrence's local time of day."
    )
    ends_at: BoundedDatetime = Field(description="End of the first occurrence (exclusive).")
    rrule: RRule
    exdates: list[BoundedDatetime] = Field(
        default_factory=list,
        max_length=MAX_EXDATES,
        description="Starts of occurrences to leave out; each must be one the rule yields.",
    )
    mode: Annotated[SeriesMode, JsonStringForm] = SeriesMode.ALL_OR_NOTHING
    override_rules: OverrideRules = False

    _range = field_validator("ends_at")(ends_after_start)

    @property
    def recurrence(self) -> Recurrence:
        """The parsed rule."""
        return parse_recurrence(self.rrule)


def _needs_occurrence(value: uuid.UUID | None, info: ValidationInfo) -> uuid.UUID | None:
    scope = info.data.get("scope")
    if scope in (SeriesScope.ONE, SeriesScope.FOLLOWING) and value is None:
        raise PydanticCustomError(
            "occurrence_required", "Scopes one and following name an occurrence."
        )
    return value


Occurrence = Annotated[
    Annotated[uuid.UUID, JsonStringForm] | None,
    Field(
        default=None,
        validate_default=True,
        description="The occurrence (booking id) scopes `one` and `following` start from.",
    ),
]


def _times_together(value: time | None, info: ValidationInfo) -> time | None:
    start = info.data.get("start_time")
    if (start is None) != (value is None):
        raise PydanticCustomError("time_pair", "start_time and end_time are given together.")
    if start is not None and value is not None and value <= start:
        raise PydanticCustomError("time_range", "end_time must come after start_time.")
    return value


class SeriesUpdate(RequestBody):
    """New details for some occurrences; absent fields stay, `note: null` clears the note.

    `start_time` and `end_time` move every occurrence in scope to new wall-clock times on
    its own date, each move judged like a `PATCH` of that booking.
    """

    scope: Annotated[SeriesScope, JsonStringForm]
    occurrence_id: Occurrence
    title: Title | None = None
    note: Note | None = None
    attendees: Attendees | None = None
    start_time: ClockTime | None = Field(
        default=None, description="New start, `HH:MM` on the room's wall clock (with end_time)."
    )
    end_time: ClockTime | None = Field(
        default=None,
        validate_default=True,
        description="New end, `HH:MM` on the room's wall clock, after start_time that day.",
    )

    _occurrence = field_validator("occurrence_id")(_needs_occurrence)
    _times = field_validator("end_time")(_times_together)


class SeriesCancel(RequestBody):
    """Which occurrences to cancel, and why."""

    scope: Annotated[SeriesScope, JsonStringForm]
    occurrence_id: Occurrence
    reason: Reason

    _occurrence = field_validator("occurrence_id")(_needs_occurrence)


class SeriesRead(BaseModel):
    """A series as its owner, managers and admins see it; `version` is its ETag."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    room_id: uuid.UUID
    owner_id: uuid.UUID
    title: str
    note: str | None
    attendees: int
    starts_at: UtcInstant
    ends_at: UtcInstant
    time_zone: str
    rrule: str
    exdates: list[UtcInstant]
    version: int
    created_at: UtcInstant
    updated_at: UtcInstant


class OccurrenceReport(BaseModel):
    """One occurrence of a new series: its time, what became of it, and why."""

    starts_at: UtcInstant
    ends_at: UtcInstant
    outcome: OccurrenceOutcome
    booking_id: uuid.UUID | None = Field(description="The booking made (outcome `booked`).")
    violations: list[ViolationRead] = Field(description="Why it was skipped or refused.")


class SeriesCreated(BaseModel):
    """A new series and every occurrence's outcome, in time order."""

    series: SeriesRead
    occurrences: list[OccurrenceReport]


class SeriesDetail(BaseModel):
    """A series and its occurrences (every status), in time order."""

    series: SeriesRead
    occurrences: list[BookingRead]


class SeriesChanged(BaseModel):
    """A series after an edit or cancellation, and the occurrences it changed."""

    series: SeriesRead
    changed: list[BookingRead]


class SeriesProblem(Problem):
    """A problem about a series; a refused one reports every occurrence."""

    occurrences: list[OccurrenceReport] | None = Field(
        default=None, description="Every occurrence's outcome (refused series only)."
    )
