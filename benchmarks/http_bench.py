"""HTTP benchmark: Roombook against this machine's own ceiling, driven from outside by wrk.

`make bench-http` (or `python -m benchmarks.http_bench`):

1. seeds `roombook_bench` with bulk SQL (`benchmarks/seed.py`) on the server named by
   `BENCH_DATABASE_URL`, else `DATABASE__URL`, else the embedded PostgreSQL;
2. measures raw argon2id verifications per second on the server's core;
3. serves the ceiling app (`benchmarks/ceiling.py`), the floor app (`benchmarks/floor.py`),
   then Roombook (`python -m app.cli serve`), each with `ENVIRONMENT=production` and one
   worker, pinned to one core;
4. drives each with wrk (one thread, pinned to the other core) and the Lua scripts of
   `benchmarks/wrk/`: per scenario a warm-up, then a run at each connection count; then a
   login storm; the server's CPU time and RSS come from /proc;
5. prints a Markdown table and writes it, with a JSON copy, under `bench/results/`.
"""

import argparse
import asyncio
import json
import os
import platform
import secrets
import socket
import subprocess
import sys
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from unittest.mock import patch

import httpx
from argon2 import PasswordHasher, Type
from pydantic import SecretStr
from sqlalchemy.engine import make_url

from app import devdb
from app.audit.chain import ChainKeys
from app.audit.commands import describe, verify_chain
from app.core.config import (
    AuditSettings,
    DatabaseSettings,
    SecuritySettings,
    Settings,
    get_settings,
)
from app.core.security import TokenCodec
from benchmarks import seed
from benchmarks.bookings_bench import (
    SLOTS_PER_EVENING,
    BookingsData,
    DistinctCheck,
    DistinctSlots,
    RunCheck,
    SameSlot,
    SameSlotCheck,
    Verdict,
    evenings,
    free_rooms_path,
    next_monday,
    read_bookings_data,
    week_paths,
    weekdays_ahead,
    write_evenings,
)
from benchmarks.measure import TABLE_HEADER, Row, WrkRun, table_line
from benchmarks.runner import (
    ROOT,
    Load,
    Pinning,
    Server,
    Wrk,
    ensure_wrk,
    rss_mb,
    serving,
    wait_idle,
)

RESULTS_DIR = ROOT / "bench" / "results"
API = "/api/v1"
TOKEN_TTL_S = 12 * 3600
"""Minted and issued access tokens outlive any run."""
# The per-IP limits stay on, since their cost is part of the request path, with budgets
# that the load generator's one client IP cannot spend.
UNLIMITED = "1000000000/minute"
UNREACHABLE_QUOTA = 1_000_000
"""Members' booking quotas stay on, lock and counts included, but 100 members booking
thousands of slots must not reach them."""
DEEP_PAGE = 400
"""The deep page of `GET /users`, reached once by following the cursor chain."""
DEEP_BOOKINGS_PAGE = 1000
"""The deep page of `GET /bookings`, reached the same way."""
OWN_BOOKINGS = 10
"""Bookings per member that `GET /bookings/{id}` asks for, each as its owner."""
CEILING_CONNECTIONS = 64
"""Ratios are taken to the ceiling's rate at this many connections."""
CEILING = "ceiling"
"""The bare Starlette and asyncpg app (`benchmarks/ceiling.py`): the machine's limit."""
FLOOR = "floor"
"""The least Roombook's stack does for one read (`benchmarks/floor.py`): the stack's limit."""
STORM_CONNECTIONS = 8
LOGIN = "POST /auth/login"
ME = "GET /users/me"
BOOKING_GET = "GET /bookings/{id}"
BOOK_DISTINCT = "POST /bookings distinct slots"
BOOK_SAME = "POST /bookings one slot"
ROOM_WEEK = "GET /rooms/{id}/availability (a week)"
FREE_ROOMS = "GET /rooms/available (an hour)"


