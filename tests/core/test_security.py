"""argon2id hashing off the event loop, and JWTs that refuse every classic forgery."""

import asyncio
import base64
import json
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from jwt.warnings import InsecureKeyLengthWarning
from pydantic import SecretStr

from app.core import security
from app.core.config import SecuritySettings
from app.core.security import (
    ACCESS_TOKEN_TYPE,
    HASH_THREAD_PREFIX,
    InvalidToken,
    PasswordHasher,
    TokenCodec,
)

SECRET = "current-signing-secret-of-at-least-32-bytes!"
OLD_SECRET = "previous-signing-secret-of-at-least-32-bytes"


def fast_hasher(**overrides: int) -> PasswordHasher:
    """A hasher with cheap parameters for tests."""
    params = {"time_cost": 1, "memory_kib": 64, "parallelism": 1, "concurrency": 2} | overrides
    return PasswordHasher(**params)


async def test_hash_and_verify() -> None:
    hasher = fast_hasher()
    stored = await hasher.hash("correct horse battery staple")
    assert stored.startswith("$argon2id$v=19$m=64,t=1,p=1$")
    assert "correct horse" not in stored
    assert await hasher.verify(stored, "correct horse battery staple") is True
    assert await hasher.verify(stored, "wrong horse battery staple") is False
    assert await hasher.verify("not-a-hash", "anything") is False
    assert stored != await hasher.hash("correct horse battery staple")


async def test_verify_against_nothing_spends_a_verification() -> None:
    hasher = fast_hasher()
    await hasher.verify_against_nothing("guess")
    dummy = hasher._dummy_hash
    assert dummy is not None
    assert dummy.startswith("$argon2id$")
    await hasher.verify_against_nothing("another guess")
    assert hasher._dummy_hash == dummy  # made once, reused


async def test_needs_rehash_when_parameters_change() -> None:
    stored = await fast_hasher().hash("pw")
    assert fast_hasher().needs_rehash(stored) is False
    assert fast_hasher(time_cost=2).needs_rehash(stored) is True
    assert fast_hasher(memory_kib=128).needs_rehash(stored) is True
    assert fast_hasher().needs_rehash("garbage") is True


def test_from_settings_uses_the_configured_parameters() -> None:
    settings = SecuritySettings(argon2_time_cost=3, argon2_memory_kib=256, argon2_parallelism=2)
    stored = PasswordHasher.from_settings(settings)._hasher.hash("pw")
    assert "$m=256,t=3,p=2$" in stored


class GatedHash:
    """Stands in for argon2 to observe how many hashes run at once, and where."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.lock = threading.Lock()
        self.active = 0
        self.peak = 0
        self.threads: set[int] = set()
        self.names: set[str] = set()
        self.niceness: set[int] = set()

    def hash(self, password: str) -> str:
        with self.lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
            self.threads.add(threading.get_ident())
            self.names.add(threading.current_thread().name)
            self.niceness.add(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        self.gate.wait(timeout=10)
        with self.lock:
            self.active -= 1
        return f"hashed:{password}"


def gate(hasher: PasswordHasher, monkeypatch: pytest.MonkeyPatch) -> GatedHash:
    """Put a `GatedHash` in place of the hasher's argon2."""
    gated = GatedHash()
    monkeypatch.setattr(hasher, "_hasher", gated)
    return gated


async def wait_for(condition: Any) -> None:
    """Yield to the loop until `condition()` holds (bounded)."""
    for _ in range(2000):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition never held")


async def test_hashing_runs_in_threads_capped_without_blocking_the_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hasher = fast_hasher(concurrency=2)
    gated = gate(hasher, monkeypatch)
    tasks = [asyncio.create_task(hasher.hash(f"pw{i}")) for i in range(6)]
    # `wait_for` polls on the event loop: it can only see two hashes blocked at once if
    # they block in worker threads, not on the loop (where the first would hold it alone).
    await wait_for(lambda: gated.active == 2)
    assert hasher._pending == 6  # two running, four queued
    assert gated.active == 2
    gated.gate.set()
    results = await asyncio.gather(*tasks)
    assert results == [f"hashed:pw{i}" for i in range(6)]
    assert gated.peak == 2
    assert threading.get_ident() not in gated.threads
    assert hasher._pending == 0


async def test_hashes_run_on_the_dedicated_pool_at_the_configured_niceness(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = SecuritySettings(
        argon2_time_cost=1, argon2_memory_kib=64, hash_concurrency=3, hash_niceness=7
    )
    hasher = PasswordHasher.from_settings(settings)
    gated = gate(hasher, monkeypatch)
    gated.gate.set()
    await asyncio.gather(*(hasher.hash(f"pw{i}") for i in range(9)))
    # Only the pool's threads hash, named for profiles, below the event loop's priority.
    assert len(gated.threads) <= 3
    assert all(name.startswith(f"{HASH_THREAD_PREFIX}_") for name in gated.names)
    assert gated.niceness == {7}
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) < 7


