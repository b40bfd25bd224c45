"""Signed device cookies: a browser that logged in to an account before is trusted by it.

The OWASP device-cookie pattern against targeted lockout: a login presenting a valid
cookie for the account is exempt from the account-wide slow-down and spends a small
failure budget of its own instead, so an attacker guessing from elsewhere cannot keep the
owner out, while unknown devices stay slowed down.
"""

import base64
import hashlib
import hmac
import uuid
from collections.abc import Callable
from datetime import datetime

from pydantic import SecretStr

KEY_LABEL = b"roombook device cookie v1"
"""Derives the cookie key from the signing secret, so no other token can pass for a cookie."""


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class DeviceCookies:
    """Issue and read `<user id>.<device id>.<issued at>.<HMAC-SHA256>` cookie values."""

    def __init__(
        self, *, secret: SecretStr, lifetime_s: int, clock: Callable[[], datetime]
    ) -> None:
        self._key = hmac.new(secret.get_secret_value().encode(), KEY_LABEL, hashlib.sha256).digest()
        self.lifetime_s = lifetime_s
        self.clock = clock

    def _mac(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode(), hashlib.sha256).digest())

    def issue(self, *, user_id: uuid.UUID) -> str:
        """A new cookie value naming the user and a fresh device id."""
        payload = f"{user_id.hex}.{uuid.uuid4().hex}.{int(self.clock().timestamp())}"
        return f"{payload}.{self._mac(payload)}"

    def read(self, value: str, *, user_id: uuid.UUID) -> uuid.UUID | None:
        """The device id of a cookie signed for this user and not expired, else None."""
        payload, _, mac = value.rpartition(".")
        # Constant-time comparison: the signature must not be guessable byte by byte.
        if not payload or not hmac.compare_digest(mac, self._mac(payload)):
            return None
        owner, device, issued = payload.split(".")
        age_s = self.clock().timestamp() - int(issued)
        if owner != user_id.hex or not 0 <= age_s <= self.lifetime_s:
            return None
        return uuid.UUID(hex=device)