def out(line: str = "") -> None:
    """Print a line of progress or of the report."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def bench_server_url() -> str:
    """Admin URL of the server the benchmark database lives on."""
    explicit = os.environ.get("BENCH_DATABASE_URL")
    if explicit:
        return explicit
    configured = get_settings().database.url
    if configured is not None:
        return configured.get_secret_value()
    return devdb.embedded_server_url()


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def bench_security() -> SecuritySettings:
    """A fresh signing secret, long-lived tokens, and the configured argon2 parameters."""
    configured = get_settings().security
    return SecuritySettings(
        jwt_secret=SecretStr(secrets.token_urlsafe(48)),
        jwt_key_id="bench",
        access_token_ttl_s=TOKEN_TTL_S,
        argon2_time_cost=configured.argon2_time_cost,
        argon2_memory_kib=configured.argon2_memory_kib,
        argon2_parallelism=configured.argon2_parallelism,
        hash_concurrency=configured.hash_concurrency,
    )


def server_environment(
    *,
    database_url: str,
    security: SecuritySettings,
    audit: AuditSettings,
    overrides: dict[str, str],
) -> dict[str, str]:
    """The environment of `make serve` in production, with what the harness supplies.

    `overrides` (`--set NAME=VALUE`) come last, for experiments with other settings.
    """
    env = dict(os.environ)
    env.update(
        {
            "ENVIRONMENT": "production",
            "DATABASE__URL": database_url,
            "SECURITY__JWT_SECRET": security.jwt_secret.get_secret_value(),
            "SECURITY__JWT_KEY_ID": security.jwt_key_id,
            "SECURITY__JWT_ISSUER": security.jwt_issuer,
            "SECURITY__JWT_AUDIENCE": security.jwt_audience,
            "SECURITY__ACCESS_TOKEN_TTL_S": str(security.access_token_ttl_s),
            "SECURITY__ARGON2_TIME_COST": str(security.argon2_time_cost),
            "SECURITY__ARGON2_MEMORY_KIB": str(security.argon2_memory_kib),
            "SECURITY__ARGON2_PARALLELISM": str(security.argon2_parallelism),
            "SECURITY__HASH_CONCURRENCY": str(security.hash_concurrency),
            "AUDIT__CHAIN_KEY": audit.chain_key.get_secret_value(),
            "AUDIT__CHAIN_KEY_ID": audit.chain_key_id,
            "HTTP__ALLOWED_HOSTS": '["127.0.0.1"]',
            "SERVER__HOST": "127.0.0.1",
            "SERVER__PORT": str(free_port()),
            "SERVER__WORKERS": "1",
            "RATE_LIMIT__AUTH_PER_IP": UNLIMITED,
            "RATE_LIMIT__CREDENTIALS_PER_IP": UNLIMITED,
            "BOOKINGS__MEMBER_MAX_ACTIVE_FUTURE": str(UNREACHABLE_QUOTA),
            "BOOKINGS__MEMBER_MAX_WEEK_HOURS": str(UNREACHABLE_QUOTA),
            **overrides,
        }
    )
    return env


def concurrency_limit(env: dict[str, str]) -> int:
    """Requests the API served with `env` runs at once before it sheds load."""
    with patch.dict(os.environ, env, clear=True):
        return Settings(_env_file=None).concurrency_limit


# --- scenarios -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Scenario:
    """One kind of request: its wrk load and a probe request that must succeed first."""

    name: str
    load: Load
    probe: httpx.Request
    check: RunCheck | None = None
    """Numbers the runs (each gets `check.next_load()`) and checks the database after each."""
    accepted: frozenset[int] = frozenset()
    """Error statuses the scenario expects: counted as served, not as errors."""


@dataclass(slots=True)
class Accounts:
    """Whom the scenarios act as: minted tokens and the shared login password."""

    admin_token: str
    member_tokens: list[str]
    login_emails: list[str]
    password: str


def bearer(token: str) -> dict[str, str]:
    """The Authorization header of a token."""
    return {"Authorization": f"Bearer {token}"}


def write_lines(name: str, lines: Sequence[str]) -> str:
    """Write a file for the Lua scripts under `bench/results/`; return its path."""
    path = RESULTS_DIR / name
    path.write_text("\n".join(lines) + "\n")
    return str(path)


@dataclass(frozen=True, slots=True)
class Cursors:
    """The cursors of the deep pages, found by following the chains once."""

    users: str
    bookings: str


def scenarios(
    accounts: Accounts, *, base_url: str, cursors: Cursors, bookings: "BookingScenarios"
) -> list[Scenario]:
    """Every scenario of the run, in order; later domains append theirs here."""
    admin = write_lines("admin.tokens", [accounts.admin_token])
    members = write_lines("member.tokens", accounts.member_tokens)
    credentials = write_lines(
        "login.credentials",
        [f"{urllib.parse.quote(e, safe='')} {accounts.password}" for e in accounts.login_emails],
    )

    def get(name: str, path: str, tokens: str, token: str) -> Scenario:
        """A GET scenario sending each token of `tokens` in turn; `token` for the probe."""
        probe = httpx.Request("GET", base_url + path, headers=bearer(token))
        return Scenario(name=name, load=Load("get.lua", (path, tokens)), probe=probe)

    member, admin_token = accounts.member_tokens[0], accounts.admin_token
    login_form = {"username": accounts.login_emails[0], "password": accounts.password}
    return [
        get(ME, f"{API}/users/me", members, member),
        get("GET /users page 1", f"{API}/users", admin, admin_token),
        get(
            f"GET /users page {DEEP_PAGE}",
            f"{API}/users?cursor={cursors.users}",
            admin,
            admin_token,
        ),
        get("GET /auth/sessions", f"{API}/auth/sessions", members, member),
        get("GET /audit/events page 1", f"{API}/audit/events", admin, admin_token),
        Scenario(
            name=LOGIN,
            load=Load("login.lua", (f"{API}/auth/login", credentials)),
            probe=httpx.Request("POST", f"{base_url}{API}/auth/login", data=login_form),
        ),
        *bookings.scenarios(
            accounts, base_url=base_url, cursor=cursors.bookings, admin=admin, members=members
        ),
    ]


@dataclass(frozen=True, slots=True)
class BookingScenarios:
    """The bookings domain's scenarios, from the seeded rooms and bookings."""

    data: BookingsData
    database_url: str
    today: date
    runs_per_scenario: int
    """Warm-up plus one run per connection count: the distinct slots are shared out."""
    admits: int
    """Requests the served API runs at once; only beyond them may it shed load (503)."""

    def scenarios(
        self, accounts: Accounts, *, base_url: str, cursor: str, admin: str, members: str
    ) -> list[Scenario]:
        """Read one booking, list page 1 and a deep page, a room's week and the free rooms
        for an hour; book distinct slots, race for one.

        `admin` and `members` are the token files of `scenarios`.
        """
        admin_token = accounts.admin_token
        pairs = [
            f"{token} {API}/bookings/{booking}"
            for number, token in enumerate(accounts.member_tokens, start=1)
            for booking in self.data.own_bookings.get(seed.user_id(number), [])
        ]
        owned = write_lines("booking.pairs", pairs)
        token, path = pairs[0].split(" ")
        days = weekdays_ahead(self.today)
        # The first day's evenings are raced for, one per run; the other days are booked.
        contended = evenings(self.data.rooms, days=days[:1])
        free = evenings(self.data.rooms, days=days[1:])
        distinct = DistinctSlots(
            evenings=free,
            tokens=accounts.member_tokens,
            # Run 0 is the probe's.
            stride=len(free) * SLOTS_PER_EVENING // (self.runs_per_scenario + 1),
        )
        same = SameSlot(evenings=contended, tokens=accounts.member_tokens)
        distinct_check = DistinctCheck(
            slots=distinct,
            database_url=self.database_url,
            tokens_file=members,
            evenings_file=write_evenings(RESULTS_DIR / "free.evenings", free),
        )
        same_check = SameSlotCheck(
            slots=same,
            database_url=self.database_url,
            tokens_file=members,
            evenings_file=write_evenings(RESULTS_DIR / "contended.evenings", contended),
            admits=self.admits,
        )

        monday = next_monday(self.today)
        weeks = week_paths(self.data.rooms, accounts.member_tokens, monday=monday)
        week_token, week_path = weeks[0].split(" ")
        free_rooms = free_rooms_path(monday)
        member = accounts.member_tokens[0]

        def listing(name: str, query: str) -> Scenario:
            """`GET /bookings` as the admin (everyone's)."""
            url = f"{API}/bookings{query}"
            probe = httpx.Request("GET", base_url + url, headers=bearer(admin_token))
            return Scenario(name=name, load=Load("get.lua", (url, admin)), probe=probe)

        return [
            Scenario(
                name=BOOKING_GET,
                load=Load("pairs.lua", (owned,)),
                probe=httpx.Request("GET", base_url + path, headers=bearer(token)),
            ),
            listing("GET /bookings page 1", ""),
            listing(f"GET /bookings page {DEEP_BOOKINGS_PAGE}", f"?cursor={cursor}"),
            Scenario(
                name=ROOM_WEEK,
                load=Load("pairs.lua", (write_lines("room.weeks", weeks),)),
                probe=httpx.Request("GET", base_url + week_path, headers=bearer(week_token)),
            ),
            Scenario(
                name=FREE_ROOMS,
                load=Load("get.lua", (free_rooms, members)),
                probe=httpx.Request("GET", base_url + free_rooms, headers=bearer(member)),
            ),
            Scenario(
                name=BOOK_DISTINCT,
                load=Load("book.lua", ()),
                probe=distinct.request(run=0, number=0).build(base_url),
                check=distinct_check,
            ),
            Scenario(
                name=BOOK_SAME,
                load=Load("book.lua", ()),
                probe=same.request(run=0, number=0).build(base_url),
                check=same_check,
                accepted=frozenset({409}),
            ),
        ]


