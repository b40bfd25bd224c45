"""The application's clock, as a request dependency; tests give the app a fixed instant."""

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request

Clock = Callable[[], datetime]
"""Returns the current instant, aware and in UTC."""


def utc_now() -> datetime:
    """The current instant in UTC."""
    return datetime.now(UTC)


async def get_clock(request: Request) -> Clock:
    """The app's clock: `app.state.clock`, which tests set to a fixed instant.

    Not replaced with `app.dependency_overrides`: while any override is set, FastAPI
    rebuilds every dependency of every request from its signature.
    """
    clock: Clock = request.app.state.clock
    return clock


ClockDep = Annotated[Clock, Depends(get_clock)]
