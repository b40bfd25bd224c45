"""Availability: a room's free and busy time in a window, and the rooms free for a given time.

Free time follows the room's calendar: opening hours in its zone, the slot grid, the
minimum duration, and what holds the room (bookings with their buffers, blackouts). It
does not depend on when it is asked: notice and horizon are the booking rules' business.
Busy time names only its kind and status, never a title or an owner.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from app.bookings.intervals import Interval, is_open_throughout, list_free_intervals
from app.bookings.models import BookingKind, BookingStatus, Room
from app.bookings.policy import BookingPolicy, PolicyOverrides, effective_policy
from app.bookings.repository import AvailabilityRepository, BlockingRow
from app.bookings.service import default_policy
from app.core.config import BookingSettings
from app.core.errors import ValidationFailed
from app.core.pagination import PageRequest, SortValue


@dataclass(frozen=True, slots=True)
class BusyInterval:
    """A stretch of time something holds the room; `blocked_until` adds a booking's buffer."""

    starts_at: datetime
    ends_at: datetime
    blocked_until: datetime
    kind: BookingKind
    status: BookingStatus
    mine: bool
    """Whether it is the viewer's own booking (a blackout never is)."""


@dataclass(frozen=True, slots=True)
class RoomAvailability:
    """A room's free intervals and what holds it, within `[window_start, window_end)`."""

    room: Room
    policy: BookingPolicy
    window_start: datetime
    window_end: datetime
    free: list[Interval]
    busy: list[BusyInterval]


class AvailabilityService:
    """Answer when a room is free, and which rooms are free for a given time."""

    def __init__(self, *, session: AsyncSession, defaults: BookingPolicy, max_days: int) -> None:
        self.repository = AvailabilityRepository(session)
        self.defaults = defaults
        self.max_window = timedelta(days=max_days)

    def policy_of(self, *, room: Room) -> BookingPolicy:
        """The rules that apply to a room: the defaults with its overrides."""
        return effective_policy(self.defaults, PolicyOverrides.model_validate(room.policy))

    async def of_room(
        self, *, room: Room, window_start: datetime, window_end: datetime, viewer_id: uuid.UUID
    ) -> RoomAvailability:
        """Free and busy time of the room in the window; a deactivated room has no free time."""
        self._check_window(starts_at=window_start, ends_at=window_end, names=("from", "to"))
        policy = self.policy_of(room=room)
        # A booking ending at the window's end blocks its buffer beyond it: what starts in
        # there decides whether the last free interval may run up to the end.
        rows = await self.repository.blocking_rows(
            room_id=room.id,
            window_start=window_start,
            window_end=window_end + timedelta(minutes=policy.buffer_minutes),
        )
        free = (
            list_free_intervals(
                policy=policy,
                time_zone=ZoneInfo(room.time_zone),
                window_start=window_start,
                window_end=window_end,
                busy=[(row.starts_at, row.blocked_until) for row in rows],
            )
            if room.is_active
            else []
        )
        busy = [
            busy_interval(row, viewer_id=viewer_id) for row in rows if row.starts_at < window_end
        ]
        return RoomAvailability(
            room=room,
            policy=policy,
            window_start=window_start,
            window_end=window_end,
            free=free,
            busy=busy,
        )

    async def free_rooms(
        self,
        *,
        starts_at: datetime,
        ends_at: datetime,
        min_capacity: int | None,
        amenities: tuple[str, ...],
        page: PageRequest,
    ) -> tuple[list[Room], tuple[SortValue, uuid.UUID] | None]:
        """One page (by name) of active rooms open and unblocked for all of the range.

        The database finds the rooms nothing holds (buffers included); opening hours, kept
        per room in its own zone, are checked here, batch after batch until the page is full.
        """
        self._check_window(starts_at=starts_at, ends_at=ends_at, names=("start", "end"))
        found: list[Room] = []
        after = page.after
        batch = page.limit + 1
        while len(found) <= page.limit:
            rooms = await self.repository.unblocked_rooms(
                starts_at=starts_at,
                ends_at=ends_at,
                default_buffer_minutes=self.defaults.buffer_minutes,
                min_capacity=min_capacity,
                amenities=amenities,
                after=after,
                limit=batch,
            )
            found.extend(room for room in rooms if self._open(room, starts_at, ends_at))
            if len(rooms) < batch:
                break
            after = (rooms[-1].name, rooms[-1].id)
        if len(found) <= page.limit:
            return found, None
        last = found[page.limit - 1]
        return found[: page.limit], (last.name, last.id)

    def _open(self, room: Room, starts_at: datetime, ends_at: datetime) -> bool:
        return is_open_throughout(
            policy=self.policy_of(room=room),
            time_zone=ZoneInfo(room.time_zone),
            starts_at=starts_at,
            ends_at=ends_at,
        )

    def _check_window(
        self, *, starts_at: datetime, ends_at: datetime, names: tuple[str, str]
    ) -> None:
        """Refuse an empty or reversed window, and one longer than the configured cap."""
        start, end = names
        if ends_at <= starts_at:
            message, kind = f"Must be after `{start}`.", "range"
        elif ends_at - starts_at > self.max_window:
            message = f"Must be at most {self.max_window.days} days after `{start}`."
            kind = "window_too_long"
        else:
            return
        raise ValidationFailed([{"field": end, "message": message, "type": kind}])


def busy_interval(row: BlockingRow, *, viewer_id: uuid.UUID) -> BusyInterval:
    """A blocking row as busy time: its times, kind and status, and whether it is the viewer's."""
    kind = BookingKind(row.kind)
    return BusyInterval(
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        blocked_until=row.blocked_until,
        kind=kind,
        status=BookingStatus(row.status),
        mine=kind is BookingKind.BOOKING and row.owner_id == viewer_id,
    )


def build_availability_service(
    session: AsyncSession, *, settings: BookingSettings
) -> AvailabilityService:
    """The availability service on a session, with the default policy and window cap."""
    return AvailabilityService(
        session=session,
        defaults=default_policy(settings),
        max_days=settings.availability_max_days,
    )
