"""The booking scenarios of the HTTP benchmark: free slots to book, and the checks after runs.

Seeded rooms keep every weekday evening from 18:30 local free (`seed.py`). The `POST
/bookings` scenarios book there through `wrk/book.lua`, which builds each request from a
file of evenings (`ROOM_ID EPOCH` lines) and its number; `DistinctSlots` and `SameSlot`
build the very same requests here, so the harness can send one again:

* distinct slots: request n of run r is number k = r * stride + n of the bench, the
  15-minute slot k // evenings (30 minutes apart: a 15-minute buffer fits between) of
  evening k % evenings, booked by member k % members with `Idempotency-Key: bench-k`.
  After each run the harness matches the run's rows (by title) to the numbers wrk got a
  201 for: every 201 has its row, no number has two, every row its stored key, and the
  rows wrk got no answer for (booked while it stopped) answer their retry, with the same
  key, with the stored 201 (a replay): rows = 201s, none lost, none twice;
* one slot: every request of run r aims at evening r, slot 0 (each with a key of its
  own): exactly one row holds it, one 201, the rest 409, no 5xx.

The availability scenarios read each room's next week in turn, and the rooms free for one
hour of it.

Run 0 is the probe's; wrk's runs are numbered from 1.
"""

import asyncio
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Protocol
from zoneinfo import ZoneInfo

import asyncpg
import httpx

from app import devdb
from app.bookings.models import HOLDING_STATUSES
from app.core.idempotency import KEY_HEADER, REPLAYED_HEADER
from benchmarks.measure import WrkRun
from benchmarks.runner import Load, Server, wait_idle

EVENING = time(18, 30)
"""Local time from which every seeded room is free on weekdays (rooms close at 20:00)."""
SLOT = timedelta(minutes=15)
STEP = timedelta(minutes=30)
SLOTS_PER_EVENING = 3
"""18:30, 19:00 and 19:30: the last ends 15 minutes before closing."""
FIRST_DAY = 2
"""Days after today of the first evening: still ahead in every seeded zone."""
LAST_DAY = 170
"""Days after today of the last evening: inside the default 180-day horizon."""
BOOKINGS_PATH = "/api/v1/bookings"
ROOMS_PATH = "/api/v1/rooms"


@dataclass(frozen=True, slots=True)
class Evening:
    """A room's free evening on one day: its first slot's start, in UTC."""

    room_id: uuid.UUID
    starts_at: datetime

    def line(self) -> str:
        """The line of the evenings file `book.lua` reads."""
        return f"{self.room_id} {int(self.starts_at.timestamp())}"


def weekdays_ahead(today: date) -> list[date]:
    """Monday to Friday from `FIRST_DAY` to `LAST_DAY` days after `today`."""
    days = (today + timedelta(days=n) for n in range(FIRST_DAY, LAST_DAY + 1))
    return [day for day in days if day.weekday() < 5]


def evenings(rooms: Sequence[tuple[uuid.UUID, str]], *, days: Iterable[date]) -> list[Evening]:
    """18:30 local of each room on each day, day after day: consecutive ones differ in room."""
    return [
        Evening(room, datetime.combine(day, EVENING, ZoneInfo(zone)).astimezone(UTC))
        for day in days
        for room, zone in rooms
    ]


def iso(instant: datetime) -> str:
    """An instant as `book.lua` writes it (`os.date("!%Y-%m-%dT%H:%M:%SZ")`)."""
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def next_monday(today: date) -> date:
    """The Monday after `today`: the week the availability scenarios ask about."""
    return today + timedelta(days=7 - today.weekday())


def week_paths(
    rooms: Sequence[tuple[uuid.UUID, str]], tokens: Sequence[str], *, monday: date
) -> list[str]:
    """`TOKEN PATH` lines: each room's availability from `monday` for a week, members in turn."""
    start = datetime.combine(monday, time(0), UTC)
    window = f"from={iso(start)}&to={iso(start + timedelta(days=7))}"
    return [
        f"{tokens[n % len(tokens)]} {ROOMS_PATH}/{room}/availability?{window}"
        for n, (room, _) in enumerate(rooms)
    ]