def probe(client: httpx.Client, scenario: Scenario) -> None:
    """Send one request of the scenario; stop the run unless it succeeds."""
    response = client.send(scenario.probe)
    if not response.is_success:
        raise SystemExit(f"{scenario.name} answered {response.status_code}: {response.text[:500]}")


def follow_cursor(client: httpx.Client, *, url: str, token: str, page: int, seed_more: str) -> str:
    """The cursor of page `page` of the list at `url`, reached by following the chain."""
    cursor: str | None = None
    for _ in range(page - 1):
        params = {"cursor": cursor} if cursor else {}
        response = client.get(url, params=params, headers=bearer(token))
        response.raise_for_status()
        cursor = response.json()["next_cursor"]
        if cursor is None:
            raise SystemExit(f"{url} has fewer than {page} pages: seed more {seed_more}")
    if cursor is None:
        raise SystemExit("the deep page must be page 2 or later")
    return cursor


def deep_cursors(client: httpx.Client, *, base_url: str, token: str) -> Cursors:
    """Follow the admin's `GET /users` and `GET /bookings` chains to their deep pages."""
    return Cursors(
        users=follow_cursor(
            client, url=f"{base_url}{API}/users", token=token, page=DEEP_PAGE, seed_more="users"
        ),
        bookings=follow_cursor(
            client,
            url=f"{base_url}{API}/bookings",
            token=token,
            page=DEEP_BOOKINGS_PAGE,
            seed_more="bookings",
        ),
    )


