"""Access tokens: the signature is verified once per token, the session on every request."""

import time
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient

from app.core.config import Settings
from app.core.security import InvalidToken, TokenCodec
from app.core.verified_tokens import VerifiedTokens

ME = "/api/v1/users/me"


class CountingCodec(TokenCodec):
    """A token codec that counts full verifications."""

    verified = 0

    def decode(self, token: str, **options: Any) -> dict[str, Any]:
        """Count, then verify as usual."""
        self.verified += 1
        return super().decode(token, **options)


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        """The current fake time."""
        return self.now


def token_for(codec: TokenCodec, subject: str = "u1") -> str:
    """A fresh access token."""
    return codec.encode_access(subject=subject, claims={"role": "member", "sid": "s1"})


def test_a_token_is_verified_once_until_it_expires(settings: Settings) -> None:
    codec = CountingCodec(settings.security)
    clock = Clock()
    tokens = VerifiedTokens(codec, clock=clock)
    token = token_for(codec)

    first = tokens.decode(token)
    again = tokens.decode(token)
    assert codec.verified == 1
    assert again == first
    assert again["sub"] == "u1"

    clock.now = float(first["exp"])
    assert tokens.decode(token)["jti"] == first["jti"]
    assert codec.verified == 2


def test_refused_tokens_are_never_cached(settings: Settings) -> None:
    codec = CountingCodec(settings.security)
    tokens = VerifiedTokens(codec)
    genuine = token_for(codec)
    tokens.decode(genuine)
    forged = genuine[:-4] + ("AAAA" if not genuine.endswith("AAAA") else "BBBB")
    for _ in range(2):
        with pytest.raises(InvalidToken):
            tokens.decode(forged)
    assert codec.verified == 3
    assert len(tokens) == 1


def test_the_cache_is_bounded_and_drops_the_least_recently_used(settings: Settings) -> None:
    codec = CountingCodec(settings.security)
    tokens = VerifiedTokens(codec, max_tokens=2)
    oldest, middle, newest = (token_for(codec, subject=f"u{n}") for n in range(3))
    tokens.decode(oldest)
    tokens.decode(middle)
    tokens.decode(oldest)
    tokens.decode(newest)
    assert len(tokens) == 2
    assert codec.verified == 3
    tokens.decode(oldest)
    assert codec.verified == 3
    tokens.decode(middle)
    assert codec.verified == 4


async def test_requests_verify_a_token_once_and_still_check_the_session(
    app: FastAPI,
    client: AsyncClient,
    member_headers: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    codec: TokenCodec = app.state.token_codec
    decode = codec.decode
    verified: list[str] = []

    def counting(token: str, **options: Any) -> dict[str, Any]:
        verified.append(token)
        return decode(token, **options)

    monkeypatch.setattr(codec, "decode", counting)
    assert (await client.get(ME, headers=member_headers)).status_code == 200
    assert (await client.get(ME, headers=member_headers)).status_code == 200
    assert len(verified) == 1

    # The cached token still meets the database: once its session ends, it is refused.
    assert (await client.post("/api/v1/auth/logout", headers=member_headers)).status_code == 204
    assert (await client.get(ME, headers=member_headers)).status_code == 401
    assert len(verified) == 1