async def test_a_cancelled_hash_leaves_the_queue_and_close_ends_the_pool(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hasher = fast_hasher(concurrency=1)
    gated = gate(hasher, monkeypatch)
    running = asyncio.create_task(hasher.hash("running"))
    queued = asyncio.create_task(hasher.hash("queued"))
    await wait_for(lambda: gated.active == 1)
    queued.cancel()
    with pytest.raises(asyncio.CancelledError):
        await queued
    assert hasher._pending == 1  # the cancelled hash never ran and is counted out
    gated.gate.set()
    assert await running == "hashed:running"
    assert hasher._pending == 0
    hasher.close()
    assert hasher._pool is None
    assert await hasher.hash("after close") == "hashed:after close"  # a fresh pool
    hasher.close()


MEMORY_PROBE = """
import asyncio, sys
from app.core.security import PasswordHasher, share_one_malloc_arena

def rss_kib():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))

async def main():
    hasher = PasswordHasher(time_cost=1, memory_kib=19456, parallelism=1, concurrency=2)
    before = rss_kib()
    for _ in range(3):
        await asyncio.gather(*(hasher.hash(f"pw{i}") for i in range(4)))
    await hasher.hash("alone")
    print(rss_kib() - before)

if sys.argv[1] == "shared":
    assert share_one_malloc_arena()
asyncio.run(main())
"""


def rss_growth_kib(mode: str) -> int:
    """RSS growth of a fresh interpreter after 13 production-sized hashes on two threads."""
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(  # noqa: S603 - this interpreter, a fixed script
        [sys.executable, "-c", MEMORY_PROBE, mode],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout)


def test_memory_a_hash_frees_goes_back_to_the_os_once_the_pool_is_idle() -> None:
    # A fresh process per case, so no earlier test's threads or arenas blur the figure.
    hash_kib = 19456
    assert rss_growth_kib("shared") < hash_kib // 4
    # Without the shared arena each hashing thread keeps its hash's memory.
    assert rss_growth_kib("own") > hash_kib


def codec_settings(**overrides: Any) -> SecuritySettings:
    """Token settings with a test secret."""
    values: dict[str, Any] = {"jwt_secret": SecretStr(SECRET), "jwt_key_id": "k2"}
    values.update(overrides)
    return SecuritySettings(**values)


@pytest.fixture
def codec() -> TokenCodec:
    """A codec signing with `k2`."""
    return TokenCodec(codec_settings())


def b64(data: dict[str, Any]) -> str:
    """base64url JSON without padding, as in a JWT."""
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def claims(**overrides: Any) -> dict[str, Any]:
    """A complete, currently valid claim set."""
    now = datetime.now(UTC)
    values: dict[str, Any] = {
        "sub": "user-1",
        "iss": "roombook",
        "aud": "roombook-api",
        "iat": now,
        "nbf": now,
        "exp": now + timedelta(minutes=5),
        "jti": "j1",
    }
    values.update(overrides)
    return {k: v for k, v in values.items() if v is not None}


def forge(payload: dict[str, Any], *, key: str = SECRET, alg: str = "HS256", **header: Any) -> str:
    """Sign a token with chosen claims and headers."""
    headers = {"kid": "k2", "typ": ACCESS_TOKEN_TYPE} | header
    return jwt.encode(payload, key, algorithm=alg, headers=headers)


def test_access_token_round_trip(codec: TokenCodec) -> None:
    token = codec.encode_access(subject="user-1", claims={"role": "admin", "sid": "s1"})
    header = jwt.get_unverified_header(token)
    assert header == {"alg": "HS256", "kid": "k2", "typ": "at+jwt"}
    decoded = codec.decode(token)
    assert decoded["sub"] == "user-1"
    assert decoded["role"] == "admin"
    assert decoded["iss"] == "roombook"
    assert decoded["aud"] == "roombook-api"
    assert decoded["exp"] - decoded["iat"] == 600
    assert len(decoded["jti"]) == 32
    assert codec.access_ttl == timedelta(seconds=600)


def test_each_token_has_its_own_id(codec: TokenCodec) -> None:
    first = codec.decode(codec.encode_access(subject="u", claims={}))
    second = codec.decode(codec.encode_access(subject="u", claims={}))
    assert first["jti"] != second["jti"]


def test_other_token_types_round_trip_only_as_that_type(codec: TokenCodec) -> None:
    token = codec.encode(subject="u", claims={}, ttl=timedelta(hours=1), token_type="rt+jwt")
    assert codec.decode(token, token_type="rt+jwt", max_ttl=timedelta(hours=1))["sub"] == "u"
    with pytest.raises(InvalidToken, match="unexpected token type"):
        codec.decode(token)


@pytest.mark.parametrize("missing", ["exp", "sub", "iss", "aud", "iat", "jti"])
def test_every_standard_claim_is_required(codec: TokenCodec, missing: str) -> None:
    token = forge(claims(**{missing: None}))
    with pytest.raises(InvalidToken, match=f'"{missing}"'):
        codec.decode(token)


def test_alg_none_is_rejected(codec: TokenCodec) -> None:
    token = jwt.encode(claims(), None, algorithm="none", headers={"kid": "k2", "typ": "at+jwt"})
    with pytest.raises(InvalidToken, match="unexpected algorithm"):
        codec.decode(token)


@pytest.mark.parametrize("alg", ["RS256", "ES256", "HS512", "none"])
def test_other_algorithms_are_rejected_before_any_key_is_used(codec: TokenCodec, alg: str) -> None:
    """HS/RS confusion: whatever the header claims, only HS256 with our key counts."""
    body = b64(
        {k: (int(v.timestamp()) if isinstance(v, datetime) else v) for k, v in claims().items()}
    )
    token = f"{b64({'alg': alg, 'typ': 'at+jwt', 'kid': 'k2'})}.{body}.c2lnbmF0dXJl"
    with pytest.raises(InvalidToken, match="unexpected algorithm"):
        codec.decode(token)


def test_hs512_signed_with_our_secret_is_still_rejected(codec: TokenCodec) -> None:
    with pytest.warns(InsecureKeyLengthWarning):
        token = forge(claims(), alg="HS512")
    with pytest.raises(InvalidToken, match="unexpected algorithm"):
        codec.decode(token)


@pytest.mark.parametrize(
    "header",
    [
        {"jwk": {"kty": "oct", "k": "YXR0YWNrZXI"}},
        {"jku": "https://attacker.example/keys.json"},
        {"x5u": "https://attacker.example/cert.pem"},
        {"x5c": ["MIIB"]},
    ],
)
def test_tokens_naming_their_own_key_are_rejected(
    codec: TokenCodec, header: dict[str, Any]
) -> None:
    with pytest.raises(InvalidToken, match="token names its own key"):
        codec.decode(forge(claims(), **header))


@pytest.mark.parametrize("typ", ["JWT", None, "rt+jwt"])
def test_wrong_type_is_rejected(codec: TokenCodec, typ: str | None) -> None:
    with pytest.raises(InvalidToken, match="unexpected token type"):
        codec.decode(forge(claims(), typ=typ))


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ({"aud": "another-api"}, "Audience doesn't match"),
        ({"iss": "someone-else"}, "issuer"),
        ({"exp": timedelta(seconds=-30)}, "expired"),
        ({"nbf": timedelta(seconds=60)}, "not yet valid"),
    ],
)
def test_wrong_claims_are_rejected(
    codec: TokenCodec, override: dict[str, Any], reason: str
) -> None:
    now = datetime.now(UTC)
    values = {k: now + v if isinstance(v, timedelta) else v for k, v in override.items()}
    with pytest.raises(InvalidToken, match=reason):
        codec.decode(forge(claims(**values)))