def mint_accounts(plan: seed.SeedPlan, security: SecuritySettings, password: str) -> Accounts:
    """Sign access tokens for the seeded sessions with the run's secret."""
    codec = TokenCodec(security)

    def token(number: int) -> str:
        """An access token for the first seeded session of user `number`."""
        claims = {"role": seed.user_role(number), "sid": str(seed.session_id(number, 0))}
        return codec.encode_access(subject=str(seed.user_id(number)), claims=claims)

    return Accounts(
        admin_token=token(seed.ADMIN),
        member_tokens=[token(n) for n in range(1, plan.token_users + 1)],
        login_emails=[seed.user_email(n) for n in range(plan.token_users + 1, plan.users)],
        password=password,
    )


# --- the run ---------------------------------------------------------------------------


@dataclass(slots=True)
class Report:
    """Everything one run measured."""

    meta: dict[str, Any]
    rows: list[Row] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(self, row: Row) -> None:
        """Record a row and print it at once."""
        self.rows.append(row)
        out(table_line(row))

    def check(self, verdict: Verdict) -> None:
        """Record the check after a run as a note, and print it at once."""
        line = f"{'passed' if verdict.passed else 'FAILED'}: {verdict.text}"
        self.notes.append(line)
        self.extra.setdefault("checks", []).append({"passed": verdict.passed, "text": verdict.text})
        out(line)

    def ceiling_rps(self) -> float:
        """The ceiling's req/s at `CEILING_CONNECTIONS`."""
        for row in self.rows:
            if row.scenario == CEILING and row.connections == CEILING_CONNECTIONS:
                return row.run.rps
        raise LookupError(f"the ceiling was not measured at {CEILING_CONNECTIONS} connections")

    def markdown(self) -> str:
        """The table and the notes under it."""
        lines = [TABLE_HEADER, *(table_line(row) for row in self.rows), ""]
        return "\n".join([*lines, *(f"- {note}" for note in self.notes)]) + "\n"

    def as_json(self) -> dict[str, Any]:
        """The run as JSON-ready data."""
        return {"meta": self.meta, "rows": [r.as_dict() for r in self.rows], **self.extra}


