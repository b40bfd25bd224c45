"""The growing delay that failed password checks earn: doubling windows with a cap."""

from dataclasses import dataclass
from datetime import timedelta

from app.core.config import AuthSettings

MAX_DOUBLINGS = 30
"""Beyond 2**30 windows the cap has long applied; bounding the exponent keeps SQL in range."""


@dataclass(frozen=True, slots=True)
class DelayPolicy:
    """After `free_failures` failures, each one opens a window of base * 2**over, capped."""

    free_failures: int
    base_s: int
    max_s: int

    @classmethod
    def from_settings(cls, settings: AuthSettings) -> "DelayPolicy":
        """The login slow-down configured by settings (current-password checks use it too)."""
        return cls(
            free_failures=settings.login_failures_before_delay,
            base_s=settings.login_delay_base_s,
            max_s=settings.login_delay_max_s,
        )

    def delay(self, over: int) -> timedelta:
        """The window earned by the failure `over` failures past the free ones (0 = first)."""
        seconds = min(self.base_s * 2 ** min(over, MAX_DOUBLINGS), self.max_s)
        return timedelta(seconds=seconds)
