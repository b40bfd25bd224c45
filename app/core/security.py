"""Security primitives: argon2id password hashing off the event loop, and signed JWTs."""

import asyncio
import ctypes
import os
import secrets
import sys
import threading
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, TypeVar

import jwt
from argon2 import PasswordHasher as Argon2Hasher
from argon2 import Type
from argon2.exceptions import InvalidHashError, VerificationError

from app.core.config import MIN_SECRET_BYTES, SecuritySettings

ACCESS_TOKEN_TYPE = "at+jwt"  # noqa: S105 - a media type, not a secret
JWT_ALGORITHM = "HS256"
REQUIRED_CLAIMS = ["sub", "iss", "aud", "exp", "iat", "jti"]
FORBIDDEN_HEADERS = frozenset({"jwk", "jku", "x5u", "x5c"})
HASH_THREAD_PREFIX = "password-hash"
"""Name prefix of the hashing threads (`password-hash_0`, …), as seen in profiles."""
M_ARENA_MAX = -8
"""glibc `mallopt` parameter: the most malloc arenas the process may create."""
TRIM_FROM_KIB = 1024
"""Hash memory from which a hash leaves enough behind to share one arena and trim it."""

T = TypeVar("T")


def _glibc() -> Any:
    """The C library when it is glibc (the one with `mallopt` and `malloc_trim`), else None."""
    if sys.platform != "linux":
        return None
    libc = ctypes.CDLL(None)
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


def share_one_malloc_arena() -> bool:
    """Make threads started from now on allocate from glibc's main arena; False off glibc.

    Each thread that ran an argon2 hash otherwise keeps the hash's memory (19 MiB) in an
    arena of its own, which `malloc_trim` cannot shrink; in the main arena it can.
    """
    libc = _glibc()
    return libc is not None and bool(libc.mallopt(ctypes.c_int(M_ARENA_MAX), ctypes.c_int(1)))


