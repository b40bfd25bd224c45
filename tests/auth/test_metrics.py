"""Auth outcomes counted for Prometheus: logins, refreshes, rate-limit refusals, audit appends."""

from httpx import AsyncClient
from prometheus_client import REGISTRY

from app.core.config import RateLimitSettings
from tests.auth.conftest import REFRESH, BuildApp, login
from tests.conftest import CreateUser

EMAIL = "metrics.login@example.com"
WRONG = "definitely not the right passphrase"


def sample(name: str, **labels: str) -> float:
    """The current value of one series in this process (0 when it does not exist yet)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def logins() -> dict[str, float]:
    """The login counters by outcome."""
    return {
        outcome: sample("roombook_auth_logins_total", outcome=outcome)
        for outcome in ("success", "failure", "throttled")
    }


def refreshes() -> dict[str, float]:
    """The refresh counters by outcome."""
    return {
        outcome: sample("roombook_auth_refreshes_total", outcome=outcome)
        for outcome in ("success", "grace_replay", "rejected", "reuse_detected")
    }


def grown(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """How much each counter grew."""
    return {key: after[key] - before[key] for key in before}


async def test_each_login_outcome_is_counted_once(
    client: AsyncClient, create_user: CreateUser
) -> None:
    await create_user(email=EMAIL)
    appends = sample("roombook_audit_append_seconds_count")
    before = logins()

    assert (await login(client, EMAIL)).status_code == 200
    assert (await login(client, "nobody.metrics@example.com")).status_code == 401
    for _ in range(5):
        assert (await login(client, EMAIL, WRONG)).status_code == 401
    # The fifth failure opened a delay window: even the right password is refused now.
    assert (await login(client, EMAIL)).status_code == 401

    assert grown(before, logins()) == {"success": 1, "failure": 6, "throttled": 1}
    # The login and each counted wrong password appended to the audit chain.
    assert sample("roombook_audit_append_seconds_count") >= appends + 6


async def test_each_refresh_outcome_is_counted_once(
    client: AsyncClient, create_user: CreateUser
) -> None:
    await create_user(email=EMAIL)
    first = (await login(client, EMAIL)).json()["refresh_token"]
    before = refreshes()

    rotated = await client.post(REFRESH, json={"refresh_token": first})
    assert rotated.status_code == 200
    # Within the grace window the replaced token gets an access token only.
    assert (await client.post(REFRESH, json={"refresh_token": first})).status_code == 200
    second = rotated.json()["refresh_token"]
    third = (await client.post(REFRESH, json={"refresh_token": second})).json()["refresh_token"]
    # `first` is two generations old now: a leaked copy, and the family dies.
    assert (await client.post(REFRESH, json={"refresh_token": first})).status_code == 401
    assert (await client.post(REFRESH, json={"refresh_token": third})).status_code == 401
    assert (await client.post(REFRESH, json={"refresh_token": "x" * 43})).status_code == 401

    assert grown(before, refreshes()) == {
        "success": 2,
        "grace_replay": 1,
        "reuse_detected": 1,
        "rejected": 2,
    }


async def test_rate_limit_refusals_are_counted_by_policy(build_app: BuildApp) -> None:
    limits = RateLimitSettings(credentials_per_ip="1/minute", auth_per_ip="100/minute")
    _, client = await build_app(rate_limit=limits)
    before = sample("roombook_rate_limit_rejections_total", policy="credentials")
    other = sample("roombook_rate_limit_rejections_total", policy="auth")

    assert (await login(client, EMAIL)).status_code == 401
    assert (await login(client, EMAIL)).status_code == 429
    assert (await login(client, EMAIL)).status_code == 429

    assert sample("roombook_rate_limit_rejections_total", policy="credentials") == before + 2
    assert sample("roombook_rate_limit_rejections_total", policy="auth") == other
