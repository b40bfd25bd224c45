"""The admission queue: places for a limit of requests, handed to waiters in turn."""

import asyncio

import pytest

from app.core.admission import Admission

LONG_S = 30.0
"""A wait no test reaches: the place comes free first."""


async def waiting(admission: Admission) -> asyncio.Task[bool]:
    """A request queueing for a place, started and parked in the queue."""
    task = asyncio.create_task(admission.enter())
    await asyncio.sleep(0)
    assert not task.done()
    return task


async def test_places_up_to_the_limit_are_taken_at_once() -> None:
    admission = Admission(limit=2, wait_s=0)
    assert [await admission.enter() for _ in range(3)] == [True, True, False]
    assert admission.in_progress == 2
    admission.leave()
    assert await admission.enter()


async def test_a_freed_place_goes_to_the_longest_waiter_and_nobody_jumps_the_queue() -> None:
    admission = Admission(limit=1, wait_s=LONG_S)
    assert await admission.enter()
    first, second = await waiting(admission), await waiting(admission)

    admission.leave()
    assert await first
    assert not second.done()
    # A newcomer finds no free place: the one freed went to `first`.
    latecomer = await waiting(admission)
    admission.leave()
    assert await second
    assert not latecomer.done()
    admission.leave()
    assert await latecomer
    admission.leave()
    assert admission.in_progress == 0


async def test_a_wait_that_runs_out_is_refused_and_keeps_no_place() -> None:
    admission = Admission(limit=1, wait_s=0.01)
    assert await admission.enter()
    assert not await admission.enter()
    admission.leave()
    assert admission.in_progress == 0
    assert await admission.enter()


async def test_a_waiter_cancelled_as_its_place_arrives_passes_the_place_on() -> None:
    admission = Admission(limit=1, wait_s=LONG_S)
    assert await admission.enter()
    cancelled, next_in_line = await waiting(admission), await waiting(admission)

    admission.leave()  # hands the place to `cancelled`, which has not run yet
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert await next_in_line
    admission.leave()
    assert admission.in_progress == 0


async def test_a_waiter_cancelled_in_the_queue_is_skipped() -> None:
    admission = Admission(limit=1, wait_s=LONG_S)
    assert await admission.enter()
    gone = await waiting(admission)
    gone.cancel()
    with pytest.raises(asyncio.CancelledError):
        await gone
    admission.leave()
    assert admission.in_progress == 0