@dataclass(frozen=True, slots=True)
class Bench:
    """What every measuring step shares."""

    wrk: Wrk
    pin: Pinning
    duration: int
    warmup: int
    connections: tuple[int, ...]

    def sweep(self, server: Server, report: Report, *, scenario: Scenario) -> list[WrkRun]:
        """Warm up, then one run per connection count; rows get ratios when a ceiling exists.

        A scenario with a check gets a fresh load for every run, warm-up included, and
        each run is checked; the verdicts go under the table.
        """
        name, check = scenario.name, scenario.check

        def load() -> Load:
            return scenario.load if check is None else check.next_load()

        def verify(run: WrkRun, connections: int) -> None:
            if check is not None:
                report.check(check.verify(server, run, connections=connections))

        warm = self.wrk.run(
            server, load=load(), connections=CEILING_CONNECTIONS, seconds=self.warmup
        )
        verify(warm, CEILING_CONNECTIONS)
        runs = []
        for connections in self.connections:
            measured, cpu = self.wrk.measure(
                server, load=load(), connections=connections, seconds=self.duration
            )
            verify(measured, connections)
            run = measured.accepting(scenario.accepted)
            ceiling = None if name == CEILING else report.ceiling_rps()
            report.add(
                Row(name, connections, run, cpu, None if ceiling is None else run.rps / ceiling)
            )
            runs.append(run)
        return runs


def bench_reference(bench: Bench, report: Report, *, name: str, env: dict[str, str]) -> None:
    """Serve `benchmarks.<name>` (a reference app answering `GET /`) and sweep it."""
    with serving(
        [f"benchmarks.{name}"],
        env=env,
        ready_path="/",
        pin=bench.pin,
        log_path=RESULTS_DIR / f"{name}.log",
    ) as server:
        plain = Scenario(
            name=name,
            load=Load("get.lua", ("/",)),
            probe=httpx.Request("GET", server.base_url + "/"),
        )
        bench.sweep(server, report, scenario=plain)


def bench_ceiling(bench: Bench, report: Report, *, env: dict[str, str]) -> None:
    """Measure the ceiling app at every connection count; then the rows get their ratios."""
    bench_reference(bench, report, name=CEILING, env=env)
    ceiling = report.ceiling_rps()
    report.rows[:] = [
        Row(r.scenario, r.connections, r.run, r.cpu_us, r.run.rps / ceiling) for r in report.rows
    ]


def bench_floor(bench: Bench, report: Report, *, env: dict[str, str]) -> None:
    """Measure the floor app where ratios are taken, and say what it bounds."""
    bench_reference(replace(bench, connections=(CEILING_CONNECTIONS,)), report, name=FLOOR, env=env)
    [floor] = [r for r in report.rows if r.scenario == FLOOR]
    share = floor.run.rps / report.ceiling_rps()
    report.notes.append(
        f"floor (FastAPI, the request session, one SELECT, a response model, nothing else): "
        f"{share:.3f} of the ceiling; no route of Roombook can pass it (benchmarks/floor.py)"
    )