def release_free_memory() -> None:
    """Give the allocator's free pages back to the OS (glibc `malloc_trim`; else nothing)."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(ctypes.c_size_t(0))


def lower_thread_priority(niceness: int) -> None:
    """Run the calling thread at `niceness` (Linux), never at a higher priority than it has."""
    if sys.platform != "linux":
        return
    thread = threading.get_native_id()
    # Linux keeps a nice value per thread: only this thread yields to the event loop.
    current = os.getpriority(os.PRIO_PROCESS, thread)
    os.setpriority(os.PRIO_PROCESS, thread, max(current, niceness))


class PasswordHasher:
    """argon2id hashing on a dedicated pool of `concurrency` low-priority threads."""

    def __init__(
        self,
        *,
        time_cost: int,
        memory_kib: int,
        parallelism: int,
        concurrency: int,
        niceness: int = 19,
    ) -> None:
        self._hasher = Argon2Hasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism, type=Type.ID
        )
        self._concurrency = concurrency
        self._niceness = niceness
        # Trimming walks the whole heap under the arena lock: worth it for argon2's 19 MiB,
        # pure cost for the tiny hashes of tests and development.
        self._trim_when_idle = memory_kib >= TRIM_FROM_KIB
        self._pool: ThreadPoolExecutor | None = None
        # Guards the count of queued and running hashes, which the pool threads decrement.
        self._pending_lock = threading.Lock()
        self._pending = 0
        self._dummy_hash: str | None = None

    @classmethod
    def from_settings(cls, settings: SecuritySettings) -> "PasswordHasher":
        """Build the hasher from settings."""
        return cls(
            time_cost=settings.argon2_time_cost,
            memory_kib=settings.argon2_memory_kib,
            parallelism=settings.argon2_parallelism,
            concurrency=settings.hash_concurrency,
            niceness=settings.hash_niceness,
        )

    async def hash(self, password: str) -> str:
        """Hash a password with a fresh salt."""
        return await self._run(partial(self._hasher.hash, password))

    async def verify(self, password_hash: str, password: str) -> bool:
        """Check a password against a stored hash."""
        return await self._run(partial(self._verify_sync, password_hash, password))

    async def verify_against_nothing(self, password: str) -> None:
        """Spend the same work as a real verification, for callers with no hash to check."""
        if self._dummy_hash is None:
            self._dummy_hash = await self.hash(secrets.token_urlsafe(16))
        await self.verify(self._dummy_hash, password)

    def needs_rehash(self, password_hash: str) -> bool:
        """Whether a stored hash was made with other parameters than the current ones."""
        try:
            return self._hasher.check_needs_rehash(password_hash)
        except InvalidHashError:
            return True

    def close(self) -> None:
        """Stop the pool's threads once their current hash is done; drop queued hashes."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    async def _run(self, job: Callable[[], T]) -> T:
        if self._pool is None:
            # A few threads only: a burst of logins waits in the queue instead of taking
            # the core, and only these threads ever hold a hash's memory.
            self._pool = ThreadPoolExecutor(
                max_workers=self._concurrency,
                thread_name_prefix=HASH_THREAD_PREFIX,
                initializer=lower_thread_priority,
                initargs=(self._niceness,),
            )
        with self._pending_lock:
            self._pending += 1
        future = self._pool.submit(self._counted, job)
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            if future.cancelled():
                self._leave()  # taken off the queue before it ran: nothing to trim
            raise

    def _counted(self, job: Callable[[], T]) -> T:
        try:
            return job()
        finally:
            # Trim only when the burst is over: under load the next hash reuses the free
            # memory instead of faulting its 19 MiB in again.
            if self._leave() and self._trim_when_idle:
                release_free_memory()

    def _leave(self) -> bool:
        """Count one hash out of the pool; whether it was the last one."""
        with self._pending_lock:
            self._pending -= 1
            return self._pending == 0

    def _verify_sync(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False


class InvalidToken(Exception):
    """A token failed verification; the message says why, for logs only."""


class TokenCodec:
    """Issue and verify HS256 JWTs with a pinned algorithm, required claims and key ids."""

    def __init__(self, settings: SecuritySettings) -> None:
        self._signing_kid = settings.jwt_key_id
        self._keys: dict[str, bytes] = {settings.jwt_key_id: _key(settings.jwt_secret)}
        if settings.jwt_previous_secret is not None and settings.jwt_previous_key_id:
            # The same kid would put the old secret in the signing slot and undo the rotation.
            if settings.jwt_previous_key_id == settings.jwt_key_id:
                raise ValueError("SECURITY__JWT_PREVIOUS_KEY_ID must differ from JWT_KEY_ID")
            self._keys[settings.jwt_previous_key_id] = _key(settings.jwt_previous_secret)
        self._issuer = settings.jwt_issuer
        self._audience = settings.jwt_audience
        self._leeway = settings.jwt_leeway_s
        self.access_ttl = timedelta(seconds=settings.access_token_ttl_s)

    def encode(
        self, *, subject: str, claims: Mapping[str, Any], ttl: timedelta, token_type: str
    ) -> str:
        """Sign a token for `subject` that expires after `ttl`."""
        now = datetime.now(UTC)
        payload = {
            **claims,
            "sub": subject,
            "iss": self._issuer,
            "aud": self._audience,
            "iat": now,
            "nbf": now,
            "exp": now + ttl,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(
            payload,
            self._keys[self._signing_kid],
            algorithm=JWT_ALGORITHM,
            headers={"kid": self._signing_kid, "typ": token_type},
        )

    def encode_access(self, *, subject: str, claims: Mapping[str, Any]) -> str:
        """Sign a short-lived access token."""
        return self.encode(
            subject=subject, claims=claims, ttl=self.access_ttl, token_type=ACCESS_TOKEN_TYPE
        )

    def decode(
        self, token: str, *, token_type: str = ACCESS_TOKEN_TYPE, max_ttl: timedelta | None = None
    ) -> dict[str, Any]:
        """Verify signature, algorithm, type, standard claims and lifetime; return the claims.

        `max_ttl` is the longest lifetime a token of this type is issued with (the access
        token's by default); a token claiming more was not made by this codec.
        """
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidToken("malformed token") from exc
        if FORBIDDEN_HEADERS & header.keys():
            raise InvalidToken("token names its own key")
        if header.get("alg") != JWT_ALGORITHM:
            raise InvalidToken("unexpected algorithm")
        if header.get("typ") != token_type:
            raise InvalidToken("unexpected token type")
        key = self._keys.get(str(header.get("kid")))
        if key is None:
            raise InvalidToken("unknown key id")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[JWT_ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken(str(exc)) from exc
        self._check_lifetime(claims, max_ttl or self.access_ttl)
        return claims

    def _check_lifetime(self, claims: dict[str, Any], max_ttl: timedelta) -> None:
        # A leaked key or a forged long-lived token must not outlive the configured TTL.
        longest = max_ttl.total_seconds() + self._leeway
        expires = float(claims["exp"])
        if expires - float(claims["iat"]) > longest:
            raise InvalidToken("lifetime longer than allowed")
        if expires - datetime.now(UTC).timestamp() > longest:
            raise InvalidToken("expires further ahead than allowed")


def _key(secret: Any) -> bytes:
    raw: bytes = secret.get_secret_value().encode()
    # HS256 is only as strong as its key: refuse anything under 256 bits.
    if len(raw) < MIN_SECRET_BYTES:
        raise ValueError(f"JWT signing secrets must be at least {MIN_SECRET_BYTES} bytes")
    return raw
