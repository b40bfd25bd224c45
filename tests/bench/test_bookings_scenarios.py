"""The booking scenarios' plumbing: the slots `book.lua` and its Python twin build, and the
numbers wrk reports back.

`book.lua` runs inside wrk only; the harness rebuilds its requests in Python to retry the
ones wrk left unanswered. The two must agree byte for byte on what decides a request (its
key, title, slot and body), so these tests pin the Lua's formats to the Python's.
"""

import re
import uuid
from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from benchmarks.bookings_bench import (
    EVENING,
    REPLAYED,
    SLOT,
    SLOTS_PER_EVENING,
    STEP,
    DistinctSlots,
    SameSlot,
    Verdict,
    evenings,
    free_rooms_path,
    iso,
    next_monday,
    same_slot_verdict,
    statuses,
    week_paths,
    weekdays_ahead,
)
from benchmarks.http_bench import Report
from benchmarks.measure import Row, WrkRun, parse_wrk_report, table_line
from benchmarks.runner import WRK_DIR

BERLIN, KOLKATA = uuid.uuid4(), uuid.uuid4()
ROOMS = [(BERLIN, "Europe/Berlin"), (KOLKATA, "Asia/Kolkata")]
BOOK_LUA = (WRK_DIR / "book.lua").read_text()
COMMON_LUA = (WRK_DIR / "common.lua").read_text()


def test_evenings_are_half_past_six_local_on_both_sides_of_a_dst_change() -> None:
    winter, summer = date(2027, 3, 26), date(2027, 3, 29)

    found = evenings(ROOMS, days=[winter, summer])

    assert [(e.room_id, e.starts_at) for e in found] == [
        (BERLIN, datetime(2027, 3, 26, 17, 30, tzinfo=UTC)),
        (KOLKATA, datetime(2027, 3, 26, 13, 0, tzinfo=UTC)),
        (BERLIN, datetime(2027, 3, 29, 16, 30, tzinfo=UTC)),
        (KOLKATA, datetime(2027, 3, 29, 13, 0, tzinfo=UTC)),
    ]
    assert found[0].line() == f"{BERLIN} {int(found[0].starts_at.timestamp())}"


def test_weekdays_ahead_skip_weekends_and_stay_inside_the_horizon() -> None:
    today = date(2026, 11, 27)  # a Friday

    days = weekdays_ahead(today)

    assert days[0] == date(2026, 11, 30)  # two days on is a Sunday: the Monday comes first
    assert all(day.weekday() < 5 for day in days)
    assert days[-1] <= today + timedelta(days=170)
    assert len(days) == len(set(days)) > 110


def test_distinct_slots_never_repeat_across_runs_and_stay_inside_the_evening() -> None:
    free = evenings(ROOMS, days=weekdays_ahead(date(2026, 11, 27))[:5])
    runs, stride = 4, len(free) * SLOTS_PER_EVENING // 4
    slots = DistinctSlots(evenings=free, tokens=["a", "b", "c"], stride=stride)

    requests = [slots.request(run=r, number=n) for r in range(runs) for n in range(stride)]
    taken = Counter((r.body["room_id"], r.body["starts_at"]) for r in requests)
    local_starts = {
        datetime.fromisoformat(str(r.body["starts_at"]))
        .astimezone(
            ZoneInfo("Europe/Berlin" if r.body["room_id"] == str(BERLIN) else "Asia/Kolkata")
        )
        .time()
        for r in requests
    }

    assert max(taken.values()) == 1
    assert local_starts == {time(18, 30), time(19, 0), time(19, 30)}
    assert len({r.key for r in requests}) == len(requests)
    assert [r.token for r in requests[:6]] == ["a", "b", "c"] * 2
    first = requests[0].body
    assert first == {
        "room_id": str(BERLIN),
        "title": "Bench 0",
        "attendees": 1,
        "starts_at": iso(free[0].starts_at),
        "ends_at": iso(free[0].starts_at + SLOT),
    }


def test_one_slot_requests_share_the_slot_but_not_the_key() -> None:
    contended = evenings(ROOMS, days=[date(2027, 1, 5)])
    same = SameSlot(evenings=contended, tokens=["a", "b"])

    requests = [same.request(run=1, number=n) for n in range(4)]

    assert {(r.body["room_id"], r.body["starts_at"]) for r in requests} == {
        (str(KOLKATA), "2027-01-05T13:00:00Z")
    }
    assert [r.key for r in requests] == [f"bench-same-1-{n}" for n in range(4)]
    assert [r.token for r in requests] == ["a", "b", "a", "b"]


