"""Per-client-IP rate limits on `/auth/*` with the `limits` library (memory or Redis)."""

import math
import time
from dataclasses import dataclass

import structlog
from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError

from app.core.config import RateLimitSettings
from app.core.errors import RateLimited
from app.core.metrics import record_rate_limited
from app.core.security_events import SecurityReason, security_event

log = structlog.get_logger("roombook.ratelimit")


@dataclass(frozen=True, slots=True)
class Policy:
    """A named budget, e.g. 10 per minute, shown in the `RateLimit-Policy` header."""

    name: str
    item: RateLimitItem

    @property
    def header(self) -> str:
        """The `RateLimit-Policy` value (draft-ietf-httpapi-ratelimit-headers)."""
        return f'"{self.name}";q={self.item.amount};w={self.item.get_expiry()}'


@dataclass(frozen=True, slots=True)
class Budget:
    """What is left of a policy's budget for one client."""

    policy: Policy
    remaining: int
    reset_s: int

    def headers(self) -> dict[str, str]:
        """`RateLimit` and `RateLimit-Policy` response headers."""
        return {
            "RateLimit-Policy": self.policy.header,
            "RateLimit": f'"{self.policy.name}";r={self.remaining};t={self.reset_s}',
        }


class RateLimitExceeded(RateLimited):
    """The client used up a rate-limit budget."""

    code = "rate-limited"
    title = "Too many requests"


def storage_url(raw: str) -> str:
    """Turn `redis://…` into the `async+redis://…` URL `limits` expects."""
    return raw if raw.startswith("async+") else f"async+{raw}"


def build_storage(settings: RateLimitSettings) -> Storage:
    """In-memory storage by default; Redis when a URL is set, so processes share budgets."""
    if settings.storage_url is None:
        return MemoryStorage()
    return RedisStorage(
        storage_url(settings.storage_url.get_secret_value()),
        key_prefix=settings.key_prefix,
        wrap_exceptions=True,
        # redis-py rather than coredis: OpenTelemetry instruments redis-py's client.
        implementation="redispy",
    )


class RateLimiter:
    """Moving-window budgets per client IP."""

    def __init__(self, settings: RateLimitSettings) -> None:
        self.enabled = settings.enabled
        self.storage = build_storage(settings)
        self.limiter = MovingWindowRateLimiter(self.storage)
        self.auth = Policy("auth", parse(settings.auth_per_ip))
        self.credentials = Policy("credentials", parse(settings.credentials_per_ip))

    async def hit(self, *, policy: Policy, client: str) -> Budget | None:
        """Spend one unit of the client's budget; raise 429 when it is used up.

        Returns None when limiting is off or the storage is unreachable.
        """
        if not self.enabled:
            return None
        try:
            allowed = await self.limiter.hit(policy.item, policy.name, client)
            stats = await self.limiter.get_window_stats(policy.item, policy.name, client)
        except StorageError as exc:
            # Fail open: an unreachable Redis must not lock everyone out of logging in;
            # the per-account slow-down in the database still stands.
            log.warning("rate limit storage unavailable", error=type(exc.storage_error).__name__)
            return None
        budget = Budget(
            policy=policy,
            remaining=max(stats.remaining, 0),
            reset_s=max(math.ceil(stats.reset_time - time.time()), 1),
        )
        if not allowed:
            security_event(SecurityReason.RATE_LIMITED, policy=policy.name)
            record_rate_limited(policy=policy.name)
            raise RateLimitExceeded(
                f"Too many requests; retry in {budget.reset_s} seconds.",
                headers={"Retry-After": str(budget.reset_s), **budget.headers()},
            )
        return budget
