"""Per-client-IP rate limits on /auth/*, with in-memory and Redis storage."""

import uuid
from collections.abc import AsyncIterator

import pytest
from httpx import Response
from pydantic import SecretStr

from app.auth.dependencies import client_key
from app.auth.ratelimit import RateLimiter, storage_url
from app.core.config import HttpSettings, RateLimitSettings
from app.core.context import RequestContext, start_context
from tests.auth.conftest import ME, REFRESH, BuildApp, login, raw_logs
from tests.conftest import AuthHeaders, CreateUser

REDIS_URL = "redis://127.0.0.1:6379/0"
EMAIL = "limited@example.com"


def _limits(
    *, redis: bool, prefix: str, credentials: str = "3/minute", auth: str = "100/minute"
) -> RateLimitSettings:
    return RateLimitSettings(
        storage_url=SecretStr(REDIS_URL) if redis else None,
        credentials_per_ip=credentials,
        auth_per_ip=auth,
        key_prefix=prefix,
    )


@pytest.fixture(params=["memory", "redis"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[RateLimitSettings]:
    """Tight budgets on each storage; Redis keys get a prefix of their own and are removed."""
    prefix = f"roombook-test-{uuid.uuid4().hex}"
    settings = _limits(redis=request.param == "redis", prefix=prefix)
    yield settings
    await RateLimiter(settings).storage.reset()


def assert_limited(response: Response, policy: str, quota: int) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "rate-limited"
    assert body["status"] == 429
    retry_after = int(response.headers["retry-after"])
    assert 1 <= retry_after <= 60
    assert response.headers["ratelimit-policy"] == f'"{policy}";q={quota};w=60'
    assert response.headers["ratelimit"] == f'"{policy}";r=0;t={retry_after}'


async def test_login_budget_per_ip_answers_429_with_headers(
    build_app: BuildApp, create_user: CreateUser, backend: RateLimitSettings
) -> None:
    _, client = await build_app(rate_limit=backend)
    await create_user(email=EMAIL)
    first = await login(client, EMAIL)
    assert first.status_code == 200
    assert first.headers["ratelimit"].startswith('"credentials";r=2;t=')
    assert first.headers["ratelimit-policy"] == '"credentials";q=3;w=60'
    failed = await login(client, EMAIL, "wrong wrong wrong wrong")
    assert failed.status_code == 401
    assert failed.json()["code"] == "invalid-credentials"
    # Failures show the budget as well: a client sees it run out before the 429.
    assert failed.headers["ratelimit"].startswith('"credentials";r=1;t=')
    assert failed.headers["www-authenticate"] == "Bearer"
    assert (await login(client, EMAIL)).status_code == 200
    assert_limited(await login(client, EMAIL), "credentials", 3)


async def test_every_auth_route_shares_the_general_budget(
    build_app: BuildApp, backend: RateLimitSettings
) -> None:
    general = backend.model_copy(update={"auth_per_ip": "2/minute"})
    _, client = await build_app(rate_limit=general)
    for _ in range(2):
        response = await client.post(REFRESH, json={"refresh_token": "nope"})
        assert response.status_code == 401
    assert_limited(await client.post(REFRESH, json={"refresh_token": "nope"}), "auth", 2)


async def test_each_client_ip_has_its_own_budget(
    build_app: BuildApp, backend: RateLimitSettings
) -> None:
    _, client = await build_app(
        rate_limit=backend.model_copy(update={"credentials_per_ip": "1/minute"}),
        http=HttpSettings(trusted_proxies=["127.0.0.1"]),
    )
    one = {"X-Forwarded-For": "203.0.113.1"}
    two = {"X-Forwarded-For": "203.0.113.2"}
    assert (await login(client, "a@example.com", headers=one)).status_code == 401
    assert_limited(await login(client, "a@example.com", headers=one), "credentials", 1)
    other = await login(client, "a@example.com", headers=two)
    assert other.json()["code"] == "invalid-credentials"


async def test_redis_budgets_are_shared_between_processes(build_app: BuildApp) -> None:
    shared = _limits(redis=True, prefix=f"roombook-test-{uuid.uuid4().hex}", credentials="2/minute")
    try:
        _, first = await build_app(rate_limit=shared)
        _, second = await build_app(rate_limit=shared)
        assert (await login(first, "x@example.com")).status_code == 401
        assert (await login(second, "x@example.com")).status_code == 401
        assert_limited(await login(first, "x@example.com"), "credentials", 2)
        assert_limited(await login(second, "x@example.com"), "credentials", 2)
    finally:
        await RateLimiter(shared).storage.reset()


async def test_memory_budgets_are_per_process(build_app: BuildApp) -> None:
    alone = _limits(redis=False, prefix="unused", credentials="1/minute")
    _, first = await build_app(rate_limit=alone)
    _, second = await build_app(rate_limit=alone)
    assert (await login(first, "x@example.com")).status_code == 401
    assert (await login(second, "x@example.com")).json()["code"] == "invalid-credentials"
    assert_limited(await login(first, "x@example.com"), "credentials", 1)


async def test_unreachable_redis_fails_open(build_app: BuildApp) -> None:
    broken = RateLimitSettings(
        storage_url=SecretStr("redis://127.0.0.1:1/0"), credentials_per_ip="1/minute"
    )
    _, client = await build_app(rate_limit=broken)
    with raw_logs() as logs:
        for _ in range(2):
            response = await login(client, "x@example.com")
            assert response.status_code == 401
            assert "ratelimit" not in response.headers
    assert "rate limit storage unavailable" in logs.text


async def test_limits_can_be_turned_off(build_app: BuildApp) -> None:
    _, client = await build_app(
        rate_limit=RateLimitSettings(enabled=False, credentials_per_ip="1/minute")
    )
    for _ in range(3):
        response = await login(client, "x@example.com")
        assert response.status_code == 401
        assert "ratelimit" not in response.headers


def test_storage_urls_get_the_async_scheme() -> None:
    assert storage_url("redis://h:6379/1") == "async+redis://h:6379/1"
    assert storage_url("async+rediss://h:6380") == "async+rediss://h:6380"


def test_a_client_without_address_shares_one_budget() -> None:
    start_context(RequestContext())
    assert client_key() == "unknown"


async def test_confirming_an_email_change_spends_the_credentials_budget(
    build_app: BuildApp,
    create_user: CreateUser,
    auth_headers: AuthHeaders,
    backend: RateLimitSettings,
) -> None:
    # A stolen access token must not turn `PATCH /users/me` into an unlimited password oracle.
    _, client = await build_app(
        rate_limit=backend.model_copy(update={"credentials_per_ip": "1/minute"})
    )
    headers = {**await auth_headers(await create_user(email=EMAIL)), "If-Match": '"1"'}
    change = {"email": "elsewhere@example.com", "current_password": "a guess at the password"}
    wrong = await client.patch(ME, json=change, headers=headers)
    assert wrong.status_code == 403
    assert wrong.json()["code"] == "current-password-invalid"
    assert wrong.headers["ratelimit"].startswith('"credentials";r=0;t=')
    assert_limited(await client.patch(ME, json=change, headers=headers), "credentials", 1)
