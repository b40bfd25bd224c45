"""`make bench-explain`: the plans of the booking list and availability queries at bench scale.

Seeds `roombook_bench` exactly as `make bench-http` does (10k users, 500 rooms, 200k
bookings over a year), then runs the repositories' own methods, each filter of the
booking list (first page and page 1,000) and every query over blocked ranges, captures
the statement and parameters each one sends, and runs `EXPLAIN (ANALYZE, BUFFERS)` on
exactly that. Every plan must use the index meant for it, with no sequential scan and
(for the list) no sort. The plans are printed and written to
`bench/results/explain-<UTC time>.md`; the exit status is 1 when a plan misses.
"""

import argparse
import asyncio
import re
import secrets
import sys
import uuid
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from functools import partial
from typing import Any

from pydantic import SecretStr
from sqlalchemy import event, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.chain import ChainKeys
from app.bookings.models import OVERLAP_CONSTRAINT, BookingStatus
from app.bookings.repository import AvailabilityRepository, BookingRepository
from app.bookings.schemas import BookingFilter
from app.core.config import AuditSettings, DatabaseSettings
from app.core.db import create_engine
from app.core.pagination import CursorCodec, PageRequest
from benchmarks import seed
from benchmarks.http_bench import DEEP_BOOKINGS_PAGE, RESULTS_DIR, bench_server_url, out

PAGE = 20
GIST_SCAN = re.compile(
    f"(Index Scan|Index Only Scan|Bitmap Index Scan) (using|on) {OVERLAP_CONSTRAINT}\\b"
)
"""A scan of the gist index behind the exclusion constraint."""
FREE_ROOM_FILTERS: tuple[tuple[int | None, tuple[str, ...]], ...] = (
    (None, ()),
    (20, ()),
    (None, ("projector", "whiteboard")),
    (10, ("video",)),
)
"""`(min_capacity, amenities)`: none, a capacity, common tags, a capacity and a rarer tag."""

SMALL_SORT = 1_000
"""Most rows a list plan may sort instead of reading them in index order."""
BITMAP_ROWS = re.compile(r"Bitmap Index Scan on \S+ .*?actual time=\S+ rows=(?P<rows>[\d.]+)")
"""A bitmap index scan's actual row count (EXPLAIN ANALYZE)."""

Query = Callable[[], Coroutine[Any, Any, Any]]
Check = Callable[[str], list[str]]
"""Given a plan, what is wrong with it (nothing when it is as meant)."""


@dataclass(frozen=True, slots=True)
class Case:
    """One repository call, and what its plan must show."""

    name: str
    query: Query
    check: Check


@dataclass(frozen=True, slots=True)
class Explained:
    """A case's statement, parameters, plan, and what is wrong with the plan."""

    name: str
    statement: str
    parameters: Any
    plan: str
    problems: list[str]


def list_check(index: str) -> Check:
    """`index` scanned, no sequential scan, and rows in index order unless they are few.

    A narrow filter (a member's twenty bookings) may be read through a bitmap of the index
    and sorted: a sort of at most `SMALL_SORT` rows. A wide one must come in index order.
    """

    def check(plan: str) -> list[str]:
        problems = [] if index_scanned(plan, index) else [f"no index scan of {index}"]
        problems += ["a Seq Scan"] if "Seq Scan" in plan else []
        bitmap = BITMAP_ROWS.search(plan)
        sorted_rows = float(bitmap.group("rows")) if bitmap else float("inf")
        if "Sort" in plan and sorted_rows > SMALL_SORT:
            problems.append(f"a Sort of {sorted_rows:,.0f} rows")
        return problems

    return check


def index_scanned(plan: str, index: str) -> bool:
    """Whether the plan reads `index` (a plain, index-only or bitmap scan)."""
    return re.search(f"(Index Scan|Index Only Scan) using {index}\\b", plan) is not None or (
        f"Bitmap Index Scan on {index}" in plan
    )


def one_room_check(plan: str) -> list[str]:
    """A lookup in the exclusion constraint's gist index, no sequential scan."""
    problems = [] if GIST_SCAN.search(plan) else [f"no scan of {OVERLAP_CONSTRAINT}"]
    return problems + (["a Seq Scan"] if "Seq Scan" in plan else [])


