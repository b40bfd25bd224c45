"""The domain errors of rooms, blackouts and bookings; each carries its status and stable code."""

from collections.abc import Sequence
from typing import Any

from app.bookings.room_schemas import BusyRead
from app.bookings.rules import Violation, ViolationCode
from app.bookings.schemas import Alternatives, ViolationRead
from app.core.errors import AppError, Conflict, Forbidden, NotFound

SLOT_TAKEN = frozenset({ViolationCode.OVERLAP, ViolationCode.IN_BLACKOUT})
"""Violations meaning the time is taken: no override sets them aside, and they refuse as 409."""


class RoomNotFound(NotFound):
    """No room has this id."""

    code = "room-not-found"
    title = "Room not found"


class RoomNameTaken(Conflict):
    """Another room already has this name (names are unique regardless of case)."""

    code = "room-name-taken"
    title = "Room name taken"


class BlackoutNotFound(NotFound):
    """The room has no blackout in force with this id."""

    code = "blackout-not-found"
    title = "Blackout not found"


class BlackoutConflict(Conflict):
    """Bookings or blackouts hold the room in the time a blackout would close it."""

    code = "blackout-conflict"
    title = "Room not free for the blackout"

    def __init__(self, detail: str, *, conflicts: Sequence[BusyRead]) -> None:
        super().__init__(detail)
        self.conflicts = list(conflicts)

    def extensions(self) -> dict[str, Any]:
        """Carry what holds the room: times, kind and status only."""
        return {"conflicts": [busy.model_dump(mode="json") for busy in self.conflicts]}


class BookingNotFound(NotFound):
    """No booking with this id is visible to the caller."""

    code = "booking-not-found"
    title = "Booking not found"


class _Refusal(AppError):
    """A booking refused for the listed violations, with alternatives when the time is taken."""

    def __init__(
        self, detail: str, *, violations: Sequence[Violation], alternatives: Alternatives
    ) -> None:
        super().__init__(detail)
        self.violations = list(violations)
        self.alternatives = alternatives

    def extensions(self) -> dict[str, Any]:
        """Carry every violation and the alternatives."""
        return {
            "violations": [ViolationRead.of(v).model_dump(mode="json") for v in self.violations],
            "alternatives": self.alternatives.model_dump(mode="json"),
        }


class BookingRefused(_Refusal, Conflict):
    """The time is taken: another booking or a blackout holds the room (perhaps more broken)."""

    code = "booking-refused"
    title = "Booking refused"


class BookingRulesViolated(_Refusal):
    """The booking breaks the room's rules; the time itself is free."""

    status = 422
    code = "booking-rules-violated"
    title = "Booking breaks the room's rules"


def refusal(*, violations: Sequence[Violation], alternatives: Alternatives) -> _Refusal:
    """The error for a refused booking: time taken first, else the rules broken."""
    codes = ", ".join(violation.code.value for violation in violations)
    if any(violation.code in SLOT_TAKEN for violation in violations):
        return BookingRefused(
            f"The room is not free for this time ({codes}).",
            violations=violations,
            alternatives=alternatives,
        )
    return BookingRulesViolated(
        f"The booking breaks the room's rules ({codes}).",
        violations=violations,
        alternatives=alternatives,
    )


class IllegalTransition(Conflict):
    """The booking's status does not allow this step (approve a cancelled one, say)."""

    code = "illegal-transition"
    title = "Not allowed in the booking's status"


class BookingClosed(Conflict):
    """A cancelled or rejected booking no longer changes."""

    code = "booking-closed"
    title = "Booking no longer changes"


class MemberCutoffPassed(Forbidden):
    """Members may not change or cancel a booking this close to its start."""

    code = "member-cutoff-passed"
    title = "Too close to the start"


class RulesOverrideForbidden(Forbidden):
    """Only managers and admins may set the rules aside."""

    code = "rules-override-forbidden"
    title = "Only managers may override rules"


class OwnerFilterForbidden(Forbidden):
    """Members list only their own bookings."""

    code = "owner-filter-forbidden"
    title = "Members see only their own bookings"


class CalendarFeedNotFound(NotFound):
    """No feed at this address: an unknown or revoked token, or a room feed it does not open."""

    code = "calendar-feed-not-found"
    title = "Calendar feed not found"