@pytest.mark.parametrize(
    ("iat", "exp", "reason"),
    [
        # A 10-year token, honestly dated.
        (timedelta(0), timedelta(days=3650), "lifetime longer than allowed"),
        # TTL 600 s + leeway 10 s is the most any token may claim.
        (timedelta(0), timedelta(seconds=611), "lifetime longer than allowed"),
        # Dated ahead within the leeway so that exp - iat looks allowed, yet exp is too far.
        (timedelta(seconds=8), timedelta(seconds=618), "expires further ahead"),
    ],
)
def test_tokens_living_longer_than_the_ttl_are_rejected(
    codec: TokenCodec, iat: timedelta, exp: timedelta, reason: str
) -> None:
    now = datetime.now(UTC)
    with pytest.raises(InvalidToken, match=reason):
        codec.decode(forge(claims(iat=now + iat, exp=now + exp)))


def test_a_token_of_exactly_the_ttl_plus_leeway_is_accepted(codec: TokenCodec) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    token = forge(claims(iat=now, exp=now + timedelta(seconds=610)))
    assert codec.decode(token)["sub"] == "user-1"


def test_leeway_tolerates_small_clock_skew(codec: TokenCodec) -> None:
    now = datetime.now(UTC)
    skewed = claims(exp=now - timedelta(seconds=3), nbf=now + timedelta(seconds=3))
    assert codec.decode(forge(skewed))["sub"] == "user-1"
    strict = TokenCodec(codec_settings(jwt_leeway_s=0))
    with pytest.raises(InvalidToken, match="expired"):
        strict.decode(forge(claims(exp=now - timedelta(seconds=3))))
    with pytest.raises(InvalidToken, match="not yet valid"):
        strict.decode(forge(claims(nbf=now + timedelta(seconds=3))))