def rooms_check(plan: str) -> list[str]:
    """Rooms walked in an index's order, each probing the gist index (an anti join)."""
    problems = one_room_check(plan)
    if "Nested Loop Anti Join" not in plan:
        problems.append("no nested loop anti join (every booking hashed?)")
    if "Index Scan using ix_rooms_" not in plan:
        problems.append("rooms not walked by an index")
    return problems


class Capture:
    """The statements and parameters an engine sends, in order."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Any]] = []

    def __call__(
        self, _conn: Connection, _cursor: Any, statement: str, parameters: Any, *_: Any
    ) -> None:
        """`before_cursor_execute` listener."""
        self.sent.append((statement, parameters))


async def explain(session: AsyncSession, capture: Capture, case: Case) -> Explained:
    """Run the case's query, then EXPLAIN (ANALYZE, BUFFERS) the last statement it sent."""
    capture.sent.clear()
    await case.query()
    statement, parameters = capture.sent[-1]
    connection = await session.connection()
    result = await connection.exec_driver_sql(f"EXPLAIN (ANALYZE, BUFFERS) {statement}", parameters)
    plan = "\n".join(row[0] for row in result)
    return Explained(case.name, statement, parameters, plan, case.check(plan))


async def deep_key(session: AsyncSession) -> tuple[datetime, uuid.UUID]:
    """The key page 1,000 of everyone's bookings resumes after (what its cursor holds)."""
    row = (
        await session.execute(
            text(
                "SELECT starts_at, id FROM bookings WHERE kind = 'booking' "
                "ORDER BY starts_at, id OFFSET :offset LIMIT 1"
            ),
            {"offset": PAGE * (DEEP_BOOKINGS_PAGE - 1) - 1},
        )
    ).one()
    return row.starts_at, row.id


def list_cases(
    bookings: BookingRepository, *, deep: tuple[datetime, uuid.UUID], now: datetime
) -> list[Case]:
    """Every filter of the booking list, on page 1 and on page 1,000."""
    codec = CursorCodec(b"explain")
    member, room = seed.user_id(1), seed.room_id(1)
    filters = [
        ("everyone", BookingFilter(), "ix_bookings_starts_at_id"),
        ("a member's own", BookingFilter(owner_id=member), "ix_bookings_owner_id_starts_at_id"),
        (
            "a member's upcoming",
            BookingFilter(owner_id=member, starts_from=now),
            "ix_bookings_owner_id_starts_at_id",
        ),
        ("one room", BookingFilter(room_id=room), "ix_bookings_room_id_starts_at_id"),
        (
            "one room's upcoming week",
            BookingFilter(room_id=room, starts_from=now, starts_before=now + timedelta(days=7)),
            "ix_bookings_room_id_starts_at_id",
        ),
        (
            "a window",
            BookingFilter(starts_from=now, starts_before=now + timedelta(days=7)),
            "ix_bookings_starts_at_id",
        ),
        (
            "a status",
            BookingFilter(status=BookingStatus.CANCELLED),
            "ix_bookings_starts_at_id",
        ),
    ]
    pages = [("page 1", None), (f"page {DEEP_BOOKINGS_PAGE}", deep)]
    return [
        Case(
            f"GET /bookings, {name}, {label}",
            partial(
                bookings.list_page,
                filters=f,
                page=PageRequest(limit=PAGE, after=after, codec=codec),
            ),
            list_check(index),
        )
        for name, f, index in filters
        for label, after in pages
    ]