def bench_api(
    bench: Bench,
    report: Report,
    *,
    env: dict[str, str],
    accounts: Accounts,
    bookings: BookingScenarios,
    only: Sequence[str] = (),
) -> None:
    """Serve Roombook, run the scenarios and the login storm, and note the worker's RSS.

    `only` keeps the scenarios whose name contains one of its texts (all when empty); the
    storm runs when both `/users/me` and login were kept.
    """
    log_path = RESULTS_DIR / "api.log"
    with (
        serving(
            ["app.cli", "serve"],
            env=env,
            ready_path="/health/ready",
            pin=bench.pin,
            log_path=log_path,
        ) as server,
        httpx.Client(timeout=30.0) as client,
    ):
        rss = {"after start": rss_mb(server.pid)}
        cursors = deep_cursors(client, base_url=server.base_url, token=accounts.admin_token)
        logins: dict[int, float] = {}
        rss_by_scenario: dict[str, float] = {}
        by_name = {}
        chosen = scenarios(accounts, base_url=server.base_url, cursors=cursors, bookings=bookings)
        for scenario in chosen:
            if only and not any(text in scenario.name for text in only):
                continue
            by_name[scenario.name] = scenario
            wait_idle(server.pid)
            if scenario.name == LOGIN:
                rss["before the first login"] = rss_mb(server.pid)
            probe(client, scenario)
            runs = bench.sweep(server, report, scenario=scenario)
            # Read once the server is idle: what the scenario left behind, not its work in
            # progress (the hashing threads hand their memory back when their queue empties).
            wait_idle(server.pid)
            rss_by_scenario[scenario.name] = round(rss_mb(server.pid), 1)
            if scenario.name == LOGIN:
                logins = {c: run.rps for c, run in zip(bench.connections, runs, strict=True)}
        if ME in by_name and LOGIN in by_name:
            report.extra["storm"] = login_storm(
                bench, server, me=by_name[ME].load, login=by_name[LOGIN].load
            )
        wait_idle(server.pid)
        rss["after the bench"] = rss_mb(server.pid)
        rss["peak"] = rss_mb(server.pid, "VmHWM")
    report.extra["rss_mb"] = {k: round(v, 1) for k, v in rss.items()}
    report.extra["rss_mb_after_each_scenario"] = rss_by_scenario
    report.extra["login_rps"] = {str(c): round(r, 1) for c, r in logins.items()}


def login_storm(bench: Bench, server: Server, *, me: Load, login: Load) -> dict[str, float]:
    """`/users/me` alone, then while as many connections log in; compare its p99."""
    wait_idle(server.pid)
    quiet = bench.wrk.run(server, load=me, connections=STORM_CONNECTIONS, seconds=bench.duration)
    wait_idle(server.pid)
    logging_in = bench.wrk.start(
        server, load=login, connections=STORM_CONNECTIONS, seconds=bench.duration
    )
    reading = bench.wrk.start(
        server, load=me, connections=STORM_CONNECTIONS, seconds=bench.duration
    )
    during, logins = bench.wrk.finish(reading), bench.wrk.finish(logging_in)
    return {
        "quiet_rps": round(quiet.rps, 1),
        "quiet_p99_ms": round(quiet.p99_ms, 2),
        "storm_rps": round(during.rps, 1),
        "storm_p99_ms": round(during.p99_ms, 2),
        "p99_factor": round(during.p99_ms / quiet.p99_ms, 2) if quiet.p99_ms else 0.0,
        "login_rps": round(logins.rps, 1),
        "errors": quiet.errors + during.errors + logins.errors,
    }


def argon2_verify_rate(pin: Pinning, security: SecuritySettings, *, seconds: int) -> float:
    """Raw verifications per second in one thread on the server's core."""
    command = [
        *pin.server,
        sys.executable,
        "-m",
        "benchmarks.argon2_rate",
        f"--time-cost={security.argon2_time_cost}",
        f"--memory-kib={security.argon2_memory_kib}",
        f"--parallelism={security.argon2_parallelism}",
        f"--seconds={seconds}",
    ]
    done = subprocess.run(command, cwd=ROOT, check=True, capture_output=True, text=True)  # noqa: S603
    rate: float = json.loads(done.stdout)["verify_per_s"]
    return rate


@dataclass(frozen=True, slots=True)
class Prepared:
    """The seeded benchmark database: its URL, step times, chain state and booking data."""

    url: str
    seconds: dict[str, float]
    chain: str
    bookings: BookingsData


async def prepare_database(server_url: str, plan: seed.SeedPlan, audit: AuditSettings) -> Prepared:
    """Recreate and seed the benchmark database, then read what the booking scenarios need."""
    url = await seed.recreate(server_url)
    seconds = await seed.run_steps(url, plan)
    owners = [seed.user_id(n) for n in range(1, plan.token_users + 1)]
    connection = await devdb.connect(url)
    try:
        bookings = await read_bookings_data(connection, owners=owners, per_owner=OWN_BOOKINGS)
    finally:
        await connection.close()
    return Prepared(url, seconds, await chain_state(url, audit), bookings)


