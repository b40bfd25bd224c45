"""Security events: one `security_event` log line per occurrence, with a reason to alert on."""

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import AuthSettings, HttpSettings, LogSettings, RateLimitSettings
from app.core.logging import configure_logging
from tests.auth.conftest import (
    LOGIN,
    ME,
    PASSWORD,
    REFRESH,
    BuildApp,
    audit_actions,
    bearer,
    login,
)
from tests.conftest import DEFAULT_PASSWORD, GENEROUS_LIMIT, AuthHeaders, CreateUser
from tests.core.support import captured_logs

EMAIL = "events.user@example.com"
WRONG = "definitely not the right passphrase"
Events = Callable[[], list[dict[str, Any]]]


@contextmanager
def security_log() -> Iterator[Events]:
    """JSON logs into a buffer (after any app is built); yields a reader of the events."""
    configure_logging(LogSettings(level="INFO"), production=True)
    with captured_logs() as buffer:

        def events() -> list[dict[str, Any]]:
            parsed = [json.loads(line) for line in buffer.getvalue().splitlines() if line]
            return [line for line in parsed if line["event"] == "security_event"]

        yield events
    configure_logging(LogSettings(), production=False)


def reasons(events: Events) -> list[str]:
    """The reasons logged so far, in order."""
    return [event["reason"] for event in events()]


async def test_a_role_403_is_one_event_naming_the_caller(
    client: AsyncClient, create_user: CreateUser, auth_headers: AuthHeaders
) -> None:
    member = await create_user()
    headers = await auth_headers(member)
    with security_log() as events:
        response = await client.get("/api/v1/users", headers=headers)
    assert response.status_code == 403
    [event] = events()
    assert event["reason"] == "role_forbidden"
    assert event["level"] == "warning"
    assert event["actor_id"] == str(member)
    assert event["role"] == "member"
    assert event["client_ip"] == "127.0.0.1"
    assert event["request_id"] == response.headers["x-request-id"]


async def test_a_rejected_access_token_is_one_event_a_missing_one_none(
    client: AsyncClient,
) -> None:
    with security_log() as events:
        assert (await client.get(ME)).status_code == 401
        assert reasons(events) == []
        assert (await client.get(ME, headers=bearer("not.a.token"))).status_code == 401
    assert reasons(events) == ["token_rejected"]


async def test_a_429_and_a_refused_cross_site_call_are_events(
    build_app: BuildApp,
) -> None:
    _, client = await build_app(
        http=HttpSettings(cors_origins=["https://spa.example.com"]),
        rate_limit=RateLimitSettings(auth_per_ip="1/minute", credentials_per_ip=GENEROUS_LIMIT),
    )
    with security_log() as events:
        foreign = await client.post(REFRESH, headers={"Origin": "https://evil.example.net"})
        assert reasons(events) == ["cross_site_refused"]
        assert events()[0]["origin"] == "https://evil.example.net"
        await client.post(REFRESH)  # the one allowed call; no cookie: a plain 401, no event
        limited = await client.post(REFRESH)
    assert (foreign.status_code, limited.status_code) == (403, 429)
    assert reasons(events) == ["cross_site_refused", "rate_limited"]


async def test_login_failures_and_throttled_guesses_are_events_not_audit_noise(
    build_app: BuildApp, create_user: CreateUser, db_session: AsyncSession
) -> None:
    _, client = await build_app(auth=AuthSettings(login_delay_base_s=60))
    user_id = await create_user(email=EMAIL)
    for _ in range(5):
        assert (await login(client, EMAIL, WRONG)).status_code == 401
    with security_log() as events:
        assert (await login(client, "nobody@example.com", WRONG)).status_code == 401
        assert (await login(client, EMAIL, DEFAULT_PASSWORD)).status_code == 401
    assert reasons(events) == ["login_failed", "login_throttled"]
    assert events()[0]["problem"] == "unknown_account"
    assert events()[1]["user_id"] == str(user_id)
    # Only the counted failures changed state, so only they are audited.
    assert await audit_actions(db_session, entity_id=user_id) == ["auth.login_failed"] * 5
    assert await audit_actions(db_session, entity_id=None) == ["auth.login_failed"] * 5


async def test_wrong_and_throttled_current_passwords_are_events(
    build_app: BuildApp, create_user: CreateUser
) -> None:
    _, client = await build_app(auth=AuthSettings(login_delay_base_s=60))
    await create_user(email=EMAIL)
    headers = bearer((await login(client, EMAIL)).json()["access_token"])
    body = {"current_password": WRONG, "new_password": "a completely different passphrase"}
    with security_log() as events:
        statuses = [
            (await client.post(PASSWORD, json=body, headers=headers)).status_code for _ in range(6)
        ]
    assert statuses == [403] * 5 + [429]
    assert reasons(events) == ["wrong_current_password"] * 5 + ["current_password_throttled"]
    assert {event["purpose"] for event in events()} == {"password_change"}


async def test_refresh_replays_reuse_and_unknown_tokens_are_events(
    client: AsyncClient, create_user: CreateUser
) -> None:
    await create_user(email=EMAIL)
    first = (await login(client, EMAIL)).json()["refresh_token"]
    with security_log() as events:
        second = (await client.post(REFRESH, json={"refresh_token": first})).json()
        assert reasons(events) == []
        twin = await client.post(REFRESH, json={"refresh_token": first})
        assert reasons(events) == ["refresh_grace_replay"]
        await client.post(REFRESH, json={"refresh_token": second["refresh_token"]})
        reused = await client.post(REFRESH, json={"refresh_token": first})
        unknown = await client.post(REFRESH, json={"refresh_token": "x" * 43})
    assert (twin.status_code, reused.status_code, unknown.status_code) == (200, 401, 401)
    assert reasons(events) == ["refresh_grace_replay", "refresh_reused", "refresh_rejected"]


async def test_a_forged_device_cookie_is_an_event_and_the_login_goes_on(
    client: AsyncClient, create_user: CreateUser
) -> None:
    await create_user(email=EMAIL)
    with security_log() as events:
        response = await client.post(
            LOGIN,
            data={"username": EMAIL, "password": DEFAULT_PASSWORD},
            headers={"Cookie": "roombook_device=forged.cookie.value.here"},
        )
    assert response.status_code == 200
    assert reasons(events) == ["device_cookie_rejected"]