def test_book_lua_builds_what_its_python_twin_builds() -> None:
    body_format = re.search(r"'(\{\"room_id\".*?\})'", BOOK_LUA)

    assert body_format is not None
    assert re.findall(r'"(\w+)":', body_format.group(1)) == [
        "room_id",
        "title",
        "attendees",
        "starts_at",
        "ends_at",
    ]
    assert '"attendees":1' in body_format.group(1)
    assert 'os.date("!%Y-%m-%dT%H:%M:%SZ", epoch)' in BOOK_LUA
    assert iso(datetime(2027, 1, 5, 13, 0, tzinfo=UTC)) == "2027-01-05T13:00:00Z"
    assert f"local SLOT_S = {int(SLOT.total_seconds()) // 60} * 60" in BOOK_LUA
    assert f"local STEP_S = {int(STEP.total_seconds()) // 60} * 60" in BOOK_LUA
    for template in ('"bench-%d"', '"Bench %d"', '"bench-same-%d-%d"', '"Bench same %d"'):
        assert template in BOOK_LUA
    assert '"title":"Bench (%d+)"' in BOOK_LUA
    assert time(18, 30) == EVENING


def test_common_lua_reports_the_numbers_of_a_numbering_script() -> None:
    assert 'thread:get("bench_sent")' in COMMON_LUA
    assert 'thread:get("bench_created")' in COMMON_LUA
    assert "numbering_json()" in COMMON_LUA
    assert "bench_sent = n" in BOOK_LUA


def test_wrk_report_carries_the_numbers_sent_and_created() -> None:
    line = (
        'WRK_REPORT {"requests":5,"duration_us":2000000,"bytes":1,"p50_us":1000,'
        '"p99_us":2000,"max_us":3000,"errors":{"connect":0,"read":0,"write":0,"status":2,'
        '"timeout":0},"statuses":{"201":3,"409":1,"503":1},"sent":7,"created":[0,2,5]}'
    )

    run = parse_wrk_report(line)

    assert (run.sent, run.created) == (7, frozenset({0, 2, 5}))
    assert parse_wrk_report(line.replace(',"sent":7,"created":[0,2,5]', "")).sent is None


def test_expected_refusals_count_as_served_but_shedding_stays_an_error() -> None:
    run = WrkRun(5, 1.0, 1.0, 2.0, non_2xx=2, socket_errors=0, statuses={201: 3, 409: 1, 503: 1})

    served = run.accepting({409})

    assert (run.rps, served.rps) == (3.0, 4.0)
    assert served.error_breakdown() == "503: 1"
    assert served.accepting({409}) == served
    assert "| 1 (503: 1) |" in table_line(Row("POST /bookings one slot", 64, served, 1.0, 0.1))


def test_a_503_in_the_one_slot_race_is_shedding_only_beyond_the_admission_limit() -> None:
    run = WrkRun(60, 5.0, 1.0, 2.0, non_2xx=59, socket_errors=0, statuses={201: 1, 409: 57, 503: 2})

    within = same_slot_verdict(run=run, number=1, connections=64, admits=80, held=(1, 1))
    beyond = same_slot_verdict(run=run, number=1, connections=256, admits=80, held=(1, 1))
    clean = same_slot_verdict(
        run=WrkRun(58, 5.0, 1.0, 2.0, non_2xx=57, socket_errors=0, statuses={201: 1, 409: 57}),
        number=1,
        connections=64,
        admits=80,
        held=(1, 1),
    )

    assert not within.passed
    assert "2 other (2 x 503 within the 80 requests admitted at once)" in within.text
    assert beyond.passed
    assert "2 x 503 shed, 0 other" in beyond.text
    assert clean.passed
    assert not same_slot_verdict(run=run, number=1, connections=256, admits=80, held=(2, 2)).passed


def test_checks_go_under_the_table_and_into_the_json() -> None:
    report = Report(meta={})

    report.check(Verdict(passed=True, text="3 new rows = 3 answered 201"))
    report.check(Verdict(passed=False, text="2 rows hold the slot"))

    assert report.notes == ["passed: 3 new rows = 3 answered 201", "FAILED: 2 rows hold the slot"]
    assert [c["passed"] for c in report.as_json()["checks"]] == [True, False]
    assert statuses(Counter({REPLAYED: 2, 201: 1, 409: 0})) == "replayed: 2, 201: 1"


def test_availability_scenarios_ask_for_next_week_room_after_room() -> None:
    monday = next_monday(date(2026, 12, 6))  # a Sunday

    lines = week_paths(ROOMS, ["a", "b"], monday=monday)

    assert monday == date(2026, 12, 7)
    assert lines == [
        f"a /api/v1/rooms/{BERLIN}/availability?from=2026-12-07T00:00:00Z&to=2026-12-14T00:00:00Z",
        f"b /api/v1/rooms/{KOLKATA}/availability?from=2026-12-07T00:00:00Z&to=2026-12-14T00:00:00Z",
    ]
    assert next_monday(monday) == date(2026, 12, 14)
    assert free_rooms_path(monday) == (
        "/api/v1/rooms/available?start=2026-12-08T13:00:00Z&end=2026-12-08T14:00:00Z"
    )