def free_rooms_path(monday: date) -> str:
    """The rooms free for an hour: Tuesday 13:00 to 14:00 UTC of the week of `monday`.

    Inside opening hours in every seeded zone (14:00 in Berlin, 13:00 in London, 08:00 in
    New York, 18:30 in Kolkata), while seeded bookings hold some of the rooms.
    """
    start = datetime.combine(monday + timedelta(days=1), time(13), UTC)
    return f"{ROOMS_PATH}/available?start={iso(start)}&end={iso(start + timedelta(hours=1))}"


@dataclass(frozen=True, slots=True)
class BookingRequest:
    """One `POST /bookings` as `book.lua` sends it."""

    token: str
    key: str
    body: dict[str, object]

    def build(self, base_url: str) -> httpx.Request:
        """The HTTP request, with its bearer token and idempotency key."""
        headers = {"Authorization": f"Bearer {self.token}", KEY_HEADER: self.key}
        return httpx.Request("POST", base_url + BOOKINGS_PATH, json=self.body, headers=headers)


def booking_request(
    evening: Evening, *, slot: int, token: str, key: str, title: str
) -> BookingRequest:
    """Book slot `slot` of the evening for one attendee."""
    starts_at = evening.starts_at + slot * STEP
    body: dict[str, object] = {
        "room_id": str(evening.room_id),
        "title": title,
        "attendees": 1,
        "starts_at": iso(starts_at),
        "ends_at": iso(starts_at + SLOT),
    }
    return BookingRequest(token=token, key=key, body=body)


@dataclass(frozen=True, slots=True)
class DistinctSlots:
    """The requests of `book.lua distinct`: every number a slot of its own."""

    evenings: Sequence[Evening]
    tokens: Sequence[str]
    stride: int
    """Numbers each run may use; run r starts at r * stride."""

    def request(self, *, run: int, number: int) -> BookingRequest:
        """Request `number` of run `run`."""
        k = run * self.stride + number
        return booking_request(
            self.evenings[k % len(self.evenings)],
            slot=k // len(self.evenings),
            token=self.tokens[k % len(self.tokens)],
            key=f"bench-{k}",
            title=f"Bench {k}",
        )


@dataclass(frozen=True, slots=True)
class SameSlot:
    """The requests of `book.lua same`: all of run r for slot 0 of evening r."""

    evenings: Sequence[Evening]
    tokens: Sequence[str]

    def request(self, *, run: int, number: int) -> BookingRequest:
        """Request `number` of run `run`."""
        return booking_request(
            self.evenings[run],
            slot=0,
            token=self.tokens[number % len(self.tokens)],
            key=f"bench-same-{run}-{number}",
            title=f"Bench same {run}",
        )


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the check after one run found."""

    passed: bool
    text: str


class RunCheck(Protocol):
    """A scenario whose runs are numbered and checked in the database afterwards."""

    def next_load(self) -> Load:
        """The load of the next run."""

    def verify(self, server: Server, run: WrkRun, *, connections: int) -> Verdict:
        """Check the run just made."""


SHED = 503
"""The documented load-shedding answer (with `Retry-After`): the only 5xx allowed."""
REPLAYED = -201
"""Counted for a retry answered 201 from the stored answer (`Idempotent-Replayed: true`)."""


def server_errors(run: WrkRun) -> Counter[int]:
    """Answers with a 5xx status, by status."""
    return Counter({code: n for code, n in run.statuses.items() if code >= 500})


def unexpected_server_errors(run: WrkRun) -> int:
    """5xx answers other than load shedding."""
    return sum(n for code, n in server_errors(run).items() if code != SHED)


def write_evenings(path: Path, chosen: Sequence[Evening]) -> str:
    """Write an evenings file for `book.lua`; return its path."""
    path.write_text("".join(evening.line() + "\n" for evening in chosen))
    return str(path)


@dataclass(slots=True)
class DistinctCheck:
    """Book distinct free slots; afterwards, new rows must equal the 201 answers."""

    slots: DistinctSlots
    database_url: str
    tokens_file: str
    evenings_file: str
    runs: int = 0

    def next_load(self) -> Load:
        """The next run's load: `book.lua distinct` with the run's number."""
        self.runs += 1
        args = (self.evenings_file, "distinct", str(self.slots.stride), str(self.runs))
        return Load("book.lua", (BOOKINGS_PATH, self.tokens_file, *args))

    def verify(self, server: Server, run: WrkRun, *, connections: int) -> Verdict:
        """Match the run's rows to the 201s wrk got; retry those booked while wrk stopped."""
        sent = run.sent or 0
        # Whatever the server still runs must finish first: then every row is committed, and
        # a retry meets the stored answer, not its own key in flight (409).
        wait_idle(server.pid)
        first = self.runs * self.slots.stride
        booked = asyncio.run(booked_numbers(self.database_url, first=first, sent=sent))
        lost = run.created - booked.numbers
        late = sorted(booked.numbers - run.created)
        retried = retry(server, [self.slots.request(run=self.runs, number=n) for n in late])
        without_row = sent - len(booked.numbers)
        # Numbers past the run's share belong to the next run; shed at once (503), they
        # booked nothing and are harmless, but a row there would meet the next run's request.
        overran_rows = sum(1 for number in booked.numbers if number >= self.slots.stride)
        passed = (
            not lost
            and booked.rows == len(booked.numbers) == booked.keys == len(run.created) + len(late)
            and retried[REPLAYED] == len(late)
            and overran_rows == 0
            and unexpected_server_errors(run) == 0
        )
        text = (
            f"POST /bookings distinct slots, run {self.runs} ({connections} conns): "
            f"{booked.rows} new rows for {len(run.created)} 201s to wrk and {len(late)} booked "
            f"while wrk stopped (retried with their key: {statuses(retried)}); {len(lost)} "
            f"lost (a 201 without its row), {booked.rows - len(booked.numbers)} duplicated, "
            f"{booked.keys} keys stored; {without_row} requests without a row (shed, or never "
            f"sent, as the one wrk builds to check the script); "
            f"5xx during the run: {statuses(server_errors(run))}"
        )
        if sent > self.slots.stride:
            text += (
                f"; {sent} requests overran the run's {self.slots.stride} slots, "
                f"{overran_rows} of them with a row"
            )
        return Verdict(passed=passed, text=text)