def test_leeway_above_30_seconds_is_refused() -> None:
    with pytest.raises(ValueError, match="less than or equal to 30"):
        SecuritySettings(jwt_leeway_s=31)


def test_tampered_tokens_are_rejected(codec: TokenCodec) -> None:
    token = codec.encode_access(subject="user-1", claims={"role": "member"})
    header, payload, signature = token.split(".")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    elevated = b64({**jwt.decode(token, options={"verify_signature": False}), "role": "admin"})
    for forged in (f"{header}.{payload}.{flipped}", f"{header}.{elevated}.{signature}"):
        with pytest.raises(InvalidToken, match="Signature verification failed"):
            codec.decode(forged)
    with pytest.raises(InvalidToken, match="Signature verification failed"):
        codec.decode(forge(claims(), key="another-secret-that-is-at-least-32-bytes"))


@pytest.mark.parametrize("token", ["", "abc", "a.b", "a.b.c", "ey.ey.ey"])
def test_malformed_tokens_are_rejected(codec: TokenCodec, token: str) -> None:
    with pytest.raises(InvalidToken):
        codec.decode(token)


def test_rotation_keeps_old_tokens_valid_and_signs_with_the_new_key() -> None:
    before = TokenCodec(SecuritySettings(jwt_secret=SecretStr(OLD_SECRET), jwt_key_id="k1"))
    old_token = before.encode_access(subject="user-1", claims={})
    after = TokenCodec(
        codec_settings(jwt_previous_secret=SecretStr(OLD_SECRET), jwt_previous_key_id="k1")
    )
    assert after.decode(old_token)["sub"] == "user-1"
    new_token = after.encode_access(subject="user-2", claims={})
    assert jwt.get_unverified_header(new_token)["kid"] == "k2"
    assert (
        jwt.decode(new_token, SECRET, algorithms=["HS256"], audience="roombook-api")["sub"]
        == "user-2"
    )
    # Once the previous secret is dropped, its tokens stop verifying.
    with pytest.raises(InvalidToken, match="unknown key id"):
        TokenCodec(codec_settings()).decode(old_token)


def test_unknown_or_missing_kid_is_rejected(codec: TokenCodec) -> None:
    with pytest.raises(InvalidToken, match="unknown key id"):
        codec.decode(forge(claims(), kid="k9"))
    with pytest.raises(InvalidToken, match="unknown key id"):
        codec.decode(jwt.encode(claims(), SECRET, algorithm="HS256", headers={"typ": "at+jwt"}))


def test_old_key_cannot_sign_under_the_new_kid() -> None:
    after = TokenCodec(
        codec_settings(jwt_previous_secret=SecretStr(OLD_SECRET), jwt_previous_key_id="k1")
    )
    with pytest.raises(InvalidToken, match="Signature verification failed"):
        after.decode(forge(claims(), key=OLD_SECRET, kid="k2"))


def test_previous_key_id_equal_to_current_is_refused() -> None:
    """Reusing the kid would make the old secret sign new tokens, undoing the rotation."""
    settings = codec_settings(jwt_previous_secret=SecretStr(OLD_SECRET), jwt_previous_key_id="k2")
    with pytest.raises(ValueError, match="must differ"):
        TokenCodec(settings)


@pytest.mark.parametrize("field", ["jwt_secret", "jwt_previous_secret"])
def test_short_secrets_are_refused(field: str) -> None:
    settings = codec_settings(**{field: SecretStr("x" * 31)}, jwt_previous_key_id="k1")
    with pytest.raises(ValueError, match="at least 32 bytes"):
        TokenCodec(settings)


def test_a_32_byte_secret_is_enough() -> None:
    codec = TokenCodec(SecuritySettings(jwt_secret=SecretStr("y" * 32)))
    assert codec.decode(codec.encode_access(subject="s", claims={}))["sub"] == "s"


def test_issued_at_is_now() -> None:
    codec = TokenCodec(codec_settings())
    before = int(time.time())
    decoded = codec.decode(codec.encode_access(subject="s", claims={}))
    assert before <= decoded["iat"] <= int(time.time())
    assert decoded["nbf"] == decoded["iat"]


@pytest.mark.parametrize(("memory_kib", "trims"), [(64, 0), (1024, 1)])
async def test_only_hashes_worth_trimming_trim_the_heap(
    monkeypatch: pytest.MonkeyPatch, memory_kib: int, trims: int
) -> None:
    # A trim walks the whole heap under the arena lock: tiny hashes must not pay for it.
    calls: list[None] = []
    monkeypatch.setattr(security, "release_free_memory", lambda: calls.append(None))
    hasher = fast_hasher(memory_kib=memory_kib)
    await hasher.hash("one hash, then the pool is idle")
    hasher.close()
    assert len(calls) == trims
