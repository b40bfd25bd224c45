"""Claims of access tokens already verified, so each token's signature is checked once."""

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from app.core.security import TokenCodec

DEFAULT_MAX_TOKENS = 4096
"""About one live token per active session of a process; each entry is a few hundred bytes."""


class VerifiedTokens:
    """A bounded cache of verified access-token claims, keyed by the token string.

    Checking the signature and the standard claims costs more than the rest of a cheap
    request, and a client sends the same token for its whole lifetime. A token seen
    before is only checked against the clock; once past its `exp` it is verified again,
    which refuses it. Only tokens that passed full verification are stored, so a forged
    or altered token (a different string) is verified, and refused, every time. Least
    recently used tokens leave first, so a flood of distinct tokens cannot grow memory.
    The session and role behind a token are still read from the database on every
    request: the cache saves the cryptography, never a revocation check.
    """

    def __init__(
        self,
        codec: TokenCodec,
        *,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._codec = codec
        self._max_tokens = max_tokens
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, dict[str, Any]]] = OrderedDict()

    def __len__(self) -> int:
        """How many tokens are cached."""
        return len(self._entries)

    def decode(self, token: str) -> dict[str, Any]:
        """The token's claims: from the cache while unexpired, else verified by the codec."""
        entry = self._entries.get(token)
        if entry is not None:
            expires, claims = entry
            if self._clock() < expires:
                self._entries.move_to_end(token)
                return dict(claims)
            del self._entries[token]
        claims = self._codec.decode(token)
        # Cached until `exp` without the leeway: a stale entry is re-verified, never trusted.
        self._entries[token] = (float(claims["exp"]), claims)
        if len(self._entries) > self._max_tokens:
            self._entries.popitem(last=False)
        return dict(claims)