@dataclass(slots=True)
class SameSlotCheck:
    """All requests of a run aim at one slot: one row and one 201, the rest 409."""

    slots: SameSlot
    database_url: str
    tokens_file: str
    evenings_file: str
    admits: int
    """Requests the server runs at once: a 503 with no more connections is no load shedding."""
    runs: int = 0

    def next_load(self) -> Load:
        """The next run's load: `book.lua same` with the run's number."""
        self.runs += 1
        args = (self.evenings_file, "same", "0", str(self.runs))
        return Load("book.lua", (BOOKINGS_PATH, self.tokens_file, *args))

    def verify(self, server: Server, run: WrkRun, *, connections: int) -> Verdict:
        """Count the rows holding the run's slot and the answers by status."""
        wait_idle(server.pid)
        evening = self.slots.evenings[self.runs]
        rows, keys = asyncio.run(count_holding(self.database_url, evening, run=self.runs))
        return same_slot_verdict(
            run=run,
            number=self.runs,
            connections=connections,
            admits=self.admits,
            held=(rows, keys),
        )


def same_slot_verdict(
    *, run: WrkRun, number: int, connections: int, admits: int, held: tuple[int, int]
) -> Verdict:
    """One slot's run passes with one row and key, at most one 201, the rest 409.

    `held` is the rows holding the slot and the keys stored for it. A 503 counts as load
    shedding only with more connections than the server admits at once.
    """
    rows, keys = held
    created, refused = run.statuses.get(201, 0), run.statuses.get(409, 0)
    unavailable = run.statuses.get(SHED, 0)
    shed = unavailable if connections > admits else 0
    others = sum(run.statuses.values()) - created - refused - shed
    passed = rows == keys == 1 and created <= 1 and others == 0 and run.socket_errors == 0
    winner = "to wrk" if created else "while wrk stopped (its key is stored)"
    text = (
        f"POST /bookings one slot, run {number} ({connections} conns): {rows} row holds "
        f"the slot, {keys} key stored, the 201 answered {winner}; {created} x 201, "
        f"{refused} x 409, {shed} x 503 shed, {others} other "
        f"({unavailable - shed} x 503 within the {admits} requests admitted at once), "
        f"{run.socket_errors} socket errors or timeouts"
    )
    return Verdict(passed=passed, text=text)


