"""Password policy (NIST SP 800-63B-4) and hashing through core's argon2id hasher."""

import unicodedata
from functools import lru_cache
from pathlib import Path

from app.core.errors import ValidationFailed
from app.core.security import PasswordHasher

PASSWORD_MAX_LENGTH = 128
COMMON_PASSWORDS_FILE = Path(__file__).parent / "data" / "common_passwords.txt"
MIN_LOCAL_PART = 3
"""Email local parts shorter than this are too common a substring to forbid."""


@lru_cache
def common_passwords() -> frozenset[str]:
    """The shipped list of common and breached passwords, lower-cased, read once."""
    lines = COMMON_PASSWORDS_FILE.read_text(encoding="utf-8").splitlines()
    return frozenset(line.casefold() for line in lines if line and not line.startswith("#"))


def normalise_password(password: str) -> str:
    """NFKC-normalise, so the same password typed on any keyboard hashes the same."""
    return unicodedata.normalize("NFKC", password)


class PasswordService:
    """Check new passwords against the policy and hash or verify them off the event loop."""

    def __init__(
        self, *, hasher: PasswordHasher, min_length: int, common: frozenset[str] | None = None
    ) -> None:
        self.hasher = hasher
        self.min_length = min_length
        self.common = common_passwords() if common is None else common

    def problems(self, *, password: str, email: str) -> list[str]:
        """Say what is wrong with a new password; an empty list means acceptable."""
        normalised = normalise_password(password)
        # Length only, no composition rules: SP 800-63B-4 found those make passwords weaker.
        if len(normalised) < self.min_length:
            return [f"Use at least {self.min_length} characters."]
        if len(normalised) > PASSWORD_MAX_LENGTH:
            return [f"Use at most {PASSWORD_MAX_LENGTH} characters."]
        folded = normalised.casefold()
        local_part = email.split("@", 1)[0].casefold()
        if len(local_part) >= MIN_LOCAL_PART and local_part in folded:
            return ["Do not use your email address in your password."]
        if folded in self.common:
            return ["This password is too common; choose another."]
        return []

    def check(self, *, password: str, email: str, field: str = "password") -> None:
        """Raise a 422 naming `field` when the password breaks the policy."""
        problems = self.problems(password=password, email=email)
        if problems:
            raise ValidationFailed(
                [
                    {"field": field, "message": message, "type": "password_policy"}
                    for message in problems
                ]
            )

    async def hash_new(self, *, password: str, email: str, field: str = "password") -> str:
        """Check a new password against the policy, then hash it."""
        self.check(password=password, email=email, field=field)
        return await self.hasher.hash(normalise_password(password))

    async def verify(self, *, password_hash: str, password: str) -> bool:
        """Whether the password matches the stored hash."""
        return await self.hasher.verify(password_hash, normalise_password(password))

    async def verify_against_nothing(self, *, password: str) -> None:
        """Spend a verification's work when there is no hash to check (timing safety)."""
        await self.hasher.verify_against_nothing(normalise_password(password))

    async def rehash_if_needed(self, *, password_hash: str, password: str) -> str | None:
        """A fresh hash when the stored one used older parameters, else None."""
        if not self.hasher.needs_rehash(password_hash):
            return None
        return await self.hasher.hash(normalise_password(password))
