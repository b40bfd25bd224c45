"""Pure arithmetic of the HTTP benchmark: wrk's report, /proc counters, and the result table."""

import json
from collections.abc import Collection
from dataclasses import dataclass, replace

REPORT_MARKER = "WRK_REPORT "
"""Prefix of the one JSON line `benchmarks/wrk/common.lua` prints when a run is done."""


@dataclass(frozen=True, slots=True)
class WrkRun:
    """What one wrk run measured."""

    requests: int
    """Answers received, whatever their status."""
    duration_s: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int
    statuses: dict[int, int]
    """Answers by HTTP status."""
    sent: int | None = None
    """Requests a numbering script (`book.lua`) built, numbered `0 … sent-1`; else None."""
    created: frozenset[int] = frozenset()
    """The numbers of those answered 201 (numbering scripts only)."""
    accepted: frozenset[int] = frozenset()
    """Error statuses the scenario expects (see `accepting`): neither errors nor lost rate."""

    @property
    def rps(self) -> float:
        """Successful (2xx/3xx) answers per second: a fast 503 is no throughput."""
        ok = self.requests - self.non_2xx
        return ok / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def errors(self) -> int:
        """Non-2xx answers plus connect, read, write and timeout errors."""
        return self.non_2xx + self.socket_errors

    def accepting(self, statuses: Collection[int]) -> "WrkRun":
        """The same run with answers of `statuses` (e.g. an expected 409) counted as served."""
        accepted = frozenset(code for code in statuses if code >= 400) - self.accepted
        served = sum(n for code, n in self.statuses.items() if code in accepted)
        return replace(self, non_2xx=self.non_2xx - served, accepted=self.accepted | accepted)

    def error_breakdown(self) -> str:
        """The errors by kind, e.g. `503: 12, socket: 3` (empty without errors)."""
        kinds = [
            f"{code}: {n}"
            for code, n in sorted(self.statuses.items())
            if code >= 400 and code not in self.accepted
        ]
        if self.socket_errors:
            kinds.append(f"socket: {self.socket_errors}")
        return ", ".join(kinds)


def parse_wrk_report(output: str) -> WrkRun:
    """Read the `WRK_REPORT {...}` line of a wrk run's stdout; raise if it is missing."""
    for line in output.splitlines():
        if line.startswith(REPORT_MARKER):
            data = json.loads(line[len(REPORT_MARKER) :])
            errors = data["errors"]
            return WrkRun(
                requests=int(data["requests"]),
                duration_s=data["duration_us"] / 1e6,
                p50_ms=data["p50_us"] / 1e3,
                p99_ms=data["p99_us"] / 1e3,
                non_2xx=int(errors["status"]),
                socket_errors=sum(int(errors[k]) for k in ("connect", "read", "write", "timeout")),
                statuses={int(code): int(n) for code, n in data["statuses"].items()},
                sent=data.get("sent"),
                created=frozenset(data.get("created", ())),
            )
    raise ValueError("wrk printed no WRK_REPORT line (was the script's done() replaced?)")


def parse_stat_ticks(stat: str) -> int:
    """utime + stime, in clock ticks, from the text of `/proc/<pid>/stat`."""
    # The command name (field 2) may hold spaces and parentheses: count fields after its end.
    fields = stat[stat.rindex(")") + 2 :].split()
    # Fields 14 and 15 of the whole line (utime, stime) are 12 and 13 after the name.
    return int(fields[11]) + int(fields[12])


def parse_vm_kib(status: str, field: str = "VmRSS") -> int:
    """A memory figure in KiB from the text of `/proc/<pid>/status`: `VmRSS` (resident
    now) or `VmHWM` (the most it was resident)."""
    for line in status.splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise ValueError(f"no {field} line (has the process exited?)")


def cpu_us_per_request(*, ticks: int, clock_ticks_per_s: int, requests: int) -> float:
    """Server CPU time per completed request, in microseconds."""
    if requests <= 0:
        return 0.0
    return ticks * 1e6 / clock_ticks_per_s / requests


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the result table."""

    scenario: str
    connections: int
    run: WrkRun
    cpu_us: float
    ratio: float | None

    def as_dict(self) -> dict[str, object]:
        """The row as JSON-ready numbers."""
        return {
            "scenario": self.scenario,
            "connections": self.connections,
            "requests": self.run.requests,
            "rps": round(self.run.rps, 1),
            "p50_ms": round(self.run.p50_ms, 2),
            "p99_ms": round(self.run.p99_ms, 2),
            "errors": self.run.errors,
            "statuses": {str(code): n for code, n in sorted(self.run.statuses.items())},
            "socket_errors": self.run.socket_errors,
            "cpu_us_per_request": round(self.cpu_us),
            "ratio_to_ceiling": None if self.ratio is None else round(self.ratio, 3),
        }


TABLE_HEADER = (
    "| scenario | conns | req/s | p50 ms | p99 ms | errors | server CPU µs/req "
    "| ratio to ceiling |\n"
    "|---|---:|---:|---:|---:|---:|---:|---:|"
)


def table_line(row: Row) -> str:
    """Format a row of the Markdown table."""
    ratio = "-" if row.ratio is None else f"{row.ratio:.3f}"
    breakdown = row.run.error_breakdown()
    errors = f"{row.run.errors} ({breakdown})" if breakdown else "0"
    return (
        f"| {row.scenario} | {row.connections} | {row.run.rps:,.0f} | {row.run.p50_ms:.1f} "
        f"| {row.run.p99_ms:.1f} | {errors} | {row.cpu_us:,.0f} | {ratio} |"
    )
