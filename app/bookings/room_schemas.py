"""Request and response shapes of rooms, and the filters of the room list."""

import uuid
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated
from zoneinfo import available_timezones

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)
from pydantic_core import PydanticCustomError

from app.bookings.models import BookingKind, BookingStatus
from app.bookings.policy import BookingPolicy, PolicyOverrides
from app.bookings.schemas import Title, UtcInstant, ends_after_start
from app.core.openapi import Problem
from app.core.types import BoundedDatetime, JsonInteger, MultiLine, RequestBody, SingleLine

MAX_AMENITIES = 50
NOT_ROOM_ZONES = frozenset({"localtime", "posixrules", "Factory"})
"""Names in the zone database that are no place: the server's own zone, tzdata internals."""
AMENITY_PATTERN = r"^[a-z0-9]+(-[a-z0-9]+)*$"


@lru_cache(maxsize=1)
def _zone_names() -> frozenset[str]:
    return frozenset(available_timezones()) - NOT_ROOM_ZONES


def _known_zone(name: str) -> str:
    if name not in _zone_names():
        raise PydanticCustomError("time_zone", "Not an IANA time zone name, e.g. Europe/Berlin.")
    return name


def _tag_set(tags: list[str]) -> list[str]:
    return sorted(set(tags))


RoomName = Annotated[
    SingleLine, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)
]
Description = Annotated[MultiLine, StringConstraints(max_length=2000)]
Building = Annotated[
    SingleLine, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)
]
Floor = Annotated[
    SingleLine,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=32),
    Field(description="Floor as people name it (`2`, `G`, `mezzanine`); `null` for none."),
]
Capacity = Annotated[
    int, Field(ge=1, le=10_000), JsonInteger, Field(description="Most people the room holds.")
]
Amenity = Annotated[
    SingleLine, StringConstraints(min_length=1, max_length=32, pattern=AMENITY_PATTERN)
]
"""An equipment tag: a lower-case slug such as `projector` or `video-conference`."""
Amenities = Annotated[
    list[Amenity],
    Field(max_length=MAX_AMENITIES, description="Equipment tags; stored sorted, once each."),
    AfterValidator(_tag_set),
]
TimeZoneName = Annotated[
    SingleLine,
    StringConstraints(min_length=1, max_length=64),
    AfterValidator(_known_zone),
    Field(description="IANA time zone the opening hours are read in, e.g. `Europe/Berlin`."),
]
Overrides = Annotated[
    PolicyOverrides,
    Field(
        description=(
            "The booking rules this room sets for itself; a missing field keeps the default "
            "from the `BOOKINGS__` settings. The result must be consistent (422 otherwise)."
        )
    ),
]


class RoomCreate(RequestBody):
    """A room to create; its name is unique regardless of case."""

    name: RoomName
    description: Description = ""
    building: Building
    floor: Floor | None = None
    capacity: Capacity
    amenities: Amenities = Field(default_factory=list)
    time_zone: TimeZoneName
    policy: Overrides = Field(default_factory=PolicyOverrides)


class RoomUpdate(RequestBody):
    """Changes to a room; an absent field stays as it is, `floor: null` clears the floor.

    `amenities` and `policy` replace the whole set: send `policy: {}` to go back to every
    default. Bookings already made keep their times, attendees and buffers.
    """

    name: RoomName | None = None
    description: Description | None = None
    building: Building | None = None
    floor: Floor | None = None
    capacity: Capacity | None = None
    amenities: Amenities | None = None
    time_zone: TimeZoneName | None = None
    policy: Overrides | None = None


class RoomRead(BaseModel):
    """A room as the API shows it to anyone signed in; `version` is its ETag."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    description: str
    building: str
    floor: str | None
    capacity: int
    amenities: list[str]
    time_zone: str
    is_active: bool = Field(description="False once deactivated: no new bookings.")
    policy: PolicyOverrides = Field(
        description="What the room overrides of the defaults; `null` where the default applies."
    )
    effective_policy: BookingPolicy = Field(
        description="The rules bookings of the room are judged by: the defaults, overridden."
    )
    version: int
    created_at: UtcInstant
    updated_at: UtcInstant


@dataclass(frozen=True, slots=True)
class RoomFilter:
    """Room list filters; unset fields do not filter."""

    min_capacity: int | None = None
    amenities: tuple[str, ...] = ()
    """Tags the room must all have."""
    location: str | None = None
    """The building, compared without regard to case."""
    q: str | None = None
    """Text found in the name or description, without regard to case."""


class BlackoutCreate(RequestBody):
    """A time the room is closed (maintenance, an event, a holiday): `[starts_at, ends_at)`."""

    starts_at: BoundedDatetime = Field(description="First instant closed, any offset.")
    ends_at: BoundedDatetime = Field(description="First instant open again (exclusive).")
    reason: Title = Field(description="Why the room is closed; shown to everyone signed in.")

    _range = field_validator("ends_at")(ends_after_start)


class BlackoutRead(BaseModel):
    """A blackout in force, as anyone signed in sees it."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    room_id: uuid.UUID
    starts_at: UtcInstant
    ends_at: UtcInstant
    reason: str = Field(validation_alias="title")
    created_by: uuid.UUID = Field(validation_alias="owner_id", description="The manager or admin.")
    created_at: UtcInstant


class BusyRead(BaseModel):
    """A time something holds a room, without whose or what it is."""

    model_config = ConfigDict(from_attributes=True)

    starts_at: UtcInstant
    ends_at: UtcInstant
    blocked_until: UtcInstant = Field(
        description="`ends_at` plus the turnover buffer after a booking: free again from here."
    )
    kind: BookingKind
    status: BookingStatus
    mine: bool = Field(description="Whether it is the caller's own booking.")


class BlackoutProblem(Problem):
    """A problem about a blackout; a refused one lists what holds the room then."""

    conflicts: list[BusyRead] | None = Field(
        default=None, description="Bookings and blackouts in the way (409 only), nothing private."
    )


class IntervalRead(BaseModel):
    """A stretch of time `[starts_at, ends_at)`."""

    starts_at: UtcInstant
    ends_at: UtcInstant


class AvailabilityRead(BaseModel):
    """A room's free and busy time in a window; every instant in UTC."""

    room_id: uuid.UUID
    time_zone: str = Field(description="The room's IANA zone: its opening hours are read there.")
    window_start: UtcInstant
    window_end: UtcInstant
    free: list[IntervalRead] = Field(
        description=(
            "Times a booking could take: open, on the slot grid, at least the minimum "
            "duration, leaving room for the buffer before what follows. Empty when inactive."
        )
    )
    busy: list[BusyRead] = Field(description="What holds the room, without whose or what.")
