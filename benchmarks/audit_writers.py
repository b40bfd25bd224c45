"""What the audit trail costs writers: changes/s with and without an audit entry per change.

`make bench-audit` (or `python -m benchmarks.audit_writers`) creates a scratch database on the
test server (TEST_DATABASE_URL, else the embedded PostgreSQL), migrates it, and runs
`--writers` concurrent writers, each committing `--changes` transactions:

* plain:   INSERT one row into a table without audit;
* audited: the same INSERT plus `AuditService.record` in the same transaction;
* slow:    the audited change followed by `--slow-ms` (20) of other work before COMMIT,
           e.g. a password hash, over `--slow-changes` (50) commits per writer. Writers
           overlap their slow work only if nothing after `record()` holds the chain lock.

Afterwards the chain is verified (nothing lost, order intact). `--explain-rows N` also
loads N synthetic audit rows and prints the plan and run time of every list filter.
"""

import argparse
import asyncio
import functools
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.audit.actions import AuditAction, AuditEntity
from app.audit.chain import ChainKeys
from app.audit.repository import AuditRepository
from app.audit.schemas import AuditFilter
from app.audit.service import AuditService
from app.core.config import AuditSettings, DatabaseSettings
from app.core.db import create_engine, create_session_factory
from app.core.pagination import CursorCodec, PageRequest
from tests.audit.synthetic import insert_synthetic
from tests.database import create_test_database, drop_test_database, migrate

KEYS = ChainKeys.from_settings(AuditSettings())
Change = Callable[[AsyncSession, int, int], Awaitable[None]]

CREATE_TABLE = text(
    "CREATE TABLE bench_changes (id uuid PRIMARY KEY, writer int NOT NULL, n int NOT NULL, "
    "payload jsonb NOT NULL, changed_at timestamptz NOT NULL DEFAULT now())"
)
INSERT_CHANGE = text(
    "INSERT INTO bench_changes (id, writer, n, payload) "
    "VALUES (:id, :writer, :n, CAST(:payload AS jsonb))"
)


def out(line: str = "") -> None:
    """Print a line of the report."""
    sys.stdout.write(line + "\n")


async def plain_change(session: AsyncSession, writer: int, n: int) -> None:
    """Insert one row: the change itself."""
    await session.execute(
        INSERT_CHANGE, {"id": uuid.uuid4(), "writer": writer, "n": n, "payload": '{"state": 1}'}
    )


async def audited_change(session: AsyncSession, writer: int, n: int) -> None:
    """Insert one row and record it, in the same transaction."""
    row_id = uuid.uuid4()
    await session.execute(
        INSERT_CHANGE, {"id": row_id, "writer": writer, "n": n, "payload": '{"state": 1}'}
    )
    await AuditService(session, keys=KEYS).record(
        action=AuditAction.BOOKING_CREATED,
        entity_type=AuditEntity.BOOKING,
        entity_id=row_id,
        after={"writer": writer, "n": n, "state": 1},
    )


async def slow_audited_change(session: AsyncSession, writer: int, n: int, *, slow_s: float) -> None:
    """The audited change, then slow work in the same transaction before it commits."""
    await audited_change(session, writer, n)
    await asyncio.sleep(slow_s)


async def run_writers(
    factory: async_sessionmaker[AsyncSession], change: Change, *, writers: int, changes: int
) -> float:
    """Run the writers concurrently, one commit per change; return changes per second."""

    async def writer(number: int) -> None:
        for n in range(changes):
            async with factory() as session, session.begin():
                await change(session, number, n)

    started = time.perf_counter()
    await asyncio.gather(*(writer(number) for number in range(writers)))
    return writers * changes / (time.perf_counter() - started)


