"""Admission at the edge: how many requests run at once, and a short queue for the rest."""

import asyncio
from collections import deque


class Admission:
    """Places for `limit` requests at once; a request beyond them queues up to `wait_s`.

    A freed place passes straight to the longest waiter, so the count never exceeds the
    limit and nobody arriving later jumps the queue. One event loop per process: the
    count needs no lock.
    """

    def __init__(self, *, limit: int, wait_s: float) -> None:
        self.limit = limit
        self.wait_s = wait_s
        self.in_progress = 0
        self._waiting: deque[asyncio.Future[None]] = deque()

    async def enter(self) -> bool:
        """Take a place, waiting for one up to `wait_s`; False when none came free in time."""
        if self.in_progress < self.limit:
            self.in_progress += 1
            return True
        if self.wait_s <= 0:
            return False
        place: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(place)
        try:
            async with asyncio.timeout(self.wait_s):
                await place
        except TimeoutError:
            return _handed_over(place)
        except BaseException:
            # Cancelled while a place was being handed over: pass it on, do not lose it.
            if _handed_over(place):
                self.leave()
            raise
        return True

    def leave(self) -> None:
        """Give the place back: to the longest waiter, else to the pool of free places."""
        while self._waiting:
            place = self._waiting.popleft()
            if not place.done():
                place.set_result(None)
                return
        self.in_progress -= 1


def _handed_over(place: asyncio.Future[None]) -> bool:
    """Whether a waiter's place was given to it (just as its wait ended); cancel it if not."""
    if place.done() and not place.cancelled():
        return True
    place.cancel()
    return False