async def chain_state(url: str, audit: AuditSettings) -> str:
    """What `make audit-verify` with the run's chain key would say about the database."""
    settings = get_settings().model_copy(
        update={"database": DatabaseSettings(statement_timeout_ms=0), "audit": audit}
    )
    return describe(await verify_chain(settings, url=url))


def summarise(report: Report, *, security: SecuritySettings, argon2_rate: float) -> None:
    """The notes under the table: login against argon2, the storm, memory."""
    logins = report.extra["login_rps"]
    shares = ", ".join(f"{c} conns {float(r) / argon2_rate:.2f}" for c, r in logins.items())
    report.notes.append(
        f"raw argon2id verify (m={security.argon2_memory_kib} KiB, t={security.argon2_time_cost}, "
        f"p={security.argon2_parallelism}), one thread on the server core: {argon2_rate:.1f}/s; "
        f"login req/s as a share of it: {shares or 'login not run'}"
    )
    storm = report.extra.get("storm")
    if storm is not None:
        report.notes.append(
            f"login storm ({STORM_CONNECTIONS} conns logging in while {STORM_CONNECTIONS} read "
            f"/users/me): /users/me p99 {storm['quiet_p99_ms']:.1f} ms quiet, "
            f"{storm['storm_p99_ms']:.1f} ms during the storm ({storm['p99_factor']:.1f}x), "
            f"{storm['quiet_rps']:,.0f} → {storm['storm_rps']:,.0f} req/s; "
            f"{storm['login_rps']:.1f} logins/s; {storm['errors']} errors"
        )
    rss = report.extra["rss_mb"]
    report.notes.append("worker RSS: " + ", ".join(f"{k} {v:.0f} MB" for k, v in rss.items()))
    steps = report.extra["rss_mb_after_each_scenario"]
    report.notes.append(
        "worker RSS after each scenario: " + ", ".join(f"{k} {v:.0f}" for k, v in steps.items())
    )


def describe_server(url: str) -> str:
    """Where PostgreSQL runs, without credentials."""
    parsed = make_url(url)
    return f"{parsed.host or parsed.query.get('host', 'socket')}:{parsed.port or 5432}"


def git_commit() -> str:
    """The commit measured, or `unknown` outside a checkout."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607 - git from PATH
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return done.stdout.strip()


def write_results(report: Report) -> Path:
    """Write the Markdown and JSON of the run; return the Markdown's path."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    markdown = RESULTS_DIR / f"http-{stamp}.md"
    meta = report.meta
    heading = (
        f"Roombook HTTP benchmark, {meta['started']}, commit {meta['commit']}: "
        f"{meta['duration_s']} s per run after a {meta['warmup_s']} s warm-up, "
        f"{meta['pinning']}, load average {meta['load_average']} at the start"
    )
    overridden = " ".join(f"{k}={v}" for k, v in meta["settings_overridden"].items())
    heading += f"; settings overridden: {overridden}" if overridden else ""
    heading += f"; only scenarios matching {', '.join(meta['only'])}" if meta["only"] else ""
    heading += "\n\n"
    markdown.write_text(heading + report.markdown())
    markdown.with_suffix(".json").write_text(json.dumps(report.as_json(), indent=2) + "\n")
    return markdown


