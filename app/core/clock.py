"""The application's clock, as a request dependency that tests replace with a fixed instant."""

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends

Clock = Callable[[], datetime]
"""Returns the current instant, aware and in UTC."""


def utc_now() -> datetime:
    """The current instant in UTC."""
    return datetime.now(UTC)


async def get_clock() -> Clock:
    """The clock of the request; `app.dependency_overrides[get_clock]` fixes it in tests."""
    return utc_now


ClockDep = Annotated[Clock, Depends(get_clock)]
