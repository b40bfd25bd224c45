"""The benchmark harness's arithmetic: wrk's report, /proc counters, the table, the seed chain."""

import itertools
import json
from datetime import UTC, datetime

import pytest

from app.audit.chain import ChainEntry, entry_hash
from app.audit.models import GENESIS_HASH
from benchmarks.measure import (
    Row,
    WrkRun,
    cpu_us_per_request,
    parse_stat_ticks,
    parse_vm_kib,
    parse_wrk_report,
    table_line,
)
from benchmarks.seed import AUDIT_COLUMNS, audit_entries
from tests.audit.conftest import KEYS

WRK_STDOUT = """Running 10s test @ http://127.0.0.1:41234
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    98.12ms   20.07ms 301.55ms   80.12%
    Req/Sec   651.23     80.11     0.90k    70.00%
  6523 requests in 10.02s, 1.91MB read
  Non-2xx or 3xx responses: 3
Requests/sec:    651.01
Transfer/sec:    195.29KB
WRK_REPORT {"requests":6523,"duration_us":10020000,"bytes":2002345,"p50_us":95120,\
"p99_us":187004,"max_us":301550,"errors":{"connect":0,"read":2,"write":0,"status":3,\
"timeout":1},"statuses":{"200":6517,"503":2,"404":1,"304":3}}
"""

# A real /proc/<pid>/stat line whose command name holds a space and a parenthesis.
PROC_STAT = (
    "4242 (python (srv) x) S 1 4242 4242 0 -1 4194560 9120 0 0 0 1234 567 0 0 20 0 5 0 "
    "88001 512000000 30000 18446744073709551615 1 1 0 0 0 0 0 16781312 16386 0 0 0 17 0 0 0"
)


def test_wrk_report_line_gives_rate_latency_and_errors() -> None:
    run = parse_wrk_report(WRK_STDOUT)

    assert run.requests == 6523
    assert run.rps == pytest.approx(6520 / 10.02)
    assert run.p50_ms == pytest.approx(95.12)
    assert run.p99_ms == pytest.approx(187.004)
    assert (run.non_2xx, run.socket_errors, run.errors) == (3, 3, 6)
    assert run.statuses == {200: 6517, 304: 3, 404: 1, 503: 2}
    assert run.error_breakdown() == "404: 1, 503: 2, socket: 3"


def test_wrk_output_without_report_line_is_an_error() -> None:
    with pytest.raises(ValueError, match="WRK_REPORT"):
        parse_wrk_report(WRK_STDOUT.split("WRK_REPORT", maxsplit=1)[0])


def test_proc_stat_ticks_are_utime_plus_stime_despite_odd_command_names() -> None:
    assert parse_stat_ticks(PROC_STAT) == 1234 + 567


def test_vm_rss_and_its_peak_are_read_in_kib() -> None:
    status = (
        "Name:\tpython\nVmPeak:\t  900000 kB\nVmHWM:\t  200000 kB\nVmRSS:\t  131072 kB\n"
        "Threads:\t5\n"
    )

    assert parse_vm_kib(status) == 131072
    assert parse_vm_kib(status, "VmHWM") == 200000
    with pytest.raises(ValueError, match="VmRSS"):
        parse_vm_kib("Name:\tzombie\n")


def test_cpu_per_request_converts_ticks_to_microseconds() -> None:
    assert cpu_us_per_request(ticks=250, clock_ticks_per_s=100, requests=1000) == 2500.0
    assert cpu_us_per_request(ticks=250, clock_ticks_per_s=100, requests=0) == 0.0


def test_table_line_and_json_carry_the_same_figures() -> None:
    run = WrkRun(
        requests=5000,
        duration_s=10.0,
        p50_ms=12.345,
        p99_ms=40.0,
        non_2xx=1,
        socket_errors=2,
        statuses={200: 4999, 503: 1},
    )
    row = Row("GET /users/me", 64, run, 1712.4, 0.0512)
    quiet = WrkRun(5000, 10.0, 1.0, 2.0, non_2xx=0, socket_errors=0, statuses={200: 5000})

    assert table_line(row) == (
        "| GET /users/me | 64 | 500 | 12.3 | 40.0 | 3 (503: 1, socket: 2) | 1,712 | 0.051 |"
    )
    assert table_line(Row("ceiling", 8, quiet, 90.0, None)).endswith("| 0 | 90 | - |")
    assert row.as_dict()["rps"] == 499.9
    assert row.as_dict()["ratio_to_ceiling"] == 0.051
    assert row.as_dict()["statuses"] == {"200": 4999, "503": 1}
    assert Row("ceiling", 8, quiet, 90.0, None).as_dict()["ratio_to_ceiling"] is None


def test_seeded_audit_rows_form_a_valid_hash_chain() -> None:
    end = datetime(2026, 1, 1, tzinfo=UTC)
    rows = list(audit_entries(count=5, users=10, end=end, keys=KEYS))
    columns = [dict(zip(AUDIT_COLUMNS, row, strict=True)) for row in rows]

    assert [c["seq"] for c in columns] == [1, 2, 3, 4, 5]
    assert columns[0]["prev_hash"] == GENESIS_HASH
    for previous, current in itertools.pairwise(columns):
        assert current["prev_hash"] == previous["hash"]
        assert current["occurred_at"] > previous["occurred_at"]
    for column in columns:
        content = {k: v for k, v in column.items() if k != "hash"}
        content["changes"] = json.loads(content["changes"])
        assert entry_hash(ChainEntry(**content), keys=KEYS) == column["hash"]