def availability_cases(
    availability: AvailabilityRepository, bookings: BookingRepository, *, now: datetime
) -> list[Case]:
    """A room's week, free rooms for an hour, and the booking service's blocked-range queries."""
    room = seed.room_id(1)
    monday = (now + timedelta(days=7 - now.weekday())).replace(hour=0, minute=0)
    hour = datetime.combine(monday.date(), time(10), UTC)
    week = monday + timedelta(days=7)
    cases = [
        Case(
            "a room's availability for a week",
            lambda: availability.blocking_rows(room_id=room, window_start=monday, window_end=week),
            one_room_check,
        ),
        Case(
            "the booking service: kinds in the way of an hour",
            lambda: bookings.kinds_in_the_way(
                room_id=room,
                starts_at=hour,
                blocked_until=hour + timedelta(hours=1),
                other_than=None,
            ),
            one_room_check,
        ),
        Case(
            "the booking service: alternative times (two weeks)",
            lambda: bookings.blocked_ranges(
                room_id=room,
                window_start=monday,
                window_end=monday + timedelta(days=14),
                other_than=uuid.uuid4(),
            ),
            one_room_check,
        ),
        Case(
            "the booking service: alternative rooms",
            lambda: bookings.free_rooms(
                starts_at=hour,
                ends_at=hour + timedelta(hours=1),
                attendees=4,
                default_buffer_minutes=0,
                other_room=room,
                other_than=None,
                limit=9,
            ),
            rooms_check,
        ),
    ]
    for capacity, amenities in FREE_ROOM_FILTERS:
        cases.append(
            Case(
                f"free rooms for an hour, min_capacity={capacity}, amenities={list(amenities)}",
                partial(
                    availability.unblocked_rooms,
                    starts_at=hour,
                    ends_at=hour + timedelta(hours=1),
                    default_buffer_minutes=0,
                    min_capacity=capacity,
                    amenities=amenities,
                    after=None,
                    limit=PAGE + 1,
                ),
                rooms_check,
            )
        )
    return cases


async def explain_all(url: str, plan: seed.SeedPlan) -> list[Explained]:
    """The plans of every case on the seeded database."""
    engine = create_engine(DatabaseSettings(statement_timeout_ms=0), url=url)
    capture = Capture()
    event.listen(engine.sync_engine, "before_cursor_execute", capture)
    try:
        async with AsyncSession(engine) as session:
            now = datetime.combine(plan.today, time(0), UTC)
            bookings = BookingRepository(session)
            cases = list_cases(bookings, deep=await deep_key(session), now=now)
            cases += availability_cases(AvailabilityRepository(session), bookings, now=now)
            return [await explain(session, capture, case) for case in cases]
    finally:
        await engine.dispose()


def markdown(results: Sequence[Explained], plan: seed.SeedPlan) -> str:
    """The report: a summary line per case, then each statement and plan."""
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    lines = [
        f"# EXPLAIN (ANALYZE, BUFFERS), {stamp}: {plan.users:,} users, {plan.rooms} rooms, "
        f"{plan.bookings_per_room * plan.rooms:,} bookings",
        "",
        *(
            f"- {'ok' if not r.problems else 'MISSED'}: {r.name} {r.problems or ''}"
            for r in results
        ),
    ]
    for result in results:
        lines += [
            "",
            f"## {result.name}",
            "",
            "```sql",
            result.statement.strip(),
            "```",
            "",
            f"parameters: `{result.parameters}`",
            "",
            "```",
            result.plan,
            "```",
        ]
    return "\n".join(lines) + "\n"


def run(options: argparse.Namespace) -> int:
    """Seed, explain, write the report; 1 when a plan misses its index."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    audit = AuditSettings(chain_key=SecretStr(secrets.token_urlsafe(48)), chain_key_id="bench")
    plan = seed.SeedPlan(
        # Nobody logs in here: a random text does as the shared password hash.
        password_hash=secrets.token_hex(16),
        chain_keys=ChainKeys.from_settings(audit),
        users=options.users,
        audit_events=options.audit_events,
        rooms=options.rooms,
        bookings=options.bookings,
    )
    out(f"seeding {seed.DATABASE_NAME} …")
    url = asyncio.run(seed.recreate(bench_server_url()))
    out(f"seeded in {asyncio.run(seed.run_steps(url, plan))}")
    results = asyncio.run(explain_all(url, plan))
    report = markdown(results, plan)
    path = RESULTS_DIR / f"explain-{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}.md"
    path.write_text(report)
    out(report)
    out(f"written to {path}")
    return 1 if any(r.problems for r in results) else 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The data set's size, as `make bench-http` takes it."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.explain")
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--audit-events", type=int, default=1_000_000)
    parser.add_argument("--rooms", type=int, default=500)
    parser.add_argument("--bookings", type=int, default=200_000)
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(run(parse_args()))
