"""A room's booking policy: the wall-clock and duration rules every booking of it must meet.

Defaults come from the `BOOKINGS__` settings; a room stores only the fields it overrides
(`PolicyOverrides`), and `effective_policy` merges the two. Every duration is in whole
minutes so the policy reads the same in JSON, settings and the database.
"""

import re
from datetime import time
from enum import StrEnum
from itertools import pairwise
from typing import Annotated, Any, Self

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

from app.core.types import JsonInteger


class Weekday(StrEnum):
    """A day of the week, in ISO order (Monday first), as the policy names it."""

    MON = "mon"
    TUE = "tue"
    WED = "wed"
    THU = "thu"
    FRI = "fri"
    SAT = "sat"
    SUN = "sun"

    @property
    def iso_index(self) -> int:
        """0 for Monday to 6 for Sunday, as `date.weekday()` numbers them."""
        return list(Weekday).index(self)


MINUTES_PER_DAY = 24 * 60
MAX_POLICY_MINUTES = 366 * MINUTES_PER_DAY
"""Longest duration, notice or cut-off a policy may set (a year): instants stay computable."""
MAX_AHEAD_DAYS = 3660
"""Furthest horizon a policy may set (ten years)."""


CLOCK_PATTERN = r"^([01]\d|2[0-3]):[0-5]\d(:00)?$"
CLOCK_TEXT = re.compile(CLOCK_PATTERN)


def _clock_text(value: Any) -> Any:
    # Strict elsewhere, a time still arrives as a JSON string; a number of seconds does not.
    if isinstance(value, time) or (isinstance(value, str) and CLOCK_TEXT.fullmatch(value)):
        return value
    raise PydanticCustomError("time_type", "Time must be a `HH:MM` string.")


ClockTime = Annotated[
    time,
    Strict(False),
    BeforeValidator(_clock_text),
    WithJsonSchema({"type": "string", "pattern": CLOCK_PATTERN, "examples": ["08:00"]}),
]
"""A wall-clock time of day, `HH:MM` in JSON."""
DayName = Annotated[Weekday, Strict(False)]
"""A weekday key, in its JSON string form even where the model is strict."""


class OpeningSpan(BaseModel):
    """One stretch of a day when a room is open, in the room's wall-clock time.

    `closes` of 00:00 means midnight at the end of the day, so a room can stay open until
    the day ends; otherwise `opens` must come before `closes`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    opens: ClockTime = Field(description="Local time the room opens, e.g. `08:00`.")
    closes: ClockTime = Field(description="Local time it closes; `00:00` means the end of the day.")

    @property
    def opens_minute(self) -> int:
        """Minutes after local midnight at which the span starts."""
        return self.opens.hour * 60 + self.opens.minute

    @property
    def closes_minute(self) -> int:
        """Minutes after local midnight at which the span ends (1440 for end of day)."""
        minute = self.closes.hour * 60 + self.closes.minute
        return minute or MINUTES_PER_DAY

    @model_validator(mode="after")
    def _ordered_whole_minutes(self) -> Self:
        if any(t.second or t.microsecond or t.tzinfo for t in (self.opens, self.closes)):
            raise ValueError("opening times are whole minutes without a time zone")
        if self.opens_minute >= self.closes_minute:
            # A type of its own: JSON Schema cannot say it, so clients (and the fuzzer) can tell.
            raise PydanticCustomError("policy_inconsistent", "A span must open before it closes.")
        return self


OpeningHours = dict[Weekday, list[OpeningSpan]]
"""Open spans per weekday; a day that is missing or has no spans is closed."""


class BookingPolicy(BaseModel):
    """The complete rules of one room, after its overrides are applied to the defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    opening_hours: OpeningHours = Field(
        description="Open spans per weekday in the room's time zone; a missing day is closed."
    )
    slot_minutes: int = Field(
        ge=1, le=MINUTES_PER_DAY, description="Bookings start and end on multiples of this."
    )
    min_duration_minutes: int = Field(
        ge=1, le=MAX_POLICY_MINUTES, description="Shortest booking allowed."
    )
    max_duration_minutes: int = Field(
        ge=1, le=MAX_POLICY_MINUTES, description="Longest booking allowed."
    )
    min_notice_minutes: int = Field(
        ge=0,
        le=MAX_POLICY_MINUTES,
        description="How long before its start a booking must be made.",
    )
    max_ahead_days: int = Field(
        ge=1, le=MAX_AHEAD_DAYS, description="How far ahead a booking may start."
    )
    buffer_minutes: int = Field(
        ge=0,
        le=MINUTES_PER_DAY,
        description="Turnover time after a booking during which the room stays blocked.",
    )
    requires_approval: bool = Field(description="New bookings wait as `pending` for a manager.")
    member_cutoff_minutes: int = Field(
        ge=0,
        le=MAX_POLICY_MINUTES,
        description="Members may not change or cancel a booking this close to its start.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.min_duration_minutes > self.max_duration_minutes:
            raise ValueError("min_duration_minutes must not exceed max_duration_minutes")
        for day, spans in self.opening_hours.items():
            ordered = sorted(spans, key=lambda span: span.opens_minute)
            for before, after in pairwise(ordered):
                if before.closes_minute > after.opens_minute:
                    raise ValueError(f"opening spans of {day.value} overlap")
        return self

    def spans_on(self, day: Weekday) -> list[OpeningSpan]:
        """The open spans of one weekday, earliest first."""
        return sorted(self.opening_hours.get(day, []), key=lambda span: span.opens_minute)


SlotMinutes = Annotated[int, Field(ge=1, le=MINUTES_PER_DAY), JsonInteger]
Duration = Annotated[int, Field(ge=1, le=MAX_POLICY_MINUTES), JsonInteger]
Lead = Annotated[int, Field(ge=0, le=MAX_POLICY_MINUTES), JsonInteger]
"""Minutes before a booking's start: notice, cut-off."""
AheadDays = Annotated[int, Field(ge=1, le=MAX_AHEAD_DAYS), JsonInteger]
BufferMinutes = Annotated[int, Field(ge=0, le=MINUTES_PER_DAY), JsonInteger]


class PolicyOverrides(BaseModel):
    """The policy fields one room sets for itself; a missing field keeps the default.

    Strict, as request bodies are: `"15"` is no number and `"yes"` no boolean.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    opening_hours: dict[DayName, list[OpeningSpan]] | None = None
    slot_minutes: SlotMinutes | None = None
    min_duration_minutes: Duration | None = None
    max_duration_minutes: Duration | None = None
    min_notice_minutes: Lead | None = None
    max_ahead_days: AheadDays | None = None
    buffer_minutes: BufferMinutes | None = None
    requires_approval: bool | None = None
    member_cutoff_minutes: Lead | None = None


def effective_policy(defaults: BookingPolicy, overrides: PolicyOverrides) -> BookingPolicy:
    """Apply a room's overrides to the defaults; raises `ValueError` if the mix is inconsistent."""
    merged = defaults.model_dump() | overrides.model_dump(exclude_none=True)
    return BookingPolicy.model_validate(merged)