async def bench_writers(engine: AsyncEngine, args: argparse.Namespace) -> None:
    """Alternate plain and audited rounds; report the median rate of each and verify the chain."""
    factory = create_session_factory(engine)
    async with engine.begin() as connection:
        await connection.execute(CREATE_TABLE)
    await run_writers(factory, plain_change, writers=args.writers, changes=20)  # warm the pool
    slow = functools.partial(slow_audited_change, slow_s=args.slow_ms / 1000)
    scenarios: tuple[tuple[str, Change, int], ...] = (
        ("plain", plain_change, args.changes),
        ("audited", audited_change, args.changes),
        ("slow", slow, args.slow_changes),
    )
    rates: dict[str, list[float]] = {name: [] for name, _, _ in scenarios}
    for _ in range(args.rounds):
        for name, change, changes in scenarios:
            rate = await run_writers(factory, change, writers=args.writers, changes=changes)
            rates[name].append(rate)
    async with factory() as session:
        started = time.perf_counter()
        report = await AuditService(session, keys=KEYS).verify()
        verify_s = time.perf_counter() - started
        rows = await session.scalar(text("SELECT count(*) FROM bench_changes"))
    plain, audited, slowed = (statistics.median(rates[k]) for k in ("plain", "audited", "slow"))
    total = args.writers * args.changes
    out(f"{args.writers} writers x {args.changes} commits = {total} changes per round, ")
    out(f"{args.rounds} rounds each, median:")
    out(f"  without audit: {plain:8.0f} changes/s   (rounds: {_rates(rates['plain'])})")
    out(f"  with audit:    {audited:8.0f} changes/s   (rounds: {_rates(rates['audited'])})")
    out(f"  audit cost:    {100 * (1 - audited / plain):.0f}% fewer changes/s")
    ideal = args.writers * 1000 / args.slow_ms
    out(
        f"  with audit and {args.slow_ms} ms of work after record(), "
        f"{args.writers} x {args.slow_changes} commits:"
    )
    out(f"                 {slowed:8.0f} changes/s   (rounds: {_rates(rates['slow'])})")
    out(f"                 (at most {ideal:.0f}/s if the writers' slow work overlaps, ")
    out(f"                 {ideal / args.writers:.0f}/s if it runs one writer at a time)")
    expected = (total + args.writers * args.slow_changes) * args.rounds
    out(f"chain: {report.checked} entries, ok={report.ok} (expected {expected}); rows={rows}")
    out(f"verification: {report.checked / verify_s:.0f} entries/s")
    if not report.ok or report.checked != expected:
        raise SystemExit("audit chain lost or broke entries")


def _rates(values: list[float]) -> str:
    return ", ".join(f"{value:.0f}" for value in values)


def explain_cases(start: datetime, rows: int) -> dict[str, AuditFilter]:
    """One list query per filter, against the synthetic data's shape."""
    middle = start + timedelta(seconds=30 * rows // 2)
    return {
        "no filter": AuditFilter(),
        "actor_id": AuditFilter(actor_id=uuid.UUID("00000000-0000-4000-8000-000000000007")),
        "action exact": AuditFilter(action="user.role_changed"),
        "action prefix booking.": AuditFilter(action="booking."),
        "action prefix room.": AuditFilter(action="room."),
        "entity_type room": AuditFilter(entity_type=AuditEntity.ROOM),
        "entity_id": AuditFilter(entity_id="e123"),
        "since": AuditFilter(since=middle),
        "until": AuditFilter(until=middle),
        "since+until (1 h)": AuditFilter(since=middle, until=middle + timedelta(hours=1)),
    }


async def bench_explain(engine: AsyncEngine, rows: int) -> None:
    """Load synthetic rows, analyse, and print plan and time of each filtered list query."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    captured: list[tuple[str, Any]] = []

    def capture(
        _c: Connection, _cur: object, statement: str, parameters: object, *_: object
    ) -> None:
        captured.append((statement, parameters))

    async with engine.begin() as connection:
        started = time.perf_counter()
        await insert_synthetic(connection, rows=rows, start=start, step_us=30_000_000)
        await connection.execute(text("ANALYZE audit_events"))
        out(f"\nloaded and analysed {rows} synthetic rows in {time.perf_counter() - started:.1f} s")
    page = PageRequest(limit=20, after=None, codec=CursorCodec(b"bench"))
    event.listen(engine.sync_engine, "before_cursor_execute", capture)
    async with AsyncSession(engine) as session:
        for name, filters in explain_cases(start, rows).items():
            await AuditRepository(session).list_page(filters=filters, page=page)
            statement, parameters = captured[-1]
            connection = await session.connection()
            plan = await connection.exec_driver_sql(
                f"EXPLAIN (ANALYZE, COSTS OFF) {statement}", parameters
            )
            lines = [row[0] for row in plan]
            scans = [
                line.strip() for line in lines if any(k in line for k in ("Scan", "Cond", "Filter"))
            ]
            total = next(line for line in lines if line.startswith("Execution Time"))
            out(f"\n{name}: {total}")
            for line in scans:
                out(f"    {line}")
    event.remove(engine.sync_engine, "before_cursor_execute", capture)


async def main(args: argparse.Namespace) -> None:
    """Provision a scratch database, run the benchmarks, drop it."""
    server, url = await create_test_database()
    try:
        await migrate(url)
        settings = DatabaseSettings(pool_size=args.writers + 2, statement_timeout_ms=0)
        engine = create_engine(settings, url=url)
        try:
            await bench_writers(engine, args)
            if args.explain_rows:
                await bench_explain(engine, args.explain_rows)
        finally:
            await engine.dispose()
    finally:
        await drop_test_database(server, url)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Read the benchmark's options."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.audit_writers")
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--changes", type=int, default=250, help="commits per writer and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--slow-ms", type=int, default=20, help="work after record() in ms")
    parser.add_argument("--slow-changes", type=int, default=50, help="slow commits per writer")
    parser.add_argument("--explain-rows", type=int, default=0, help="e.g. 1000000")
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