def statuses(counts: Counter[int]) -> str:
    """`201: 3, 409: 1, replayed: 2`, or `none`."""
    named = {REPLAYED: "replayed"}
    parts = [f"{named.get(code, code)}: {n}" for code, n in sorted(counts.items()) if n]
    return ", ".join(parts) or "none"


def retry(server: Server, requests: Sequence[BookingRequest]) -> Counter[int]:
    """Send each request once more, in turn; count the answers by status (`REPLAYED` apart)."""
    answers: Counter[int] = Counter()
    with httpx.Client(timeout=30.0) as client:
        for request in requests:
            response = client.send(request.build(server.base_url))
            replayed = response.headers.get(REPLAYED_HEADER) == "true"
            answers[REPLAYED if replayed else response.status_code] += 1
    return answers


@dataclass(frozen=True, slots=True)
class Booked:
    """What the database holds of one run of distinct slots."""

    rows: int
    """Rows whose title carries one of the run's numbers."""
    numbers: frozenset[int]
    """The run's numbers (relative to its first) that have a row."""
    keys: int
    """The run's idempotency keys stored (one per 201 answered)."""


async def booked_numbers(url: str, *, first: int, sent: int) -> Booked:
    """Rows, booked numbers and stored keys of numbers `first … first+sent-1`."""
    numbers = range(first, first + sent)
    connection = await devdb.connect(url)
    try:
        titles = await connection.fetch(
            "SELECT title FROM bookings WHERE title = ANY($1::text[])",
            [f"Bench {k}" for k in numbers],
        )
        keys = await connection.fetchval(
            "SELECT count(*) FROM idempotency_keys WHERE key = ANY($1::text[])",
            [f"bench-{k}" for k in numbers],
        )
    finally:
        await connection.close()
    booked = frozenset(int(row["title"].removeprefix("Bench ")) - first for row in titles)
    return Booked(rows=len(titles), numbers=booked, keys=int(keys))


COUNT_HOLDING = """
SELECT
    (SELECT count(*) FROM bookings
        WHERE room_id = $1 AND starts_at = $2 AND status = ANY($3::text[])),
    (SELECT count(*) FROM idempotency_keys WHERE key LIKE $4)
"""


async def count_holding(url: str, evening: Evening, *, run: int) -> tuple[int, int]:
    """Rows holding the room at slot 0 of the evening, and the run's keys stored (201s)."""
    connection = await devdb.connect(url)
    try:
        row = await connection.fetchrow(
            COUNT_HOLDING,
            evening.room_id,
            evening.starts_at,
            list(HOLDING_STATUSES),
            f"bench-same-{run}-%",
        )
    finally:
        await connection.close()
    if row is None:
        raise LookupError("the counting SELECT returned no row")
    return int(row[0]), int(row[1])


@dataclass(frozen=True, slots=True)
class BookingsData:
    """What the booking scenarios need from the seeded database."""

    rooms: list[tuple[uuid.UUID, str]]
    """Every room's id and time zone, by name."""
    own_bookings: dict[uuid.UUID, list[uuid.UUID]] = field(default_factory=dict)
    """Some bookings of each member the scenarios act as, by owner."""


async def read_bookings_data(
    connection: asyncpg.Connection, *, owners: Sequence[uuid.UUID], per_owner: int
) -> BookingsData:
    """The rooms, and up to `per_owner` bookings of each owner."""
    rooms = await connection.fetch("SELECT id, time_zone FROM rooms ORDER BY name")
    rows = await connection.fetch(
        "SELECT owner_id, id FROM ("
        "  SELECT owner_id, id, row_number() OVER (PARTITION BY owner_id ORDER BY id) AS n"
        "  FROM bookings WHERE owner_id = ANY($1::uuid[])"
        ") AS owned WHERE n <= $2 ORDER BY owner_id, id",
        list(owners),
        per_owner,
    )
    own: dict[uuid.UUID, list[uuid.UUID]] = {}
    for row in rows:
        own.setdefault(row["owner_id"], []).append(row["id"])
    return BookingsData(rooms=[(r["id"], r["time_zone"]) for r in rooms], own_bookings=own)
