"""Recurrence of booking series: the RRULE subset Roombook reads, expanded on a room's clock.

Pure functions, no database. A rule is read from its RFC 5545 text (`FREQ=DAILY|WEEKLY`,
`INTERVAL`, `BYDAY`, and `COUNT` or `UNTIL`) and expanded by python-dateutil's `rrule` on
the room's wall clock: the first occurrence's local time of day is kept on every date, so
a weekly 09:00 stays 09:00 local across clock changes (and moves in UTC). Each occurrence
lasts as long as the first one, in elapsed time.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time
from itertools import islice
from typing import Literal
from zoneinfo import ZoneInfo

from dateutil.rrule import DAILY, FR, MO, SA, SU, TH, TU, WE, WEEKLY, rrule, weekday

FREQUENCIES: dict[str, Literal[2, 3]] = {"DAILY": DAILY, "WEEKLY": WEEKLY}
"""The `FREQ` values Roombook takes."""
WEEKDAYS: dict[str, weekday] = {
    "MO": MO,
    "TU": TU,
    "WE": WE,
    "TH": TH,
    "FR": FR,
    "SA": SA,
    "SU": SU,
}
"""`BYDAY` names (plain days: no `1MO`-style ordinals, which only monthly rules use)."""
KNOWN_PARTS = frozenset({"FREQ", "INTERVAL", "BYDAY", "COUNT", "UNTIL"})
MAX_INTERVAL = 52
"""Largest `INTERVAL`: every 52 weeks is once a year."""
UNTIL_FORMATS = {"%Y%m%dT%H%M%SZ": "utc", "%Y%m%dT%H%M%S": "local", "%Y%m%d": "date"}
"""The forms of `UNTIL`: a UTC instant, a local date-time, or a local date (through that day)."""


class RecurrenceError(ValueError):
    """The rule is outside the supported subset or malformed; the message says how."""


@dataclass(frozen=True, slots=True)
class Recurrence:
    """A parsed rule: how often, on which days, and until when."""

    frequency: str
    interval: int
    by_day: tuple[str, ...]
    count: int | None
    until: tuple[datetime, str] | None
    """`UNTIL` as read (naive) and its form (`utc`, `local` or `date`)."""

    def text(self) -> str:
        """The rule in canonical RFC 5545 form (parts in a fixed order)."""
        parts = [f"FREQ={self.frequency}"]
        if self.interval != 1:
            parts.append(f"INTERVAL={self.interval}")
        if self.by_day:
            parts.append(f"BYDAY={','.join(self.by_day)}")
        if self.count is not None:
            parts.append(f"COUNT={self.count}")
        if self.until is not None:
            value, form = self.until
            pattern = next(p for p, f in UNTIL_FORMATS.items() if f == form)
            parts.append(f"UNTIL={value.strftime(pattern)}")
        return ";".join(parts)


def parse_recurrence(text: str) -> Recurrence:
    """Read an `RRULE` value (with or without the `RRULE:` prefix); `RecurrenceError` if not."""
    parts = _parts(text.removeprefix("RRULE:"))
    frequency = parts.get("FREQ")
    if frequency not in FREQUENCIES:
        raise RecurrenceError("FREQ must be DAILY or WEEKLY.")
    if ("COUNT" in parts) == ("UNTIL" in parts):
        raise RecurrenceError("Give exactly one of COUNT and UNTIL.")
    by_day = tuple(parts["BYDAY"].split(",")) if "BYDAY" in parts else ()
    unknown_days = [day for day in by_day if day not in WEEKDAYS]
    if unknown_days or len(set(by_day)) != len(by_day):
        raise RecurrenceError("BYDAY lists distinct days among MO, TU, WE, TH, FR, SA, SU.")
    return Recurrence(
        frequency=frequency,
        interval=_number(parts, "INTERVAL", most=MAX_INTERVAL) or 1,
        by_day=by_day,
        count=_number(parts, "COUNT", most=None),
        until=_until(parts["UNTIL"]) if "UNTIL" in parts else None,
    )


def expand(
    *,
    recurrence: Recurrence,
    starts_at: datetime,
    ends_at: datetime,
    time_zone: ZoneInfo,
    limit: int,
) -> list[tuple[datetime, datetime]]:
    """The occurrences, in UTC, at most `limit` of them (one more tells the caller it is over).

    The rule runs on naive wall-clock times of the room's zone, which are then placed in
    the zone: a local time the clocks skip lands an hour later, like any such booking.
    """
    length = ends_at - starts_at
    first = starts_at.astimezone(time_zone).replace(tzinfo=None)
    rule = rrule(
        FREQUENCIES[recurrence.frequency],
        dtstart=first,
        interval=recurrence.interval,
        byweekday=[WEEKDAYS[day] for day in recurrence.by_day] or None,
        count=recurrence.count,
        until=_local_until(recurrence, time_zone),
    )
    starts = (wall.replace(tzinfo=time_zone).astimezone(UTC) for wall in rule)
    return [(start, start + length) for start in islice(starts, limit)]


def without(
    occurrences: Sequence[tuple[datetime, datetime]], *, excluded: Sequence[datetime]
) -> tuple[list[tuple[datetime, datetime]], list[int]]:
    """The occurrences not starting at an excluded instant, and which exclusions matched none."""
    starts = {start for start, _ in occurrences}
    unmatched = [index for index, instant in enumerate(excluded) if instant not in starts]
    gone = set(excluded)
    return [o for o in occurrences if o[0] not in gone], unmatched


def _parts(text: str) -> dict[str, str]:
    parts: dict[str, str] = {}
    for part in text.split(";"):
        name, sep, value = part.partition("=")
        if not sep or not value:
            raise RecurrenceError(f"{part!r} is not NAME=VALUE.")
        if name not in KNOWN_PARTS:
            raise RecurrenceError(f"{name} is not supported; use {', '.join(sorted(KNOWN_PARTS))}.")
        if name in parts:
            raise RecurrenceError(f"{name} is given twice.")
        parts[name] = value
    return parts


def _number(parts: dict[str, str], name: str, *, most: int | None) -> int | None:
    if name not in parts:
        return None
    value = parts[name]
    if not value.isascii() or not value.isdigit() or int(value) < 1:
        raise RecurrenceError(f"{name} must be a positive whole number.")
    if most is not None and int(value) > most:
        raise RecurrenceError(f"{name} must be at most {most}.")
    return int(value)


def _until(value: str) -> tuple[datetime, str]:
    for pattern, form in UNTIL_FORMATS.items():
        try:
            return datetime.strptime(value, pattern), form
        except ValueError:
            continue
    raise RecurrenceError("UNTIL is YYYYMMDD, YYYYMMDDTHHMMSS (local) or YYYYMMDDTHHMMSSZ (UTC).")


def _local_until(recurrence: Recurrence, time_zone: ZoneInfo) -> datetime | None:
    """`UNTIL` as a naive wall-clock time of the room, the bound dateutil compares with."""
    if recurrence.until is None:
        return None
    value, form = recurrence.until
    if form == "utc":
        return value.replace(tzinfo=UTC).astimezone(time_zone).replace(tzinfo=None)
    if form == "date":
        return datetime.combine(value.date(), time.max)
    return value