def run(options: argparse.Namespace) -> None:
    """Seed, measure the ceiling and Roombook, report."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    pin = Pinning.detect()
    bench = Bench(
        wrk=Wrk(binary=ensure_wrk(), pin=pin, timeout_s=options.timeout),
        pin=pin,
        duration=options.duration,
        warmup=options.warmup,
        connections=tuple(options.connections),
    )
    security = bench_security()
    # A fresh chain key: production refuses the development one.
    audit = AuditSettings(chain_key=SecretStr(secrets.token_urlsafe(48)), chain_key_id="bench")
    password = secrets.token_hex(16)
    hasher = PasswordHasher(
        time_cost=security.argon2_time_cost,
        memory_cost=security.argon2_memory_kib,
        parallelism=security.argon2_parallelism,
        type=Type.ID,
    )
    plan = seed.SeedPlan(
        password_hash=hasher.hash(password),
        chain_keys=ChainKeys.from_settings(audit),
        users=options.users,
        audit_events=options.audit_events,
        rooms=options.rooms,
        bookings=options.bookings,
    )
    server_url = bench_server_url()
    out(f"seeding {seed.DATABASE_NAME} on {describe_server(server_url)} …")
    prepared = asyncio.run(prepare_database(server_url, plan, audit))
    url, seed_seconds, chain = prepared.url, prepared.seconds, prepared.chain
    out(f"seeded in {sum(seed_seconds.values()):.1f} s {seed_seconds}; audit chain {chain}")
    argon2_rate = argon2_verify_rate(pin, security, seconds=max(options.duration, 3))
    out(f"raw argon2id verify: {argon2_rate:.1f}/s on one core")
    report = Report(
        meta={
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
            "commit": git_commit(),
            "duration_s": options.duration,
            "warmup_s": options.warmup,
            "timeout_s": options.timeout,
            "connections": list(options.connections),
            "pinning": pin.describe(),
            "cpus": os.cpu_count(),
            "load_average": ", ".join(f"{v:.2f}" for v in os.getloadavg()),
            "settings_overridden": options.set,
            "only": options.only,
            "python": platform.python_version(),
            "postgres": describe_server(server_url),
            "seed": {
                "users": plan.users,
                "audit_events": plan.audit_events,
                "rooms": plan.rooms,
                "bookings": plan.bookings_per_room * plan.rooms,
                "seconds": seed_seconds,
            },
            "chain_after_seed": chain,
        }
    )
    out(TABLE_HEADER)
    # Each server gets its own free port, picked when it starts.
    bench_ceiling(
        bench,
        report,
        env=server_environment(
            database_url=url, security=security, audit=audit, overrides=options.set
        ),
    )
    api_env = server_environment(
        database_url=url, security=security, audit=audit, overrides=options.set
    )
    bench_floor(bench, report, env=api_env)
    bench_api(
        bench,
        report,
        env=api_env,
        accounts=mint_accounts(plan, security, password),
        bookings=BookingScenarios(
            data=prepared.bookings,
            database_url=url,
            today=plan.today,
            runs_per_scenario=1 + len(bench.connections),
            admits=concurrency_limit(api_env),
        ),
        only=options.only,
    )
    report.extra["argon2_verify_per_s"] = round(argon2_rate, 1)
    report.meta["chain_after_bench"] = asyncio.run(chain_state(url, audit))
    summarise(report, security=security, argon2_rate=argon2_rate)
    report.notes.append(f"audit chain after the bench: {report.meta['chain_after_bench']}")
    path = write_results(report)
    out()
    out(path.read_text())
    out(f"written to {path.relative_to(ROOT)} and {path.with_suffix('.json').relative_to(ROOT)}")


def setting(text: str) -> tuple[str, str]:
    """Split a `--set NAME=VALUE` option."""
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError("expected NAME=VALUE")
    return name, value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Read the options; `BENCH_DURATION` sets the default seconds per run."""
    duration = int(os.environ.get("BENCH_DURATION") or 10)
    parser = argparse.ArgumentParser(prog="python -m benchmarks.http_bench")
    parser.add_argument("--duration", type=int, default=duration, help="seconds per run")
    parser.add_argument("--warmup", type=int, help="seconds (default: the duration, at most 3)")
    parser.add_argument("--connections", type=int, nargs="+", default=[8, 64, 256])
    parser.add_argument("--timeout", type=int, default=10, help="wrk's request timeout, s")
    parser.add_argument(
        "--only",
        nargs="+",
        default=[],
        metavar="TEXT",
        help="run only the scenarios whose name contains one of these, e.g. /users/me login",
    )
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--audit-events", type=int, default=1_000_000)
    parser.add_argument("--rooms", type=int, default=500)
    parser.add_argument("--bookings", type=int, default=200_000, help="spread over the rooms")
    parser.add_argument(
        "--set",
        type=setting,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting for both servers, e.g. SERVER__MAX_CONCURRENT_REQUESTS=300",
    )
    options = parser.parse_args(argv)
    options.set = dict(options.set)
    if options.warmup is None:
        options.warmup = min(options.duration, 3)
    if CEILING_CONNECTIONS not in options.connections:
        parser.error(f"--connections must include {CEILING_CONNECTIONS}: ratios are taken there")
    return options


if __name__ == "__main__":
    run(parse_args())
