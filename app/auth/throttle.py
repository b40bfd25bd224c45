"""Per-account attempt throttling: count a failure before each password check, clear it after.

Counting first (the reservation) in a short transaction of its own is what lets the slow
password verification run with no row lock and no pooled connection held, while a burst
of parallel guesses still cannot get more checks than the policy allows: each reservation
sees every one before it.
"""

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.policy import DelayPolicy
from app.auth.repository import AuthRepository
from app.core.config import AuthSettings


class Scope(StrEnum):
    """What a counter counts; each has its own row per account."""

    LOGIN = "login"
    PASSWORD_CHECK = "password_check"  # noqa: S105 - a counter name, not a secret


def device_scope(device_id: uuid.UUID) -> str:
    """The scope counting the failures of one trusted device cookie."""
    return f"device:{device_id.hex}"


@dataclass(frozen=True, slots=True)
class Reservation:
    """A failure counted in advance; `blocked_until` is the window it opened, if any."""

    scope: str
    failures: int
    blocked_until: datetime | None


@dataclass(frozen=True, slots=True)
class Refused:
    """No check may run now: the delay window of the scope is open until `until`."""

    until: datetime | None


class AttemptThrottle:
    """Reserve, and on success clear, counted failures of an account's password checks."""

    def __init__(
        self, *, session: AsyncSession, settings: AuthSettings, clock: Callable[[], datetime]
    ) -> None:
        self.repository = AuthRepository(session)
        self.policy = DelayPolicy.from_settings(settings)
        self.device_budget = settings.device_failure_budget
        self.clock = clock

    async def reserve(self, *, user_id: uuid.UUID, scope: Scope) -> Reservation | Refused:
        """Count one failure of `scope` now, or refuse while its delay window is open."""
        now = self.clock()
        counted = await self.repository.reserve_attempt(
            user_id=user_id, scope=scope.value, now=now, policy=self.policy
        )
        if counted is None:
            return Refused(until=await self.repository.blocked_until(user_id=user_id, scope=scope))
        failures, blocked_until = counted
        return Reservation(scope=scope.value, failures=failures, blocked_until=blocked_until)

    async def reserve_device(
        self, *, user_id: uuid.UUID, device_id: uuid.UUID
    ) -> Reservation | None:
        """Count one failure of a trusted device; None once its budget is spent (untrusted)."""
        scope = device_scope(device_id)
        failures = await self.repository.reserve_budget(
            user_id=user_id, scope=scope, budget=self.device_budget
        )
        if failures is None:
            return None
        return Reservation(scope=scope, failures=failures, blocked_until=None)

    async def clear(self, *, user_id: uuid.UUID, reservation: Reservation) -> None:
        """The check succeeded: forget the failures counted in the reservation's scope."""
        await self.repository.clear_attempts(user_id=user_id, scope=reservation.scope)

    async def forget_device(self, *, user_id: uuid.UUID, device_id: uuid.UUID) -> None:
        """The account logged in from this device: its spent budget starts over."""
        await self.repository.clear_attempts(user_id=user_id, scope=device_scope(device_id))
